//! The embedded demo enterprise: a real SQLite database (its own file, not the
//! conversation store) created, migrated and seeded from `demo/seed.toml` on
//! first open. Times are stored as offsets from the request and materialised
//! against [`Ctx::now`] at query time, so "yesterday's order" stays yesterday's
//! whatever the date the demo runs on.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};
use sqlx::{Row, SqlitePool};

use super::{
    AfterSalesSystem, ConnectorError, ConnectorFuture, Connectors, CrmSystem, Ctx, Customer, InventorySystem,
    LogisticsEvent, Order, OrderSystem, Refund, RefundSystem, RepairRecord, StockRow,
};

/// The seed shipped with the repository.
const SEED: &str = include_str!("../../demo/seed.toml");

/// Zone the demo enterprise keeps date-only values (delivery estimates) in.
const DEMO_ZONE: Tz = chrono_tz::Asia::Shanghai;

/// Opens (creating and seeding on first use) the demo database at `url`, e.g.
/// `sqlite://data/demo.db`, and wires it as every enterprise system.
pub async fn demo_connectors(url: &str) -> Result<Connectors, ConnectorError> {
    let demo = Arc::new(DemoSystems::open(url).await?);
    Ok(Connectors {
        orders: demo.clone(),
        inventory: demo.clone(),
        refunds: demo.clone(),
        after_sales: demo.clone(),
        crm: demo,
    })
}

/// All demo systems over one SQLite pool; cheap to clone.
#[derive(Clone)]
pub struct DemoSystems {
    pool: SqlitePool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seed {
    customer: Vec<SeedCustomer>,
    order: Vec<SeedOrder>,
    refund: Vec<SeedRefund>,
    repair: Vec<SeedRepair>,
    /// product type -> warehouse -> quantity.
    stock: BTreeMap<String, BTreeMap<String, i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedCustomer {
    id: String,
    name: String,
    phone: String,
    since_days_ago: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedOrder {
    id: String,
    customer_id: String,
    product: String,
    product_name: String,
    status: String,
    placed_days_ago: i64,
    amount_cny: f64,
    address: String,
    carrier: Option<String>,
    tracking_no: Option<String>,
    eta_in_days: Option<i64>,
    #[serde(default)]
    logistics: Vec<SeedEvent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedEvent {
    hours_ago: i64,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedRefund {
    id: String,
    order_id: String,
    amount_cny: f64,
    status: String,
    card_tail: String,
    arrived_days_ago: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedRepair {
    id: String,
    customer_id: String,
    product: String,
    product_name: String,
    order_id: Option<String>,
    reported_days_ago: i64,
    status: String,
    visit_days_ago: Option<i64>,
    note: String,
}

fn days_ago(now: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    now - TimeDelta::days(days)
}

impl DemoSystems {
    /// Opens the database at `url`, migrates it and seeds it unless it already is.
    pub async fn open(url: &str) -> Result<DemoSystems, ConnectorError> {
        if let Some(dir) = url.strip_prefix("sqlite://").and_then(|p| std::path::Path::new(p).parent()) {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| ConnectorError::Database(sqlx::Error::Io(e)))?;
            }
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        sqlx::migrate!("./migrations_demo").run(&pool).await?;
        let demo = DemoSystems { pool };
        demo.seed(SEED).await?;
        Ok(demo)
    }

    /// Loads `seed` once: the marker row and the data go in one transaction, so
    /// a re-open (or a concurrent first open) never duplicates anything.
    async fn seed(&self, seed: &str) -> Result<(), ConnectorError> {
        let seed: Seed = toml::from_str(seed).map_err(|e| ConnectorError::BadResponse(format!("demo seed: {e}")))?;
        let mut tx = self.pool.begin().await?;
        let fresh = sqlx::query("INSERT OR IGNORE INTO seed_info (id) VALUES (1)").execute(&mut *tx).await?;
        if fresh.rows_affected() == 0 {
            return Ok(());
        }
        for c in &seed.customer {
            sqlx::query("INSERT INTO customers (id, name, phone, since_days_ago) VALUES (?, ?, ?, ?)")
                .bind(&c.id)
                .bind(&c.name)
                .bind(&c.phone)
                .bind(c.since_days_ago)
                .execute(&mut *tx)
                .await?;
        }
        for o in &seed.order {
            sqlx::query(
                "INSERT INTO orders (id, customer_id, product, product_name, status, placed_days_ago, amount_cny, address, carrier, tracking_no, eta_in_days)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&o.id)
            .bind(&o.customer_id)
            .bind(&o.product)
            .bind(&o.product_name)
            .bind(&o.status)
            .bind(o.placed_days_ago)
            .bind(o.amount_cny)
            .bind(&o.address)
            .bind(&o.carrier)
            .bind(&o.tracking_no)
            .bind(o.eta_in_days)
            .execute(&mut *tx)
            .await?;
            for e in &o.logistics {
                sqlx::query("INSERT INTO logistics_events (order_id, hours_ago, text) VALUES (?, ?, ?)")
                    .bind(&o.id)
                    .bind(e.hours_ago)
                    .bind(&e.text)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for r in &seed.refund {
            sqlx::query("INSERT INTO refunds (id, order_id, amount_cny, status, card_tail, arrived_days_ago) VALUES (?, ?, ?, ?, ?, ?)")
                .bind(&r.id)
                .bind(&r.order_id)
                .bind(r.amount_cny)
                .bind(&r.status)
                .bind(&r.card_tail)
                .bind(r.arrived_days_ago)
                .execute(&mut *tx)
                .await?;
        }
        for r in &seed.repair {
            sqlx::query(
                "INSERT INTO repairs (id, customer_id, product, product_name, order_id, reported_days_ago, status, visit_days_ago, note)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&r.id)
            .bind(&r.customer_id)
            .bind(&r.product)
            .bind(&r.product_name)
            .bind(&r.order_id)
            .bind(r.reported_days_ago)
            .bind(&r.status)
            .bind(r.visit_days_ago)
            .bind(&r.note)
            .execute(&mut *tx)
            .await?;
        }
        for (product, warehouses) in &seed.stock {
            for (warehouse, quantity) in warehouses {
                sqlx::query("INSERT INTO stock (product, warehouse, quantity) VALUES (?, ?, ?)")
                    .bind(product)
                    .bind(warehouse)
                    .bind(quantity)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        tracing::info!(customers = seed.customer.len(), orders = seed.order.len(), "demo enterprise database seeded");
        Ok(())
    }

    async fn order_from_row(&self, now: DateTime<Utc>, row: &SqliteRow) -> Result<Order, ConnectorError> {
        let id: String = row.try_get("id")?;
        let events =
            sqlx::query("SELECT hours_ago, text FROM logistics_events WHERE order_id = ? ORDER BY hours_ago DESC")
                .bind(&id)
                .fetch_all(&self.pool)
                .await?;
        let logistics = events
            .iter()
            .map(|e| {
                Ok(LogisticsEvent { at: now - TimeDelta::hours(e.try_get("hours_ago")?), text: e.try_get("text")? })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let eta: Option<i64> = row.try_get("eta_in_days")?;
        Ok(Order {
            id,
            customer_id: row.try_get("customer_id")?,
            product: row.try_get("product")?,
            product_name: row.try_get("product_name")?,
            status: row.try_get("status")?,
            placed_at: days_ago(now, row.try_get("placed_days_ago")?),
            amount_cny: row.try_get("amount_cny")?,
            address: row.try_get("address")?,
            carrier: row.try_get("carrier")?,
            tracking_no: row.try_get("tracking_no")?,
            logistics,
            eta: eta.map(|d| eta_date(now, d)),
        })
    }
}

fn eta_date(now: DateTime<Utc>, in_days: i64) -> NaiveDate {
    (now + TimeDelta::days(in_days)).with_timezone(&DEMO_ZONE).date_naive()
}

impl OrderSystem for DemoSystems {
    fn orders_of<'a>(&'a self, ctx: &'a Ctx<'_>, customer_id: &'a str) -> ConnectorFuture<'a, Vec<Order>> {
        Box::pin(async move {
            tracing::debug!(trace_id = ctx.trace_id, customer_id, "demo orders_of");
            let rows = sqlx::query("SELECT * FROM orders WHERE customer_id = ? ORDER BY placed_days_ago, id")
                .bind(customer_id)
                .fetch_all(&self.pool)
                .await?;
            let mut orders = Vec::with_capacity(rows.len());
            for row in &rows {
                orders.push(self.order_from_row(ctx.now, row).await?);
            }
            Ok(orders)
        })
    }

    fn order<'a>(&'a self, ctx: &'a Ctx<'_>, order_id: &'a str) -> ConnectorFuture<'a, Option<Order>> {
        Box::pin(async move {
            tracing::debug!(trace_id = ctx.trace_id, order_id, "demo order");
            let row =
                sqlx::query("SELECT * FROM orders WHERE id = ?").bind(order_id).fetch_optional(&self.pool).await?;
            match row {
                Some(row) => Ok(Some(self.order_from_row(ctx.now, &row).await?)),
                None => Ok(None),
            }
        })
    }
}

impl InventorySystem for DemoSystems {
    fn stock<'a>(&'a self, ctx: &'a Ctx<'_>, product_type: &'a str) -> ConnectorFuture<'a, Vec<StockRow>> {
        Box::pin(async move {
            tracing::debug!(trace_id = ctx.trace_id, product_type, "demo stock");
            let rows = sqlx::query(
                "SELECT warehouse, product, quantity FROM stock WHERE product = ? ORDER BY quantity DESC, warehouse",
            )
            .bind(product_type)
            .fetch_all(&self.pool)
            .await?;
            let stock = rows
                .iter()
                .map(|r| {
                    Ok(StockRow {
                        warehouse: r.try_get("warehouse")?,
                        product: r.try_get("product")?,
                        quantity: r.try_get("quantity")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            Ok(stock)
        })
    }
}

impl RefundSystem for DemoSystems {
    fn refunds_of<'a>(&'a self, ctx: &'a Ctx<'_>, customer_id: &'a str) -> ConnectorFuture<'a, Vec<Refund>> {
        Box::pin(async move {
            tracing::debug!(trace_id = ctx.trace_id, customer_id, "demo refunds_of");
            // NOTE: refunds still processing have no arrival offset (NULL sorts first),
            // which puts them first, as the newest cases.
            let rows = sqlx::query(
                "SELECT r.* FROM refunds r JOIN orders o ON o.id = r.order_id
                 WHERE o.customer_id = ? ORDER BY r.arrived_days_ago, r.id",
            )
            .bind(customer_id)
            .fetch_all(&self.pool)
            .await?;
            let refunds = rows
                .iter()
                .map(|r| {
                    let arrived: Option<i64> = r.try_get("arrived_days_ago")?;
                    Ok(Refund {
                        id: r.try_get("id")?,
                        order_id: r.try_get("order_id")?,
                        amount_cny: r.try_get("amount_cny")?,
                        status: r.try_get("status")?,
                        card_tail: r.try_get("card_tail")?,
                        arrived_at: arrived.map(|d| days_ago(ctx.now, d)),
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            Ok(refunds)
        })
    }
}

impl AfterSalesSystem for DemoSystems {
    fn repairs_of<'a>(&'a self, ctx: &'a Ctx<'_>, customer_id: &'a str) -> ConnectorFuture<'a, Vec<RepairRecord>> {
        Box::pin(async move {
            tracing::debug!(trace_id = ctx.trace_id, customer_id, "demo repairs_of");
            let rows = sqlx::query("SELECT * FROM repairs WHERE customer_id = ? ORDER BY reported_days_ago, id")
                .bind(customer_id)
                .fetch_all(&self.pool)
                .await?;
            let repairs = rows
                .iter()
                .map(|r| {
                    let visit: Option<i64> = r.try_get("visit_days_ago")?;
                    Ok(RepairRecord {
                        id: r.try_get("id")?,
                        product: r.try_get("product")?,
                        product_name: r.try_get("product_name")?,
                        order_id: r.try_get("order_id")?,
                        reported_at: days_ago(ctx.now, r.try_get("reported_days_ago")?),
                        status: r.try_get("status")?,
                        technician_visit: visit.map(|d| days_ago(ctx.now, d)),
                        note: r.try_get("note")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            Ok(repairs)
        })
    }
}

impl CrmSystem for DemoSystems {
    fn customer<'a>(&'a self, ctx: &'a Ctx<'_>, customer_id: &'a str) -> ConnectorFuture<'a, Option<Customer>> {
        Box::pin(async move {
            tracing::debug!(trace_id = ctx.trace_id, customer_id, "demo customer");
            // NOTE: spend is derived from the orders (paid, within 365 days) rather
            // than stored, so the profile can never disagree with the order history.
            let row = sqlx::query(
                "SELECT c.id, c.name, c.phone, c.since_days_ago,
                        (SELECT COALESCE(SUM(o.amount_cny), 0.0) FROM orders o
                          WHERE o.customer_id = c.id AND o.placed_days_ago <= 365
                            AND o.status NOT IN ('pending_payment', 'cancelled')) AS spend
                 FROM customers c WHERE c.id = ?",
            )
            .bind(customer_id)
            .fetch_optional(&self.pool)
            .await?;
            let Some(r) = row else { return Ok(None) };
            Ok(Some(Customer {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                phone: r.try_get("phone")?,
                spend_12m_cny: r.try_get("spend")?,
                since: days_ago(ctx.now, r.try_get("since_days_ago")?),
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    fn now() -> DateTime<Utc> {
        // 2026-06-15 10:30 in Shanghai.
        DateTime::parse_from_rfc3339("2026-06-15T02:30:00Z").unwrap().with_timezone(&Utc)
    }

    fn ctx() -> Ctx<'static> {
        Ctx { now: now(), trace_id: "t-demo" }
    }

    fn local_date(at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&DEMO_ZONE).date_naive()
    }

    async fn open(dir: &tempfile::TempDir) -> Connectors {
        let url = format!("sqlite://{}", dir.path().join("sub/demo.db").display());
        demo_connectors(&url).await.unwrap()
    }

    #[tokio::test]
    async fn reopening_does_not_duplicate_the_seed() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(&dir).await;
        let n = first.orders.orders_of(&ctx(), "c1001").await.unwrap().len();
        let stock = first.inventory.stock(&ctx(), "dress").await.unwrap().len();
        drop(first);
        let again = open(&dir).await;
        assert_eq!(again.orders.orders_of(&ctx(), "c1001").await.unwrap().len(), n);
        assert_eq!(again.inventory.stock(&ctx(), "dress").await.unwrap().len(), stock);
        assert_eq!(again.refunds.refunds_of(&ctx(), "c1001").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn c1001_bought_a_dress_yesterday_and_is_vip() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir).await;
        let orders = c.orders.orders_of(&ctx(), "c1001").await.unwrap();
        let dress = orders.iter().find(|o| o.product == "dress").unwrap();
        assert_eq!(local_date(dress.placed_at), NaiveDate::from_ymd_opt(2026, 6, 14).unwrap());
        assert!(dress.id.len() >= 5 && dress.id.chars().all(|ch| ch.is_ascii_digit()));
        assert_eq!(orders[0].id, dress.id, "newest first");
        assert!(orders.iter().any(|o| o.product == "refrigerator"));
        assert!(orders.iter().any(|o| o.product == "headphones" && o.status == "delivered"));
        // The same order by id, materialised against another `now`.
        let later = Ctx { now: now() + TimeDelta::days(30), trace_id: "t" };
        let again = c.orders.order(&later, &dress.id).await.unwrap().unwrap();
        assert_eq!(local_date(again.placed_at), NaiveDate::from_ymd_opt(2026, 7, 14).unwrap());
        assert!(c.orders.order(&ctx(), "99999999").await.unwrap().is_none());

        let profile = c.crm.customer(&ctx(), "c1001").await.unwrap().unwrap();
        assert_eq!((profile.name.as_str(), profile.phone.as_str()), ("张伟", "13812345678"));
        assert!(profile.spend_12m_cny > 10_000.0, "{}", profile.spend_12m_cny);
        assert!(c.crm.customer(&ctx(), "nobody").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn c1001_refrigerator_repaired_twice_in_90_days() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir).await;
        let repairs = c.after_sales.repairs_of(&ctx(), "c1001").await.unwrap();
        let recent: Vec<_> = repairs
            .iter()
            .filter(|r| r.product == "refrigerator" && now() - r.reported_at <= TimeDelta::days(90))
            .collect();
        assert_eq!(recent.len(), 2);
        assert!(recent[0].reported_at > recent[1].reported_at, "newest first");
        assert!(c.after_sales.repairs_of(&ctx(), "c1002").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn c1001_refund_arrived_yesterday_to_card_1234() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir).await;
        let refunds = c.refunds.refunds_of(&ctx(), "c1001").await.unwrap();
        let r = &refunds[0];
        assert_eq!((r.status.as_str(), r.card_tail.as_str()), ("arrived", "1234"));
        assert_eq!(local_date(r.arrived_at.unwrap()), NaiveDate::from_ymd_opt(2026, 6, 14).unwrap());
    }

    #[tokio::test]
    async fn c1002_is_new_with_one_undelivered_headphones_order() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir).await;
        let orders = c.orders.orders_of(&ctx(), "c1002").await.unwrap();
        assert_eq!(orders.len(), 1);
        let o = &orders[0];
        assert_eq!((o.product.as_str(), o.status.as_str()), ("headphones", "shipped"));
        assert!(o.logistics.len() >= 2 && o.logistics.windows(2).all(|w| w[0].at < w[1].at), "oldest first");
        assert!(o.logistics.iter().all(|e| e.at < now()));
        assert!(o.eta.unwrap() > local_date(now()));
        assert!(o.carrier.is_some() && o.tracking_no.is_some());
        let profile = c.crm.customer(&ctx(), "c1002").await.unwrap().unwrap();
        assert!(now() - profile.since < TimeDelta::days(30));
        assert!(profile.spend_12m_cny < 10_000.0);
    }

    #[tokio::test]
    async fn every_catalogue_type_is_stocked_in_two_warehouses_including_hangzhou() {
        let taxonomy: toml::Value = toml::from_str(include_str!("../../corpus/taxonomy.toml")).unwrap();
        let types = taxonomy["slots"]["product"]["types"].as_array().unwrap();
        assert_eq!(types.len(), 12);
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir).await;
        let mut zero_rows = 0;
        for t in types {
            let t = t.as_str().unwrap();
            let rows = c.inventory.stock(&ctx(), t).await.unwrap();
            assert!(rows.len() >= 2, "{t}");
            assert!(rows.iter().any(|r| r.warehouse == "杭州仓"), "{t}");
            assert!(rows.iter().all(|r| r.product == t));
            assert!(rows.windows(2).all(|w| w[0].quantity >= w[1].quantity), "most stock first");
            zero_rows += rows.iter().filter(|r| r.quantity == 0).count();
        }
        assert!(zero_rows > 0);
        assert!(c.inventory.stock(&ctx(), "spaceship").await.unwrap().is_empty());
        // Dates of the seed do not depend on the calendar: a year on, still yesterday.
        let next_year = Ctx { now: now().with_year(2027).unwrap(), trace_id: "t" };
        let dress = c.orders.order(&next_year, "12345").await.unwrap().unwrap();
        assert_eq!(local_date(dress.placed_at), NaiveDate::from_ymd_opt(2027, 6, 14).unwrap());
    }
}
