//! Encoder latency: one short Chinese query, and a batch of 32, on the
//! default model (skipped with a note when it is not installed).

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use kefu::encoder::{BertEncoder, Encoder, TextKind};

fn encode(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/multilingual-e5-small");
    let Ok(encoder) = BertEncoder::load(&dir) else {
        eprintln!("skipped: {} is not installed (run `kefu model fetch`)", dir.display());
        return;
    };
    c.bench_function("encode one short Chinese query", |b| b.iter(|| encoder.encode(&["快递到哪了"], TextKind::Query)));
    let batch: Vec<&str> = ["我昨天买的裙子能改地址吗", "退货地址在哪", "where is my parcel", "冰箱不制冷了"].repeat(8);
    c.bench_function("encode a batch of 32 queries", |b| b.iter(|| encoder.encode(&batch, TextKind::Query)));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = encode
}
criterion_main!(benches);
