//! Enterprise systems the answers pull data from: orders, inventory, refunds,
//! after-sales repairs and the CRM. One object-safe trait per system, used as
//! `Arc<dyn Trait>` in [`Connectors`], with two implementations: the embedded
//! SQLite demo ([`demo`]) and JSON over HTTP for real systems ([`http`]).
//! [`fields`] turns the returned records into template fields.
//!
//! Every call takes a [`Ctx`]: the request's reference time (the demo data is
//! relative to it) and its trace id (for logs). Callers degrade gracefully on
//! any [`ConnectorError`]: a failed lookup means a generic answer, never a 5xx.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub mod demo;
pub mod fields;
pub mod http;

pub use demo::demo_connectors;
pub use http::{http_connectors, HttpConnectorSettings, HttpSettings, HttpSystem};

/// Why an enterprise system could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The system did not answer within the configured time (after retries).
    #[error("enterprise system timed out")]
    Timeout,
    /// The system could not be reached or kept failing (connect error, 5xx).
    #[error("enterprise system unavailable: {0}")]
    Unavailable(String),
    /// The system answered something we cannot use (4xx, malformed JSON, bad seed).
    #[error("bad response from enterprise system: {0}")]
    BadResponse(String),
    /// The connector settings are unusable (bad base URL or header).
    #[error("invalid connector settings: {0}")]
    Config(String),
    /// The embedded demo database failed.
    #[error("demo database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The embedded demo database could not be migrated.
    #[error("demo database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Per-request context passed to every connector call.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The request's reference time; relative demo data is materialised against it.
    pub now: DateTime<Utc>,
    /// The request's trace id, for log lines.
    pub trace_id: &'a str,
}

/// The future every connector method returns; boxed so the traits stay object-safe.
pub type ConnectorFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ConnectorError>> + Send + 'a>>;

/// One logistics (tracking) event of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticsEvent {
    pub at: DateTime<Utc>,
    /// What happened, in Chinese (e.g. 快件已到达【杭州转运中心】).
    pub text: String,
}

/// An order as the order system reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub customer_id: String,
    /// Catalogue product type id (e.g. "dress").
    pub product: String,
    /// Product name shown to the customer, in Chinese.
    pub product_name: String,
    /// "pending_payment" | "paid" | "shipped" | "delivered" | "cancelled".
    pub status: String,
    pub placed_at: DateTime<Utc>,
    pub amount_cny: f64,
    pub address: String,
    /// None until the order has been handed to a carrier.
    pub carrier: Option<String>,
    pub tracking_no: Option<String>,
    /// Oldest first.
    pub logistics: Vec<LogisticsEvent>,
    /// Expected delivery date (in the enterprise's zone), when known.
    pub eta: Option<NaiveDate>,
}

/// Stock of one product in one warehouse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockRow {
    /// Warehouse name, e.g. 杭州仓.
    pub warehouse: String,
    /// Catalogue product type id.
    pub product: String,
    pub quantity: i64,
}

/// A refund as the refund system reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    pub order_id: String,
    pub amount_cny: f64,
    /// "processing" | "arrived".
    pub status: String,
    /// Last four digits of the card the money goes to.
    pub card_tail: String,
    pub arrived_at: Option<DateTime<Utc>>,
}

/// One repair case of the after-sales system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepairRecord {
    pub id: String,
    /// Catalogue product type id.
    pub product: String,
    /// Product name shown to the customer, in Chinese.
    pub product_name: String,
    pub order_id: Option<String>,
    pub reported_at: DateTime<Utc>,
    /// "received" | "scheduled" | "in_progress" | "completed".
    pub status: String,
    /// When the technician comes (or came).
    pub technician_visit: Option<DateTime<Utc>>,
    /// What was found or done, in Chinese.
    pub note: String,
}

/// A customer profile from the CRM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub phone: String,
    /// Spent over the 12 months before the request.
    pub spend_12m_cny: f64,
    /// When the customer first registered.
    pub since: DateTime<Utc>,
}

/// The order system.
pub trait OrderSystem: Send + Sync {
    /// A customer's orders, newest first; empty for an unknown customer.
    fn orders_of<'a>(&'a self, ctx: &'a Ctx<'_>, customer_id: &'a str) -> ConnectorFuture<'a, Vec<Order>>;
    /// One order by id, None when it does not exist.
    fn order<'a>(&'a self, ctx: &'a Ctx<'_>, order_id: &'a str) -> ConnectorFuture<'a, Option<Order>>;
}

/// The inventory system.
pub trait InventorySystem: Send + Sync {
    /// Stock of a catalogue product type per warehouse, most stock first.
    fn stock<'a>(&'a self, ctx: &'a Ctx<'_>, product_type: &'a str) -> ConnectorFuture<'a, Vec<StockRow>>;
}

/// The refund system.
pub trait RefundSystem: Send + Sync {
    /// A customer's refunds, newest first.
    fn refunds_of<'a>(&'a self, ctx: &'a Ctx<'_>, customer_id: &'a str) -> ConnectorFuture<'a, Vec<Refund>>;
}

/// The after-sales (installation and repair) system.
pub trait AfterSalesSystem: Send + Sync {
    /// A customer's repair cases, newest first.
    fn repairs_of<'a>(&'a self, ctx: &'a Ctx<'_>, customer_id: &'a str) -> ConnectorFuture<'a, Vec<RepairRecord>>;
}

/// The CRM.
pub trait CrmSystem: Send + Sync {
    /// A customer's profile, None for an unknown id.
    fn customer<'a>(&'a self, ctx: &'a Ctx<'_>, customer_id: &'a str) -> ConnectorFuture<'a, Option<Customer>>;
}

/// All enterprise systems of a deployment; cheap to clone.
#[derive(Clone)]
pub struct Connectors {
    pub orders: Arc<dyn OrderSystem>,
    pub inventory: Arc<dyn InventorySystem>,
    pub refunds: Arc<dyn RefundSystem>,
    pub after_sales: Arc<dyn AfterSalesSystem>,
    pub crm: Arc<dyn CrmSystem>,
}
