//! Enterprise records as template fields: the `fields_of_*` functions turn
//! connector records into [`FieldValues`] in the reply's language (dates as
//! 6月14日 or Jun 14 in the deployment's zone, statuses and placeholders in
//! words). Names from the enterprise systems (products, warehouses,
//! carriers) are shown as they are stored.

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;

use super::{Customer, Order, Refund, RepairRecord, StockRow};
use crate::corpus::{FieldValues, Lang};

/// Shown for a value the record does not have (no carrier yet, no ETA, ...).
fn none_yet(lang: Lang) -> &'static str {
    words(lang, "暂无", "not yet")
}

/// The word for `lang` of a Chinese / English pair.
fn words(lang: Lang, zh: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Zh => zh,
        Lang::En => en,
    }
}

/// 6月14日, Jun 14.
fn date(date: NaiveDate, lang: Lang) -> String {
    match lang {
        Lang::Zh => format!("{}月{}日", date.month(), date.day()),
        Lang::En => date.format("%b %-d").to_string(),
    }
}

/// 6月14日, Jun 14: the day in `tz`.
pub fn local_date(at: DateTime<Utc>, tz: Tz, lang: Lang) -> String {
    date(at.with_timezone(&tz).date_naive(), lang)
}

/// 6月14日 18:20, Jun 14, 18:20.
pub fn local_time(at: DateTime<Utc>, tz: Tz, lang: Lang) -> String {
    let local = at.with_timezone(&tz);
    let day = date(local.date_naive(), lang);
    match lang {
        Lang::Zh => format!("{day} {}", local.format("%H:%M")),
        Lang::En => format!("{day}, {}", local.format("%H:%M")),
    }
}

/// An order's status in words; a status the table does not know is shown as stored.
fn order_status(status: &str, lang: Lang) -> &str {
    match status {
        "pending_payment" => words(lang, "待付款", "awaiting payment"),
        "paid" => words(lang, "已付款，待发货", "paid, awaiting shipment"),
        "shipped" => words(lang, "运输中", "in transit"),
        "delivered" => words(lang, "已签收", "delivered"),
        "cancelled" => words(lang, "已取消", "cancelled"),
        other => other,
    }
}

fn refund_status(status: &str, lang: Lang) -> &str {
    match status {
        "processing" => words(lang, "处理中", "processing"),
        "arrived" => words(lang, "已到账", "arrived"),
        other => other,
    }
}

fn repair_status(status: &str, lang: Lang) -> &str {
    match status {
        "received" => words(lang, "已受理", "received"),
        "scheduled" => words(lang, "已预约上门", "scheduled for a visit"),
        "in_progress" => words(lang, "维修中", "being repaired"),
        "completed" => words(lang, "已完成", "completed"),
        other => other,
    }
}

/// The `order.*` fields of an order, dates in `tz`.
pub fn fields_of_order(order: &Order, tz: Tz, lang: Lang) -> FieldValues {
    let mut v = FieldValues::default();
    v.insert("order.id", order.id.as_str());
    v.insert("order.product_name", order.product_name.as_str());
    v.insert("order.status", order_status(&order.status, lang));
    v.insert("order.placed_date", local_date(order.placed_at, tz, lang));
    v.insert("order.address", order.address.as_str());
    v.insert("order.carrier", order.carrier.as_deref().unwrap_or(none_yet(lang)));
    v.insert("order.tracking_no", order.tracking_no.as_deref().unwrap_or(none_yet(lang)));
    // NOTE: the newest event by time, not the last in the list, since systems differ in order.
    let latest = order.logistics.iter().max_by_key(|e| e.at);
    let no_updates = words(lang, "暂无物流信息", "no tracking updates yet");
    v.insert(
        "order.latest_logistics",
        latest.map_or_else(|| no_updates.to_string(), |e| format!("{} {}", local_time(e.at, tz, lang), e.text)),
    );
    v.insert("order.eta", order.eta.map_or_else(|| none_yet(lang).to_string(), |eta| date(eta, lang)));
    v
}

/// The `stock.*` fields of a product's stock rows: `warehouse` and `quantity`
/// of the warehouse with the most stock, and a `summary` of all of them
/// (e.g. "杭州仓 126 件、广州仓 48 件；北京仓暂时缺货", "杭州仓 126, 广州仓 48;
/// out of stock at 北京仓").
pub fn fields_of_stock(rows: &[StockRow], lang: Lang) -> FieldValues {
    let mut v = FieldValues::default();
    // First of the maxima, so the system's own order breaks ties.
    let best = rows.iter().reduce(|best, r| if r.quantity > best.quantity { r } else { best });
    v.insert("stock.warehouse", best.map_or(none_yet(lang), |r| r.warehouse.as_str()));
    v.insert("stock.quantity", best.map_or(0, |r| r.quantity.max(0)).to_string());
    let stocked: Vec<String> = rows
        .iter()
        .filter(|r| r.quantity > 0)
        .map(|r| match lang {
            Lang::Zh => format!("{} {} 件", r.warehouse, r.quantity),
            Lang::En => format!("{} {}", r.warehouse, r.quantity),
        })
        .collect();
    let empty: Vec<&str> = rows.iter().filter(|r| r.quantity <= 0).map(|r| r.warehouse.as_str()).collect();
    let summary = match (stocked.is_empty(), empty.is_empty(), lang) {
        (true, _, _) => words(lang, "暂时缺货", "out of stock for now").to_string(),
        (false, true, Lang::Zh) => stocked.join("、"),
        (false, true, Lang::En) => stocked.join(", "),
        (false, false, Lang::Zh) => format!("{}；{}暂时缺货", stocked.join("、"), empty.join("、")),
        (false, false, Lang::En) => format!("{}; out of stock at {}", stocked.join(", "), empty.join(", ")),
    };
    v.insert("stock.summary", summary);
    v
}

/// The `refund.*` fields of a refund, dates in `tz`; the amount as "199.00".
pub fn fields_of_refund(refund: &Refund, tz: Tz, lang: Lang) -> FieldValues {
    let mut v = FieldValues::default();
    v.insert("refund.id", refund.id.as_str());
    v.insert("refund.order_id", refund.order_id.as_str());
    v.insert("refund.amount", format!("{:.2}", refund.amount_cny));
    v.insert("refund.status", refund_status(&refund.status, lang));
    v.insert("refund.card_tail", refund.card_tail.as_str());
    let not_arrived = words(lang, "暂未到账", "not yet");
    v.insert(
        "refund.arrived_date",
        refund.arrived_at.map_or_else(|| not_arrived.to_string(), |at| local_date(at, tz, lang)),
    );
    v
}

/// The `repair.*` fields of one repair case; `count_90d` counts the cases in
/// `history` (the customer's repairs, this one included) for the same product
/// reported in the 90 days before `now`.
pub fn fields_of_repair(
    repair: &RepairRecord,
    history: &[RepairRecord],
    now: DateTime<Utc>,
    tz: Tz,
    lang: Lang,
) -> FieldValues {
    let mut v = FieldValues::default();
    v.insert("repair.id", repair.id.as_str());
    v.insert("repair.product", repair.product_name.as_str());
    v.insert("repair.status", repair_status(&repair.status, lang));
    let unscheduled = words(lang, "待预约", "to be scheduled");
    v.insert(
        "repair.visit_time",
        repair.technician_visit.map_or_else(|| unscheduled.to_string(), |at| local_time(at, tz, lang)),
    );
    v.insert("repair.count_90d", repairs_in_90_days(history, Some(&repair.product), now).to_string());
    v
}

/// Repair cases in `history` reported in the 90 days before `now`, of
/// `product` when given: what makes a fault a repeat one.
pub fn repairs_in_90_days(history: &[RepairRecord], product: Option<&str>, now: DateTime<Utc>) -> usize {
    let window = now - TimeDelta::days(90);
    history
        .iter()
        .filter(|r| product.is_none_or(|p| r.product == p) && r.reported_at >= window && r.reported_at <= now)
        .count()
}

/// The `customer.*` fields of a CRM profile.
pub fn fields_of_customer(customer: &Customer) -> FieldValues {
    let mut v = FieldValues::default();
    v.insert("customer.name", customer.name.as_str());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::LogisticsEvent;
    use crate::corpus::{Template, KNOWN_FIELDS};

    const SHANGHAI: Tz = chrono_tz::Asia::Shanghai;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn order() -> Order {
        Order {
            id: "12345".into(),
            customer_id: "c1001".into(),
            product: "dress".into(),
            product_name: "碎花雪纺连衣裙".into(),
            status: "shipped".into(),
            // 2026-06-14 00:30 in Shanghai, still 06-13 in UTC.
            placed_at: at("2026-06-13T16:30:00Z"),
            amount_cny: 459.0,
            address: "杭州市西湖区文三路 100 号".into(),
            carrier: Some("顺丰速运".into()),
            tracking_no: Some("SF1402837465129".into()),
            logistics: vec![
                LogisticsEvent {
                    at: at("2026-06-14T10:20:00Z"), text: "快件已到达【杭州转运中心】".into()
                },
                LogisticsEvent { at: at("2026-06-14T02:00:00Z"), text: "已揽收".into() },
            ],
            eta: NaiveDate::from_ymd_opt(2026, 6, 17),
        }
    }

    fn repair(id: &str, product: &str, reported: &str) -> RepairRecord {
        RepairRecord {
            id: id.into(),
            product: product.into(),
            product_name: "冰箱".into(),
            order_id: None,
            reported_at: at(reported),
            status: "scheduled".into(),
            technician_visit: Some(at("2026-06-16T06:00:00Z")),
            note: String::new(),
        }
    }

    #[test]
    fn order_fields_use_the_local_zone() {
        let v = fields_of_order(&order(), SHANGHAI, Lang::Zh);
        assert_eq!(v.get("order.placed_date"), Some("6月14日"));
        assert_eq!(v.get("order.status"), Some("运输中"));
        assert_eq!(v.get("order.latest_logistics"), Some("6月14日 18:20 快件已到达【杭州转运中心】"));
        assert_eq!(v.get("order.eta"), Some("6月17日"));
        assert_eq!(v.get("order.carrier"), Some("顺丰速运"));
        assert_eq!(fields_of_order(&order(), chrono_tz::UTC, Lang::Zh).get("order.placed_date"), Some("6月13日"));
        let unshipped =
            Order { carrier: None, tracking_no: None, logistics: vec![], eta: None, status: "paid".into(), ..order() };
        let v = fields_of_order(&unshipped, SHANGHAI, Lang::Zh);
        assert_eq!(v.get("order.tracking_no"), Some("暂无"));
        assert_eq!(v.get("order.latest_logistics"), Some("暂无物流信息"));
        assert_eq!(v.get("order.eta"), Some("暂无"));
        for f in KNOWN_FIELDS.iter().filter(|f| f.starts_with("order.")) {
            assert!(v.get(f).is_some(), "{f}");
        }
    }

    #[test]
    fn stock_fields_pick_the_best_warehouse_and_summarise() {
        let row = |w: &str, q| StockRow { warehouse: w.into(), product: "dress".into(), quantity: q };
        let v = fields_of_stock(&[row("广州仓", 48), row("杭州仓", 126), row("北京仓", 0)], Lang::Zh);
        assert_eq!((v.get("stock.warehouse"), v.get("stock.quantity")), (Some("杭州仓"), Some("126")));
        assert_eq!(v.get("stock.summary"), Some("广州仓 48 件、杭州仓 126 件；北京仓暂时缺货"));
        assert_eq!(
            fields_of_stock(&[row("杭州仓", 3), row("北京仓", 2)], Lang::Zh).get("stock.summary"),
            Some("杭州仓 3 件、北京仓 2 件")
        );
        let none = fields_of_stock(&[row("北京仓", 0)], Lang::Zh);
        assert_eq!((none.get("stock.quantity"), none.get("stock.summary")), (Some("0"), Some("暂时缺货")));
        assert_eq!(fields_of_stock(&[], Lang::Zh).get("stock.warehouse"), Some("暂无"));
    }

    #[test]
    fn refund_fields() {
        let refund = Refund {
            id: "R88001".into(),
            order_id: "12287".into(),
            amount_cny: 199.0,
            status: "arrived".into(),
            card_tail: "1234".into(),
            arrived_at: Some(at("2026-06-14T03:00:00Z")),
        };
        let t = Template::parse(
            "退款 {refund.amount} 元已于 {refund.arrived_date} 退回尾号 {refund.card_tail} 的卡（{refund.status}）",
        )
        .unwrap();
        assert_eq!(
            t.render(&fields_of_refund(&refund, SHANGHAI, Lang::Zh)),
            "退款 199.00 元已于 6月14日 退回尾号 1234 的卡（已到账）"
        );
        let pending = Refund { status: "processing".into(), arrived_at: None, ..refund };
        let v = fields_of_refund(&pending, SHANGHAI, Lang::Zh);
        assert_eq!((v.get("refund.status"), v.get("refund.arrived_date")), (Some("处理中"), Some("暂未到账")));
        assert_eq!(v.get("refund.order_id"), Some("12287"));
    }

    #[test]
    fn repair_fields_count_same_product_cases_in_90_days() {
        let now = at("2026-06-15T02:30:00Z");
        let history = vec![
            repair("W3", "refrigerator", "2026-06-03T02:00:00Z"),
            repair("W2", "refrigerator", "2026-04-06T02:00:00Z"),
            repair("W1", "refrigerator", "2026-01-10T02:00:00Z"),
            repair("W9", "washing_machine", "2026-06-01T02:00:00Z"),
        ];
        let v = fields_of_repair(&history[0], &history, now, SHANGHAI, Lang::Zh);
        assert_eq!(v.get("repair.count_90d"), Some("2"));
        assert_eq!(v.get("repair.visit_time"), Some("6月16日 14:00"));
        assert_eq!((v.get("repair.status"), v.get("repair.product")), (Some("已预约上门"), Some("冰箱")));
        let unscheduled = RepairRecord { technician_visit: None, status: "received".into(), ..history[0].clone() };
        assert_eq!(
            fields_of_repair(&unscheduled, &[], now, SHANGHAI, Lang::Zh).get("repair.visit_time"),
            Some("待预约")
        );
        assert_eq!(fields_of_repair(&unscheduled, &[], now, SHANGHAI, Lang::Zh).get("repair.count_90d"), Some("0"));
    }

    #[test]
    fn english_fields_have_no_chinese_words() {
        let has_han = |s: &str| s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
        let unshipped =
            Order { carrier: None, tracking_no: None, logistics: vec![], eta: None, status: "paid".into(), ..order() };
        let v = fields_of_order(&unshipped, SHANGHAI, Lang::En);
        assert_eq!(v.get("order.status"), Some("paid, awaiting shipment"));
        assert_eq!(v.get("order.placed_date"), Some("Jun 14"));
        for field in [
            "order.status",
            "order.placed_date",
            "order.carrier",
            "order.tracking_no",
            "order.latest_logistics",
            "order.eta",
        ] {
            assert!(!has_han(v.get(field).unwrap()), "{field}: {:?}", v.get(field));
        }
        assert_eq!(fields_of_order(&order(), SHANGHAI, Lang::En).get("order.eta"), Some("Jun 17"));
        let row = |w: &str, q| StockRow { warehouse: w.into(), product: "dress".into(), quantity: q };
        let stock = fields_of_stock(&[row("Hangzhou", 126), row("Beijing", 0)], Lang::En);
        assert_eq!(stock.get("stock.summary"), Some("Hangzhou 126; out of stock at Beijing"));
        let repair = RepairRecord {
            technician_visit: None,
            status: "received".into(),
            ..repair("W3", "refrigerator", "2026-06-03T02:00:00Z")
        };
        let v = fields_of_repair(&repair, &[], at("2026-06-15T02:30:00Z"), SHANGHAI, Lang::En);
        assert_eq!((v.get("repair.status"), v.get("repair.visit_time")), (Some("received"), Some("to be scheduled")));
    }

    #[test]
    fn missing_fields_are_reported_and_render_empty() {
        let t = Template::parse("{customer.name}您好，{stock.warehouse} 有货 {stock.quantity} 件").unwrap();
        let mut v =
            fields_of_stock(&[StockRow { warehouse: "杭州仓".into(), product: "dress".into(), quantity: 5 }], Lang::Zh);
        assert_eq!(t.missing(&v), vec!["customer.name"]);
        assert_eq!(t.render(&v), "您好，杭州仓 有货 5 件");
        v.extend(fields_of_customer(&Customer {
            id: "c1001".into(),
            name: "张伟".into(),
            phone: "13812345678".into(),
            spend_12m_cny: 15056.0,
            since: at("2022-06-15T00:00:00Z"),
        }));
        assert!(t.missing(&v).is_empty());
        assert_eq!(t.render(&v), "张伟您好，杭州仓 有货 5 件");
    }
}
