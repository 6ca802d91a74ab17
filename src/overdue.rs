//! Ticket SLA: a hand-off ticket still `new` past its pick-up deadline is
//! overdue, and is announced once to the configured webhook.
//!
//! Each sweep asks the store for overdue tickets not pushed yet, claims each
//! one (a lease, so overlapping sweeps never both deliver it), POSTs the JSON
//! notice with retries and exponential backoff, and records the outcome. A
//! round that still fails leaves the ticket for the next sweep, up to a cap of
//! rounds. Time comes from a [`Clock`], so tests move it by hand instead of
//! sleeping.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::StatusCode;
use serde::Serialize;
use tokio::task::JoinHandle;
use url::Url;

use crate::store::{OverduePush, Store, StoreError};
use crate::support::retry::{retry, Backoff};

/// The `event` of every overdue notice.
pub const OVERDUE_EVENT: &str = "ticket.overdue";

/// Where the current time comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to: for tests and replays.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> ManualClock {
        ManualClock(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SlaError {
    #[error("invalid SLA webhook settings: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why one POST to the webhook did not count as delivered.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DeliveryError {
    #[error("webhook answered {0}")]
    Status(StatusCode),
    #[error("webhook timed out")]
    Timeout,
    /// The message never contains the URL (it may hold a secret).
    #[error("webhook unreachable: {0}")]
    Transport(String),
}

/// How overdue notices are delivered.
#[derive(Clone)]
pub struct WebhookSettings {
    /// http(s) URL the notices are POSTed to. May carry a secret (user info, token in the query): never logged whole.
    pub url: Url,
    /// Retries after the first POST within one round.
    pub retries: u32,
    /// Limit for one POST (connect, send, read the status).
    pub timeout: Duration,
    /// Delay before the first retry; doubled before each further one.
    pub backoff: Duration,
    /// Failed rounds (one per sweep) after which a ticket is given up on.
    pub max_attempts: u32,
    /// Most tickets handled by one sweep; the rest wait for the next.
    pub batch: u32,
}

impl WebhookSettings {
    /// The longest one round can take, plus a margin: how long a claim lasts.
    pub fn lease(&self) -> Duration {
        let tries = self.retries.saturating_add(1);
        let posting = self.timeout.saturating_mul(tries);
        // Backoffs before retries 1..=retries: backoff * (2^retries - 1).
        let waiting = self.backoff.saturating_mul(2u32.saturating_pow(self.retries).saturating_sub(1));
        posting.saturating_add(waiting).saturating_add(Duration::from_secs(30))
    }
}

// NOTE: hand-written so that printing the settings never shows a secret in the URL.
impl fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &redact_url(&self.url))
            .field("retries", &self.retries)
            .field("timeout", &self.timeout)
            .field("backoff", &self.backoff)
            .field("max_attempts", &self.max_attempts)
            .field("batch", &self.batch)
            .finish()
    }
}

/// The URL without what may be secret: user info and query are dropped.
pub fn redact_url(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let query = if url.query().is_some() { "?…" } else { "" };
    format!("{}://{host}{port}{}{query}", url.scheme(), url.path())
}

/// The JSON body POSTed for an overdue ticket.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OverdueNotice {
    /// Always [`OVERDUE_EVENT`].
    pub event: &'static str,
    #[serde(flatten)]
    pub ticket: OverduePush,
    /// Whole minutes past the deadline when the sweep saw it.
    pub overdue_minutes: i64,
    /// Path of the ticket in this service's API.
    pub link: String,
    pub detected_at: String,
}

/// The notice for `ticket` as seen at `now`; None when its stored deadline is not a timestamp.
pub fn notice(ticket: &OverduePush, now: DateTime<Utc>) -> Option<OverdueNotice> {
    let due = DateTime::parse_from_rfc3339(&ticket.due_at).ok()?.with_timezone(&Utc);
    Some(OverdueNotice {
        event: OVERDUE_EVENT,
        ticket: ticket.clone(),
        overdue_minutes: overdue_minutes(due, now),
        link: format!("/v1/tickets/{}", ticket.id),
        detected_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// Whole minutes from `due` to `now`, never negative.
pub fn overdue_minutes(due: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (now - due).num_minutes().max(0)
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Overdue tickets not pushed yet when the sweep started.
    pub due: usize,
    pub delivered: usize,
    /// Rounds that failed; those tickets are tried again by a later sweep.
    pub failed: usize,
    /// Tickets that reached the cap of failed rounds in this sweep.
    pub gave_up: usize,
    /// Tickets another sweep claimed, or someone picked up, in the meantime.
    pub skipped: usize,
}

/// Pushes newly overdue tickets to the webhook.
pub struct SlaNotifier {
    store: Store,
    settings: WebhookSettings,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
}

impl SlaNotifier {
    pub fn new(store: Store, settings: WebhookSettings, clock: Arc<dyn Clock>) -> Result<SlaNotifier, SlaError> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            // NOTE: a redirect is not a delivery (and would turn the POST into a GET).
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kefu/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SlaError::Config(e.without_url().to_string()))?;
        Ok(SlaNotifier { store, settings, clock, client })
    }

    /// One pass: every overdue ticket not pushed yet is claimed, POSTed (with
    /// retries) and recorded. Errors only when the store fails.
    pub async fn sweep(&self) -> Result<SweepReport, SlaError> {
        let now = self.clock.now();
        let due = self.store.overdue_unpushed(now, self.settings.max_attempts, self.settings.batch).await?;
        let mut report = SweepReport { due: due.len(), ..SweepReport::default() };
        let lease = chrono::Duration::from_std(self.settings.lease()).unwrap_or(chrono::Duration::hours(1));
        for ticket in &due {
            let Some(notice) = notice(ticket, now) else {
                tracing::warn!(ticket_id = %ticket.id, due_at = %ticket.due_at, "ticket deadline is not a timestamp; not pushing it");
                report.skipped += 1;
                continue;
            };
            if !self.store.claim_overdue_push(&ticket.id, now, now + lease).await? {
                report.skipped += 1;
                continue;
            }
            match self.deliver(&notice).await {
                Ok(()) => {
                    self.store.mark_overdue_pushed(&ticket.id, self.clock.now()).await?;
                    crate::telemetry::overdue_push("sent");
                    tracing::info!(ticket_id = %ticket.id, overdue_minutes = notice.overdue_minutes, "overdue ticket pushed to the SLA webhook");
                    report.delivered += 1;
                }
                Err(err) => {
                    let attempts = self.store.record_overdue_push_failure(&ticket.id, &err.to_string()).await?;
                    report.failed += 1;
                    let webhook = redact_url(&self.settings.url);
                    let gave_up = attempts >= i64::from(self.settings.max_attempts);
                    crate::telemetry::overdue_push(if gave_up { "failed" } else { "retry" });
                    if gave_up {
                        report.gave_up += 1;
                        tracing::error!(ticket_id = %ticket.id, %webhook, attempts, error = %err, "giving up pushing an overdue ticket");
                    } else {
                        tracing::warn!(ticket_id = %ticket.id, %webhook, attempts, error = %err, "overdue ticket push failed; the next sweep tries again");
                    }
                }
            }
        }
        Ok(report)
    }

    /// POSTs `notice` until a 2xx, at most `1 + retries` times.
    async fn deliver(&self, notice: &OverdueNotice) -> Result<(), DeliveryError> {
        let backoff = Backoff::doubling(self.settings.retries, self.settings.backoff);
        retry(
            backoff,
            || self.post(notice),
            |_| true,
            |retry, err, delay| tracing::debug!(ticket_id = %notice.ticket.id, retry, error = %err, ?delay, "SLA webhook POST failed, retrying"),
        )
        .await
    }

    async fn post(&self, notice: &OverdueNotice) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(notice).map_err(|e| DeliveryError::Transport(e.to_string()))?;
        let response = self
            .client
            .post(self.settings.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            // Receivers can drop a repeat (a sweep that died between POST and record).
            .header("idempotency-key", format!("{OVERDUE_EVENT}:{}", notice.ticket.id))
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Status(status))
        }
    }
}

fn transport_error(err: reqwest::Error) -> DeliveryError {
    if err.is_timeout() {
        return DeliveryError::Timeout;
    }
    // The causes say why ("connection refused"); the URL is dropped since it may hold a secret.
    let err = err.without_url();
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    DeliveryError::Transport(message)
}

/// Runs a sweep every `every` until the runtime stops. A failed or panicking
/// sweep is logged and the next one runs as usual: this never takes the server down.
pub fn spawn(notifier: SlaNotifier, every: Duration) -> JoinHandle<()> {
    let notifier = Arc::new(notifier);
    tokio::spawn(async move {
        tracing::info!(webhook = %redact_url(&notifier.settings.url), every_secs = every.as_secs_f32(), "SLA webhook sweeps started");
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let sweeping = Arc::clone(&notifier);
            match tokio::spawn(async move { sweeping.sweep().await }).await {
                Ok(Ok(report)) if report.due > 0 => tracing::info!(?report, "SLA sweep"),
                Ok(Ok(_)) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "SLA sweep failed; trying again at the next one"),
                Err(err) => tracing::error!(error = %err, "SLA sweep panicked; trying again at the next one"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::Json;
    use chrono::Duration as Minutes;
    use serde_json::{json, Value};

    use super::*;
    use crate::store::testing::open_handoff_ticket;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-06-15T02:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn overdue_push() -> OverduePush {
        OverduePush {
            id: "T-1".into(),
            priority: crate::tickets::Priority::High,
            queue: "after_sales".into(),
            reason: "repeat_fault".into(),
            customer_id: Some("c1001".into()),
            intent: "repair_request".into(),
            created_at: "2026-06-15T02:00:00.000000Z".into(),
            due_at: "2026-06-15T04:00:00.000000Z".into(),
            attempts: 0,
        }
    }

    #[test]
    fn notice_carries_the_ticket_and_how_late_it_is() {
        let got = notice(&overdue_push(), t0() + Minutes::minutes(121) + Minutes::seconds(59)).unwrap();
        let expected = json!({
            "event": "ticket.overdue", "ticket_id": "T-1", "priority": "high", "queue": "after_sales",
            "reason": "repeat_fault", "customer_id": "c1001", "intent": "repair_request",
            "created_at": "2026-06-15T02:00:00.000000Z", "due_at": "2026-06-15T04:00:00.000000Z",
            "overdue_minutes": 1, "link": "/v1/tickets/T-1", "detected_at": "2026-06-15T04:01:59Z",
        });
        assert_eq!(serde_json::to_value(&got).unwrap(), expected);
        assert_eq!(overdue_minutes(t0(), t0() - Minutes::minutes(5)), 0);
        assert!(notice(&OverduePush { due_at: "tomorrow".into(), ..overdue_push() }, t0()).is_none());
    }

    #[test]
    fn webhook_urls_are_never_shown_with_secrets() {
        let url = Url::parse("https://ops:hunter2@hooks.example.com:8443/kefu/sla?token=s3cret").unwrap();
        assert_eq!(redact_url(&url), "https://hooks.example.com:8443/kefu/sla?…");
        let settings = WebhookSettings {
            url,
            retries: 2,
            timeout: Duration::from_secs(1),
            backoff: Duration::from_millis(100),
            max_attempts: 5,
            batch: 10,
        };
        let printed = format!("{settings:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("s3cret"), "{printed}");
    }

    #[test]
    fn the_lease_outlasts_a_round() {
        let backoff = Duration::from_millis(100);
        let settings = WebhookSettings {
            url: Url::parse("http://127.0.0.1:9/").unwrap(),
            retries: 3,
            timeout: Duration::from_secs(2),
            backoff,
            max_attempts: 5,
            batch: 10,
        };
        let round = Duration::from_secs(2) * 4 + Duration::from_millis(100 + 200 + 400);
        assert!(settings.lease() > round, "{:?}", settings.lease());
        assert!(WebhookSettings { retries: u32::MAX, ..settings }.lease() >= round, "no overflow");
    }

    /// A webhook receiver on a free loopback port: answers 500 to the next
    /// `failures` requests, then 204; keeps every body it accepted.
    #[derive(Clone, Default)]
    struct Receiver {
        failures: Arc<AtomicUsize>,
        requests: Arc<AtomicUsize>,
        accepted: Arc<Mutex<Vec<(Value, String)>>>,
    }

    impl Receiver {
        async fn start() -> (Receiver, Url) {
            let receiver = Receiver::default();
            let app =
                axum::Router::new().route("/hooks/sla", axum::routing::post(receive)).with_state(receiver.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = Url::parse(&format!("http://{}/hooks/sla", listener.local_addr().unwrap())).unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            (receiver, url)
        }

        fn fail_next(&self, n: usize) {
            self.failures.store(n, Ordering::SeqCst);
        }

        fn requests(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }

        fn accepted(&self) -> Vec<(Value, String)> {
            self.accepted.lock().unwrap().clone()
        }
    }

    async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, Json(body): Json<Value>) -> StatusCode {
        receiver.requests.fetch_add(1, Ordering::SeqCst);
        if receiver.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
        let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        receiver.accepted.lock().unwrap().push((body, key));
        StatusCode::NO_CONTENT
    }

    async fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::sqlite_store(dir.path()).await;
        (dir, store)
    }

    fn notifier(store: &Store, url: Url, clock: &Arc<ManualClock>, retries: u32, max_attempts: u32) -> SlaNotifier {
        let settings = WebhookSettings {
            url,
            retries,
            timeout: Duration::from_secs(5),
            backoff: Duration::from_millis(1),
            max_attempts,
            batch: 100,
        };
        SlaNotifier::new(store.clone(), settings, Arc::clone(clock) as Arc<dyn Clock>).unwrap()
    }

    #[tokio::test]
    async fn an_overdue_ticket_is_pushed_once_after_its_deadline() {
        // Also on PostgreSQL when KEFU_TEST_POSTGRES_URL is set.
        for t in crate::store::testing::test_stores().await {
            pushed_once_after_the_deadline(&t.store).await;
            t.cleanup().await;
        }
    }

    async fn pushed_once_after_the_deadline(store: &Store) {
        let (receiver, url) = Receiver::start().await;
        let clock = Arc::new(ManualClock::new(t0()));
        open_handoff_ticket(store, "T-late", t0()).await;
        let sla = notifier(store, url, &clock, 2, 10);

        clock.set(t0() + Minutes::minutes(119));
        assert_eq!(sla.sweep().await.unwrap(), SweepReport::default());
        assert_eq!(receiver.requests(), 0, "not overdue yet at 1h59m");

        clock.set(t0() + Minutes::minutes(121));
        receiver.fail_next(1);
        let report = sla.sweep().await.unwrap();
        assert_eq!(report, SweepReport { due: 1, delivered: 1, ..SweepReport::default() });
        assert_eq!(receiver.requests(), 2, "one 500, then delivered on the retry");
        let accepted = receiver.accepted();
        assert_eq!(accepted.len(), 1);
        let (body, key) = &accepted[0];
        assert_eq!(body["ticket_id"], "T-late");
        assert_eq!(body["event"], "ticket.overdue");
        assert_eq!(
            (body["queue"].as_str(), body["priority"].as_str(), body["customer_id"].as_str()),
            (Some("after_sales"), Some("high"), Some("c1001"))
        );
        assert_eq!(body["overdue_minutes"], 1);
        assert_eq!(body["link"], "/v1/tickets/T-late");
        assert_eq!(key, "ticket.overdue:T-late");
        let state = store.overdue_push_state("T-late").await.unwrap().unwrap();
        assert_eq!(
            state.pushed_at.as_deref(),
            Some(crate::support::time::stamp(t0() + Minutes::minutes(121)).as_str())
        );

        // Later sweeps (and a restart: a fresh notifier on the same database) leave it alone.
        clock.advance(Minutes::minutes(30));
        assert_eq!(sla.sweep().await.unwrap(), SweepReport::default());
        let restarted = notifier(store, sla.settings.url.clone(), &clock, 2, 10);
        assert_eq!(restarted.sweep().await.unwrap().due, 0);
        assert_eq!(receiver.requests(), 2);
        // The list the API serves still shows it as overdue: pushing does not hide it.
        let listed = store
            .tickets(&crate::store::TicketFilter { overdue: true, ..Default::default() }, clock.now())
            .await
            .unwrap();
        assert_eq!(listed.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["T-late"]);
    }

    #[tokio::test]
    async fn a_ticket_picked_up_in_time_is_never_pushed() {
        let (_dir, store) = temp_store().await;
        let (receiver, url) = Receiver::start().await;
        let clock = Arc::new(ManualClock::new(t0()));
        open_handoff_ticket(&store, "T-taken", t0()).await;
        open_handoff_ticket(&store, "T-left", t0() + Minutes::minutes(10)).await;
        store
            .move_ticket(
                "T-taken",
                crate::tickets::Status::Assigned,
                Some("agent-7"),
                None,
                "test",
                t0() + Minutes::minutes(90),
            )
            .await
            .unwrap();
        let sla = notifier(&store, url, &clock, 0, 10);

        for minutes in [60, 125, 131, 600] {
            clock.set(t0() + Minutes::minutes(minutes));
            sla.sweep().await.unwrap();
        }
        let pushed: Vec<Value> = receiver.accepted().into_iter().map(|(body, _)| body["ticket_id"].clone()).collect();
        assert_eq!(pushed, [json!("T-left")]);
        assert_eq!(store.overdue_push_state("T-taken").await.unwrap().unwrap().pushed_at, None);
    }

    #[tokio::test]
    async fn a_failing_webhook_is_retried_by_later_sweeps_until_it_recovers() {
        let (_dir, store) = temp_store().await;
        let (receiver, url) = Receiver::start().await;
        let clock = Arc::new(ManualClock::new(t0() + Minutes::hours(3)));
        open_handoff_ticket(&store, "T-1", t0()).await;
        let sla = notifier(&store, url, &clock, 1, 10);

        receiver.fail_next(usize::MAX);
        for round in 1..=2 {
            let report = sla.sweep().await.unwrap();
            assert_eq!(report, SweepReport { due: 1, failed: 1, ..SweepReport::default() });
            let state = store.overdue_push_state("T-1").await.unwrap().unwrap();
            assert_eq!((state.pushed_at, state.attempts), (None, round));
            assert_eq!(state.last_error.as_deref(), Some("webhook answered 500 Internal Server Error"));
            clock.advance(Minutes::seconds(30));
        }
        assert_eq!(receiver.requests(), 4, "two rounds of one POST and one retry");
        assert!(receiver.accepted().is_empty());

        receiver.fail_next(0);
        assert_eq!(sla.sweep().await.unwrap().delivered, 1);
        assert_eq!(sla.sweep().await.unwrap().due, 0);
        assert_eq!(receiver.accepted().len(), 1);
        let state = store.overdue_push_state("T-1").await.unwrap().unwrap();
        assert!(state.pushed_at.is_some() && state.last_error.is_none(), "{state:?}");
    }

    #[tokio::test]
    async fn an_unreachable_webhook_is_given_up_after_the_cap() {
        let (_dir, store) = temp_store().await;
        // A port that was free a moment ago: connections are refused.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let clock = Arc::new(ManualClock::new(t0() + Minutes::hours(3)));
        open_handoff_ticket(&store, "T-1", t0()).await;
        let sla = notifier(&store, Url::parse(&format!("http://{closed}/hook")).unwrap(), &clock, 1, 2);

        assert_eq!(sla.sweep().await.unwrap(), SweepReport { due: 1, failed: 1, ..SweepReport::default() });
        assert_eq!(sla.sweep().await.unwrap(), SweepReport { due: 1, failed: 1, gave_up: 1, ..SweepReport::default() });
        assert_eq!(sla.sweep().await.unwrap(), SweepReport::default(), "no rounds past the cap");
        let state = store.overdue_push_state("T-1").await.unwrap().unwrap();
        assert_eq!((state.pushed_at, state.attempts), (None, 2));
        let error = state.last_error.unwrap();
        assert!(
            error.starts_with("webhook unreachable")
                && error.contains("refused")
                && !error.contains(&closed.to_string()),
            "{error}"
        );
    }
}
