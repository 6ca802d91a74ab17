//! What recording one answered turn's metrics costs: the HTTP counter and
//! histogram, the turn and hand-off counters, five stage timings and an
//! encoder batch, into the installed Prometheus recorder. Compare with a
//! turn's tens of milliseconds (scripts/metrics-overhead.sh measures it end to end).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use kefu::telemetry;

fn one_turn(c: &mut Criterion) {
    telemetry::install();
    c.bench_function("metrics_of_one_turn", |b| {
        b.iter(|| {
            let started = Instant::now();
            telemetry::http_request("POST", "/v1/answer", 200, Duration::from_millis(12));
            telemetry::turn("handoff", "after_sales", "web");
            telemetry::handoff("complaint");
            for stage in ["embed", "customer_records", "understand", "compose", "store"] {
                telemetry::stage(stage, started);
            }
            telemetry::encoder_batch(1, Duration::from_millis(8));
        })
    });
}

criterion_group!(benches, one_turn);
criterion_main!(benches);
