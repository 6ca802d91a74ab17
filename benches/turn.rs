//! One whole turn through the engine on the demo corpus (embed, retrieve,
//! decide, slots, compose; no HTTP, no store), on both encoder backends
//! (ONNX Runtime with f32 and int8 weights),
//! with the embedding cache off so every turn runs the model. The intent
//! model comes from the corpus's fit cache (`kefu index` makes it).

use std::path::Path;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use kefu::corpus::Corpus;
use kefu::encoder::{Backend, BatchOptions, BertEncoder, EncoderHandle, Precision};
use kefu::engine::{Engine, EngineSettings, Query};
use kefu::nlu::slots::Catalogue;

const MESSAGES: [&str; 4] = ["我的订单12345到哪了", "退货地址在哪", "where is my parcel", "冰箱不制冷了怎么办"];

fn turn(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let models = root.join("models");
    let corpus = Corpus::load(&root.join("corpus")).expect("the demo corpus loads");
    let catalogue = Catalogue::load(&root.join("corpus/catalogue.toml")).expect("the demo catalogue loads");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let runtimes =
        [(Backend::Candle, Precision::F32), (Backend::Onnx, Precision::F32), (Backend::Onnx, Precision::Int8)];
    for (backend, precision) in runtimes {
        let encoder =
            match BertEncoder::load_on(&models.join("multilingual-e5-small"), &backend.runtime(&models, precision)) {
                Ok(encoder) => encoder,
                Err(e) => {
                    eprintln!("skipped {backend:?} {precision:?}: {e} (run `kefu model fetch`)");
                    continue;
                }
            };
        let name = encoder.runtime_name();
        let handle =
            EncoderHandle::spawn(Box::new(encoder), BatchOptions { cache_entries: 0, ..BatchOptions::default() });
        let settings = EngineSettings::default();
        let engine = Engine::build(corpus.clone(), &catalogue, handle, settings, &root.join("corpus/.index"), false)
            .expect("the engine builds");
        let mut i = 0;
        c.bench_function(&format!("turn/{name}"), |b| {
            b.iter(|| {
                i = (i + 1) % MESSAGES.len();
                let query = Query {
                    text: MESSAGES[i],
                    scenario: None,
                    now: Utc::now().fixed_offset(),
                    customer_id: None,
                    previous: None,
                    trace_id: "bench",
                };
                runtime.block_on(engine.answer(query))
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = turn
}
criterion_main!(benches);
