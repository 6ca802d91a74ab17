//! Encoder latency on the default model, on both backends (ONNX Runtime with
//! f32 and int8 weights) side by side:
//! 1, 8 and 32 texts, short (a customer's question) and long (a paragraph).
//! A backend that is not installed is skipped with a note.

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use kefu::encoder::{Backend, BertEncoder, Encoder, Precision, TextKind};

const SHORT: [&str; 4] = ["快递到哪了", "退货地址在哪", "where is my parcel", "冰箱不制冷了"];
const LONG: &str = "我上周在你们旗舰店买的冰箱到货以后一直不制冷，师傅来看过一次说是压缩机的问题，\
    到现在已经等了五天还没有人联系我换货，订单号是12345，请尽快给我一个处理方案，不然我只能去投诉了。";

fn encode(c: &mut Criterion) {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let dir = models.join("multilingual-e5-small");
    let mut group = c.benchmark_group("encode");
    let runtimes =
        [(Backend::Candle, Precision::F32), (Backend::Onnx, Precision::F32), (Backend::Onnx, Precision::Int8)];
    for (backend, precision) in runtimes {
        let encoder = match BertEncoder::load_on(&dir, &backend.runtime(&models, precision)) {
            Ok(encoder) => encoder,
            Err(e) => {
                eprintln!("skipped {backend:?} {precision:?}: {e} (run `kefu model fetch`)");
                continue;
            }
        };
        let name = encoder.runtime_name();
        for count in [1, 8, 32] {
            let short: Vec<&str> = SHORT.iter().cycle().take(count).copied().collect();
            let long = vec![LONG; count];
            for (length, texts) in [("short", short), ("long", long)] {
                group.bench_with_input(BenchmarkId::new(format!("{name}/{length}"), count), &texts, |b, texts| {
                    b.iter(|| encoder.encode(texts, TextKind::Query))
                });
            }
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = encode
}
criterion_main!(benches);
