//! Prometheus metrics: the names kefu exports, the helpers every layer
//! records through, and the one recorder `/metrics` renders.
//!
//! Labels are bounded: routes are matched path templates, scenarios, queues
//! and reasons come from the deployment's taxonomy, and free-form values
//! (channel names a caller chooses) keep their first [`MAX_LABEL_VALUES`]
//! distinct values and fold the rest into `other`. No label carries a
//! customer, a text or an intent's free text.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Distinct values a free-form label may take before the rest count as `other`.
pub const MAX_LABEL_VALUES: usize = 32;

/// Latency buckets in seconds: a turn takes milliseconds, a report seconds.
const SECONDS_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Texts per encoder pass.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

pub const HTTP_REQUESTS: &str = "kefu_http_requests_total";
pub const HTTP_SECONDS: &str = "kefu_http_request_duration_seconds";
pub const TURNS: &str = "kefu_turns_total";
pub const HANDOFFS: &str = "kefu_handoffs_total";
pub const FORWARDED: &str = "kefu_forwarded_messages_total";
pub const STAGE_SECONDS: &str = "kefu_turn_stage_duration_seconds";
pub const ENCODER_QUEUE: &str = "kefu_encoder_queue_depth";
pub const ENCODER_BATCH: &str = "kefu_encoder_batch_texts";
pub const ENCODER_SECONDS: &str = "kefu_encoder_batch_duration_seconds";
pub const TICKETS_OPEN: &str = "kefu_tickets_open";
pub const TICKETS_OVERDUE: &str = "kefu_tickets_overdue";
pub const CORRECTIONS: &str = "kefu_corrections_total";
pub const RETRAINS: &str = "kefu_retrains_total";
pub const OUTBOUND: &str = "kefu_outbound_messages_total";
pub const OVERDUE_PUSHES: &str = "kefu_overdue_pushes_total";
pub const BUILD_INFO: &str = "kefu_build_info";
pub const MODEL_INFO: &str = "kefu_model_info";

/// Every metric kefu exports.
pub const ALL: [&str; 17] = [
    HTTP_REQUESTS,
    HTTP_SECONDS,
    TURNS,
    HANDOFFS,
    FORWARDED,
    STAGE_SECONDS,
    ENCODER_QUEUE,
    ENCODER_BATCH,
    ENCODER_SECONDS,
    TICKETS_OPEN,
    TICKETS_OVERDUE,
    CORRECTIONS,
    RETRAINS,
    OUTBOUND,
    OVERDUE_PUSHES,
    BUILD_INFO,
    MODEL_INFO,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once; later calls return it). Metrics
/// recorded before are lost, so servers install it first. Several servers in
/// one process (the tests) share it, as they would share any global registry.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(SECONDS_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(ENCODER_BATCH.into()),
                    BATCH_BUCKETS,
                )
            })
            .expect("the bucket lists are constant and non-empty")
            .build_recorder();
        let handle = recorder.handle();
        // Only fails when another recorder was installed first; ours then stays empty.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will be empty");
        }
        describe();
        gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(HTTP_REQUESTS, "HTTP requests by method, matched route and status.");
    describe_histogram!(HTTP_SECONDS, Unit::Seconds, "HTTP request latency by method and matched route.");
    describe_counter!(TURNS, "Customer messages the bot answered, by decision, intent scenario and channel.");
    describe_counter!(HANDOFFS, "Hand-offs to people by reason.");
    describe_counter!(FORWARDED, "Customer messages that went to the agent owning the conversation, by channel.");
    describe_histogram!(STAGE_SECONDS, Unit::Seconds, "Time of each stage of a turn.");
    describe_gauge!(ENCODER_QUEUE, "Encoder requests waiting for the model thread.");
    describe_histogram!(ENCODER_BATCH, "Texts per encoder pass.");
    describe_histogram!(ENCODER_SECONDS, Unit::Seconds, "Time of one encoder pass.");
    describe_gauge!(TICKETS_OPEN, "Tickets not yet resolved, by queue.");
    describe_gauge!(TICKETS_OVERDUE, "Unresolved tickets past their due time, by queue.");
    describe_counter!(CORRECTIONS, "Agent corrections stored.");
    describe_counter!(RETRAINS, "Retrains by outcome: promoted, rejected by the gate, failed.");
    describe_counter!(OUTBOUND, "Replies to messaging platforms by channel and result.");
    describe_counter!(OVERDUE_PUSHES, "Overdue-ticket pushes to the webhook by result.");
    describe_gauge!(BUILD_INFO, "kefu's version.");
    describe_gauge!(MODEL_INFO, "The model version served (1) and versions served before (0).");
}

/// The recorder, if installed; without it every metric is a no-op.
pub fn exporter() -> Option<&'static PrometheusHandle> {
    HANDLE.get()
}

/// Drains histogram samples into their buckets now and then, so an unscraped
/// server does not hold every sample.
pub async fn run_upkeep(exporter: &'static PrometheusHandle) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        exporter.run_upkeep();
    }
}

/// Keeps the first [`MAX_LABEL_VALUES`] values of a free-form label.
struct BoundedLabel {
    seen: Mutex<HashSet<String>>,
}

impl BoundedLabel {
    fn new() -> BoundedLabel {
        BoundedLabel { seen: Mutex::new(HashSet::new()) }
    }

    fn of(&self, value: &str) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(value) {
            return value.to_string();
        }
        if seen.len() < MAX_LABEL_VALUES {
            seen.insert(value.to_string());
            return value.to_string();
        }
        "other".to_string()
    }
}

static CHANNELS: std::sync::LazyLock<BoundedLabel> = std::sync::LazyLock::new(BoundedLabel::new);

fn channel_label(channel: &str) -> String {
    CHANNELS.of(channel)
}

/// One HTTP request served.
pub fn http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let (method, route) = (method.to_string(), route.to_string());
    counter!(HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    histogram!(HTTP_SECONDS, "method" => method, "route" => route).record(elapsed.as_secs_f64());
}

/// A turn the bot answered; `scenario` is the intent's (`none` out of scope).
pub fn turn(decision: &str, scenario: &str, channel: &str) {
    counter!(TURNS, "decision" => decision.to_string(), "scenario" => scenario.to_string(), "channel" => channel_label(channel))
        .increment(1);
}

pub fn handoff(reason: &str) {
    counter!(HANDOFFS, "reason" => reason.to_string()).increment(1);
}

pub fn forwarded(channel: &str) {
    counter!(FORWARDED, "channel" => channel_label(channel)).increment(1);
}

/// A stage of a turn that began at `started`.
pub fn stage(name: &'static str, started: Instant) {
    histogram!(STAGE_SECONDS, "stage" => name).record(started.elapsed().as_secs_f64());
}

pub fn encoder_queue(depth: usize) {
    gauge!(ENCODER_QUEUE).set(depth as f64);
}

pub fn encoder_batch(texts: usize, elapsed: Duration) {
    histogram!(ENCODER_BATCH).record(texts as f64);
    histogram!(ENCODER_SECONDS).record(elapsed.as_secs_f64());
}

/// Unresolved and overdue tickets per queue `(queue, open, overdue)`, as
/// counted at a scrape; a queue counted before and without tickets now reads 0.
pub fn tickets(loads: &[(&str, u64, u64)]) {
    static QUEUES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let mut known = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
    let emptied: Vec<String> = known.iter().filter(|q| loads.iter().all(|l| l.0 != q.as_str())).cloned().collect();
    let counts = emptied.into_iter().map(|q| (q, 0, 0)).chain(loads.iter().map(|&(q, o, d)| (q.to_string(), o, d)));
    for (queue, open, overdue) in counts {
        gauge!(TICKETS_OPEN, "queue" => queue.clone()).set(open as f64);
        gauge!(TICKETS_OVERDUE, "queue" => queue.clone()).set(overdue as f64);
        known.insert(queue);
    }
}

pub fn correction() {
    counter!(CORRECTIONS).increment(1);
}

/// A retrain ended: `promoted`, `rejected` (by the gate) or `failed`.
pub fn retrain(outcome: &'static str) {
    counter!(RETRAINS, "outcome" => outcome).increment(1);
}

/// A reply to a platform: `sent`, `retry` (to be tried again) or `failed`.
pub fn outbound(channel: &str, result: &'static str) {
    counter!(OUTBOUND, "channel" => channel_label(channel), "result" => result).increment(1);
}

/// An overdue push: `sent`, `retry` or `failed`.
pub fn overdue_push(result: &'static str) {
    counter!(OVERDUE_PUSHES, "result" => result).increment(1);
}

/// The model version now served; the one served before reads 0.
pub fn model(version: &str, fingerprint: &str) {
    static SERVED: Mutex<Option<(String, String)>> = Mutex::new(None);
    let mut served = SERVED.lock().unwrap_or_else(|e| e.into_inner());
    let now = (version.to_string(), fingerprint.to_string());
    if served.as_ref() == Some(&now) {
        return;
    }
    if let Some((v, f)) = served.take() {
        gauge!(MODEL_INFO, "version" => v, "fingerprint" => f).set(0.0);
    }
    gauge!(MODEL_INFO, "version" => now.0.clone(), "fingerprint" => now.1.clone()).set(1.0);
    *served = Some(now);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grafana_dashboard_reads_only_metrics_kefu_exports() {
        let dashboard = include_str!("../deploy/grafana/kefu-dashboard.json");
        let names = regex::Regex::new(r"kefu_[a-z_]+").unwrap();
        let used: std::collections::BTreeSet<&str> = names
            .find_iter(dashboard)
            .map(|m| m.as_str())
            .map(|name| {
                ["_bucket", "_sum", "_count"].iter().fold(name, |n, suffix| n.strip_suffix(suffix).unwrap_or(n))
            })
            .collect();
        assert!(used.len() >= 10, "{used:?}");
        for name in used {
            assert!(ALL.contains(&name), "the dashboard reads {name}, which kefu does not export");
        }
    }

    #[test]
    fn a_queue_that_empties_reads_zero() {
        let exporter = install();
        tickets(&[("telemetry-test-queue", 2, 1)]);
        assert!(exporter.render().contains(r#"kefu_tickets_open{queue="telemetry-test-queue"} 2"#));
        tickets(&[]);
        let text = exporter.render();
        assert!(text.contains(r#"kefu_tickets_open{queue="telemetry-test-queue"} 0"#), "{text}");
        assert!(text.contains(r#"kefu_tickets_overdue{queue="telemetry-test-queue"} 0"#), "{text}");
    }

    #[test]
    fn free_form_labels_are_bounded() {
        let label = BoundedLabel::new();
        for i in 0..MAX_LABEL_VALUES {
            assert_eq!(label.of(&format!("c{i}")), format!("c{i}"));
        }
        assert_eq!(label.of("one-too-many"), "other");
        assert_eq!(label.of("c0"), "c0", "a known value keeps its label");
    }
}
