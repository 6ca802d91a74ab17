//! Enterprise systems reached over HTTP with JSON bodies. Each system has its
//! own base URL, optional auth header, timeout and retry policy.
//!
//! Endpoints (GET, relative to the system's base URL; bodies are the JSON form
//! of the structs in [`super`]):
//! - `customers/{id}/orders` -> `[Order]`, `orders/{id}` -> `Order`
//! - `stock/{product}` -> `[StockRow]`
//! - `customers/{id}/refunds` -> `[Refund]`, `customers/{id}/repairs` -> `[RepairRecord]`
//! - `customers/{id}` -> `Customer`
//!
//! A 404 means "no such record": None for single records, empty for lists.
//! Connect errors, timeouts and 5xx are retried with exponential backoff;
//! other 4xx are not, since asking again cannot change the answer.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use std::sync::Arc;
use url::Url;

use crate::support::retry::{retry, Backoff};

use super::{
    AfterSalesSystem, ConnectorError, ConnectorFuture, Connectors, CrmSystem, Ctx, Customer, InventorySystem, Order,
    OrderSystem, Refund, RefundSystem, RepairRecord, StockRow,
};

/// How to reach one enterprise system. In the config file the durations are
/// written in milliseconds: `timeout_ms`, `backoff_ms`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Base URL the endpoint paths are appended to, e.g. `http://erp.internal/api/v1`.
    pub base_url: String,
    /// Header sent with every request, as (name, value), e.g. ("Authorization", "Bearer ...").
    /// The value is a secret: it is never logged or printed.
    #[serde(default)]
    pub auth_header: Option<(String, String)>,
    /// Limit for one attempt (connect, send and read the body).
    #[serde(rename = "timeout_ms", deserialize_with = "millis", default = "default_timeout")]
    pub timeout: Duration,
    /// Attempts after the first one, on connect errors, timeouts and 5xx.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Delay before the first retry; doubled before each further one.
    #[serde(rename = "backoff_ms", deserialize_with = "millis", default = "default_backoff")]
    pub backoff: Duration,
}

fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

fn default_timeout() -> Duration {
    Duration::from_secs(3)
}

fn default_retries() -> u32 {
    2
}

fn default_backoff() -> Duration {
    Duration::from_millis(200)
}

// NOTE: hand-written so that printing the configuration never shows the auth value.
impl fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSettings")
            .field("base_url", &self.base_url)
            .field("auth_header", &self.auth_header.as_ref().map(|(name, _)| (name, "<redacted>")))
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .finish()
    }
}

/// Settings of every enterprise system, as a `[connectors]`-style config section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConnectorSettings {
    pub orders: HttpSettings,
    pub inventory: HttpSettings,
    pub refunds: HttpSettings,
    pub after_sales: HttpSettings,
    pub crm: HttpSettings,
}

/// Builds [`Connectors`] that call each system over HTTP.
pub fn http_connectors(settings: &HttpConnectorSettings) -> Result<Connectors, ConnectorError> {
    Ok(Connectors {
        orders: Arc::new(HttpSystem::new(&settings.orders)?),
        inventory: Arc::new(HttpSystem::new(&settings.inventory)?),
        refunds: Arc::new(HttpSystem::new(&settings.refunds)?),
        after_sales: Arc::new(HttpSystem::new(&settings.after_sales)?),
        crm: Arc::new(HttpSystem::new(&settings.crm)?),
    })
}

/// One enterprise system over HTTP; implements every system trait, so the same
/// type serves whichever endpoints its base URL offers.
#[derive(Clone)]
pub struct HttpSystem {
    client: reqwest::Client,
    base: Url,
    backoff: Backoff,
}

/// Outcome of one failed attempt: whether another attempt may succeed.
enum Failure {
    Retry(ConnectorError),
    Final(ConnectorError),
}

impl Failure {
    fn error(&self) -> &ConnectorError {
        match self {
            Failure::Retry(e) | Failure::Final(e) => e,
        }
    }

    fn into_error(self) -> ConnectorError {
        match self {
            Failure::Retry(e) | Failure::Final(e) => e,
        }
    }
}

impl HttpSystem {
    /// Builds the client; fails on an unparsable base URL or header.
    pub fn new(settings: &HttpSettings) -> Result<HttpSystem, ConnectorError> {
        let base = Url::parse(&settings.base_url)
            .map_err(|e| ConnectorError::Config(format!("base_url {:?}: {e}", settings.base_url)))?;
        if base.cannot_be_a_base() {
            return Err(ConnectorError::Config(format!("base_url {:?} cannot be a base", settings.base_url)));
        }
        let mut headers = HeaderMap::new();
        if let Some((name, value)) = &settings.auth_header {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| ConnectorError::Config(format!("auth header name {name:?}: {e}")))?;
            // The value itself stays out of the message: it is a secret.
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| ConnectorError::Config(format!("auth header {name} has an invalid value")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .default_headers(headers)
            .build()
            .map_err(|e| ConnectorError::Config(e.to_string()))?;
        Ok(HttpSystem { client, base, backoff: Backoff::doubling(settings.retries, settings.backoff) })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // `new` rejected cannot-be-a-base URLs, so path segments are always editable;
        // pushing segments (not formatting strings) percent-encodes ids.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// GETs `segments` as JSON; Ok(None) on 404. Retries what may pass next time.
    async fn get<T: DeserializeOwned>(&self, ctx: &Ctx<'_>, segments: &[&str]) -> Result<Option<T>, ConnectorError> {
        let url = self.url(segments);
        let outcome = retry(
            self.backoff,
            || self.attempt(ctx, &url),
            |failure| matches!(failure, Failure::Retry(_)),
            |attempt, failure, delay| {
                tracing::warn!(trace_id = ctx.trace_id, path = url.path(), attempt, error = %failure.error(), ?delay, "enterprise system call failed, retrying")
            },
        )
        .await;
        outcome.map_err(|failure| {
            let err = failure.into_error();
            tracing::warn!(trace_id = ctx.trace_id, path = url.path(), error = %err, "enterprise system call failed");
            err
        })
    }

    async fn attempt<T: DeserializeOwned>(&self, ctx: &Ctx<'_>, url: &Url) -> Result<Option<T>, Failure> {
        tracing::debug!(trace_id = ctx.trace_id, path = url.path(), "enterprise system call");
        let response =
            self.client.get(url.clone()).header("x-trace-id", ctx.trace_id).send().await.map_err(transport_failure)?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status.is_server_error() {
            return Err(Failure::Retry(ConnectorError::Unavailable(format!("status {status}"))));
        }
        if !status.is_success() {
            return Err(Failure::Final(ConnectorError::BadResponse(format!("status {status}"))));
        }
        let body = response.bytes().await.map_err(transport_failure)?;
        serde_json::from_slice(&body).map(Some).map_err(|e| Failure::Final(ConnectorError::BadResponse(e.to_string())))
    }
}

fn transport_failure(err: reqwest::Error) -> Failure {
    if err.is_timeout() {
        Failure::Retry(ConnectorError::Timeout)
    } else {
        // NOTE: reqwest's message names the URL but never the headers, so the
        // auth value cannot leak through it.
        Failure::Retry(ConnectorError::Unavailable(err.to_string()))
    }
}

impl OrderSystem for HttpSystem {
    fn orders_of<'a>(&'a self, ctx: &'a Ctx<'_>, customer_id: &'a str) -> ConnectorFuture<'a, Vec<Order>> {
        Box::pin(async move { Ok(self.get(ctx, &["customers", customer_id, "orders"]).await?.unwrap_or_default()) })
    }

    fn order<'a>(&'a self, ctx: &'a Ctx<'_>, order_id: &'a str) -> ConnectorFuture<'a, Option<Order>> {
        Box::pin(async move { self.get(ctx, &["orders", order_id]).await })
    }
}

impl InventorySystem for HttpSystem {
    fn stock<'a>(&'a self, ctx: &'a Ctx<'_>, product_type: &'a str) -> ConnectorFuture<'a, Vec<StockRow>> {
        Box::pin(async move { Ok(self.get(ctx, &["stock", product_type]).await?.unwrap_or_default()) })
    }
}

impl RefundSystem for HttpSystem {
    fn refunds_of<'a>(&'a self, ctx: &'a Ctx<'_>, customer_id: &'a str) -> ConnectorFuture<'a, Vec<Refund>> {
        Box::pin(async move { Ok(self.get(ctx, &["customers", customer_id, "refunds"]).await?.unwrap_or_default()) })
    }
}

impl AfterSalesSystem for HttpSystem {
    fn repairs_of<'a>(&'a self, ctx: &'a Ctx<'_>, customer_id: &'a str) -> ConnectorFuture<'a, Vec<RepairRecord>> {
        Box::pin(async move { Ok(self.get(ctx, &["customers", customer_id, "repairs"]).await?.unwrap_or_default()) })
    }
}

impl CrmSystem for HttpSystem {
    fn customer<'a>(&'a self, ctx: &'a Ctx<'_>, customer_id: &'a str) -> ConnectorFuture<'a, Option<Customer>> {
        Box::pin(async move { self.get(ctx, &["customers", customer_id]).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use axum::extract::{Path, State};
    use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus};
    use axum::routing::get;
    use axum::{Json, Router};
    use chrono::{DateTime, Utc};

    #[derive(Default)]
    struct Calls {
        stock: AtomicUsize,
        repairs: AtomicUsize,
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn sample_order(id: &str) -> Order {
        Order {
            id: id.into(),
            customer_id: "c1".into(),
            product: "dress".into(),
            product_name: "连衣裙".into(),
            status: "paid".into(),
            placed_at: at("2026-06-14T02:00:00Z"),
            amount_cny: 459.0,
            address: "杭州".into(),
            carrier: None,
            tracking_no: None,
            logistics: vec![],
            eta: None,
        }
    }

    async fn serve(calls: Arc<Calls>) -> String {
        let app = Router::new()
            .route(
                "/api/customers/{id}/orders",
                get(|Path(id): Path<String>| async move { Json(vec![sample_order(&format!("{id}-1"))]) }),
            )
            .route(
                "/api/orders/{id}",
                get(|Path(id): Path<String>| async move {
                    if id == "12345" {
                        Ok(Json(sample_order(&id)))
                    } else {
                        Err(AxumStatus::NOT_FOUND)
                    }
                }),
            )
            .route(
                "/api/customers/{id}",
                get(|Path(id): Path<String>| async move {
                    if id == "c1" {
                        Ok(Json(Customer {
                            id,
                            name: "张伟".into(),
                            phone: "13812345678".into(),
                            spend_12m_cny: 12000.0,
                            since: at("2022-01-01T00:00:00Z"),
                        }))
                    } else {
                        Err(AxumStatus::NOT_FOUND)
                    }
                }),
            )
            .route(
                "/api/stock/{product}",
                get(|State(calls): State<Arc<Calls>>, Path(product): Path<String>| async move {
                    if calls.stock.fetch_add(1, Ordering::SeqCst) == 0 {
                        return Err(AxumStatus::INTERNAL_SERVER_ERROR);
                    }
                    Ok(Json(vec![StockRow { warehouse: "杭州仓".into(), product, quantity: 3 }]))
                }),
            )
            .route(
                "/api/customers/{id}/refunds",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Json(Vec::<Refund>::new())
                }),
            )
            .route(
                "/api/customers/{id}/repairs",
                get(|State(calls): State<Arc<Calls>>, headers: AxumHeaders| async move {
                    calls.repairs.fetch_add(1, Ordering::SeqCst);
                    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some("s3cret") {
                        return Err(AxumStatus::UNAUTHORIZED);
                    }
                    Ok(Json(Vec::<RepairRecord>::new()))
                }),
            )
            .with_state(calls);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/api/")
    }

    fn settings(base: &str) -> HttpSettings {
        HttpSettings {
            base_url: base.into(),
            auth_header: None,
            timeout: Duration::from_millis(300),
            retries: 2,
            backoff: Duration::from_millis(20),
        }
    }

    fn ctx() -> Ctx<'static> {
        Ctx { now: at("2026-06-15T02:30:00Z"), trace_id: "t-http" }
    }

    #[tokio::test]
    async fn fetches_records_and_maps_404_to_none() {
        let base = serve(Arc::default()).await;
        let sys = HttpSystem::new(&settings(&base)).unwrap();
        let orders = sys.orders_of(&ctx(), "c1").await.unwrap();
        assert_eq!(orders, vec![sample_order("c1-1")]);
        assert_eq!(sys.order(&ctx(), "12345").await.unwrap(), Some(sample_order("12345")));
        assert_eq!(sys.order(&ctx(), "99999").await.unwrap(), None);
        assert_eq!(sys.customer(&ctx(), "c1").await.unwrap().unwrap().name, "张伟");
        assert_eq!(sys.customer(&ctx(), "nobody").await.unwrap(), None);
        // Ids are path segments, percent-encoded, not path syntax.
        assert_eq!(sys.order(&ctx(), "../customers/c1").await.unwrap(), None);
    }

    #[tokio::test]
    async fn retries_a_5xx_then_succeeds() {
        let calls = Arc::new(Calls::default());
        let base = serve(calls.clone()).await;
        let sys = HttpSystem::new(&settings(&base)).unwrap();
        let rows = sys.stock(&ctx(), "dress").await.unwrap();
        assert_eq!(rows, vec![StockRow { warehouse: "杭州仓".into(), product: "dress".into(), quantity: 3 }]);
        assert_eq!(calls.stock.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_slow_system_times_out_within_bounded_time() {
        let base = serve(Arc::default()).await;
        let sys = HttpSystem::new(&HttpSettings { retries: 1, ..settings(&base) }).unwrap();
        let started = Instant::now();
        let err = sys.refunds_of(&ctx(), "c1").await.unwrap_err();
        assert!(matches!(err, ConnectorError::Timeout), "{err:?}");
        // Two attempts of 300 ms and one 20 ms backoff, far below the handler's 5 s.
        assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn sends_the_auth_header_and_does_not_retry_a_4xx() {
        let calls = Arc::new(Calls::default());
        let base = serve(calls.clone()).await;
        let with_auth = HttpSettings { auth_header: Some(("X-Api-Key".into(), "s3cret".into())), ..settings(&base) };
        assert!(HttpSystem::new(&with_auth).unwrap().repairs_of(&ctx(), "c1").await.unwrap().is_empty());
        assert_eq!(calls.repairs.load(Ordering::SeqCst), 1);
        let err = HttpSystem::new(&settings(&base)).unwrap().repairs_of(&ctx(), "c1").await.unwrap_err();
        assert!(matches!(err, ConnectorError::BadResponse(_)), "{err:?}");
        assert_eq!(calls.repairs.load(Ordering::SeqCst), 2, "401 is not retried");
        assert!(!format!("{with_auth:?}").contains("s3cret"));
    }

    #[tokio::test]
    async fn an_unreachable_system_is_unavailable() {
        // Bind then drop a listener to get a port nobody listens on.
        let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let sys = HttpSystem::new(&settings(&format!("http://127.0.0.1:{port}/"))).unwrap();
        let err = sys.customer(&ctx(), "c1").await.unwrap_err();
        assert!(matches!(err, ConnectorError::Unavailable(_)), "{err:?}");
    }

    #[test]
    fn settings_read_from_toml_with_millisecond_durations() {
        let all: HttpConnectorSettings = toml::from_str(
            r#"
            orders = { base_url = "http://erp.internal/api", auth_header = ["Authorization", "Bearer t0k"], timeout_ms = 1500, retries = 3, backoff_ms = 50 }
            inventory = { base_url = "http://wms.internal/" }
            refunds = { base_url = "http://erp.internal/api" }
            after_sales = { base_url = "http://service.internal/" }
            crm = { base_url = "http://crm.internal/" }
            "#,
        )
        .unwrap();
        assert_eq!(all.orders.timeout, Duration::from_millis(1500));
        assert_eq!((all.orders.retries, all.orders.backoff), (3, Duration::from_millis(50)));
        assert_eq!(all.inventory.timeout, default_timeout());
        assert!(!format!("{all:?}").contains("t0k"));
        assert!(http_connectors(&all).is_ok());
        let bad = HttpSettings { base_url: "not a url".into(), ..all.crm.clone() };
        assert!(matches!(HttpSystem::new(&bad), Err(ConnectorError::Config(_))));
    }
}
