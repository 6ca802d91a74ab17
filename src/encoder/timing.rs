//! `kefu model bench`: how fast the configured encoder is on given texts,
//! one text per call (a customer's message) and in batches (fitting an
//! index), so backends and peers can be compared on the same texts.

use std::time::Instant;

use indicatif::ProgressBar;
use serde::Serialize;

use super::{Encoder, EncoderError, TextKind};
use crate::support::percentile::nearest_rank;

/// Latency and throughput of one encoder on one set of texts.
#[derive(Debug, Clone, Serialize)]
pub struct EncoderTiming {
    /// Texts timed.
    pub texts: usize,
    /// One text per call: median and 99th percentile, milliseconds.
    pub single_ms_p50: f64,
    pub single_ms_p99: f64,
    /// Texts per call in the batched pass.
    pub batch: usize,
    /// Texts per second in the batched pass.
    pub batched_texts_per_second: f64,
}

/// Time `encoder` on `texts` as queries: each text alone, then all in
/// batches of `batch`; `progress` advances once per text of each pass.
pub fn time_encoder(
    encoder: &dyn Encoder,
    texts: &[&str],
    batch: usize,
    progress: &ProgressBar,
) -> Result<EncoderTiming, EncoderError> {
    // Warm-up: first calls allocate buffers and fault in weights.
    for text in texts.iter().take(8) {
        encoder.encode(&[text], TextKind::Query)?;
    }
    let mut single = Vec::with_capacity(texts.len());
    for text in texts {
        let started = Instant::now();
        encoder.encode(&[text], TextKind::Query)?;
        single.push(started.elapsed().as_secs_f64() * 1000.0);
        progress.inc(1);
    }
    single.sort_by(f64::total_cmp);
    let batch = batch.max(1);
    let started = Instant::now();
    for chunk in texts.chunks(batch) {
        encoder.encode(chunk, TextKind::Query)?;
        progress.inc(chunk.len() as u64);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(EncoderTiming {
        texts: texts.len(),
        single_ms_p50: nearest_rank(&single, 50.0).unwrap_or(0.0),
        single_ms_p99: nearest_rank(&single, 99.0).unwrap_or(0.0),
        batch,
        batched_texts_per_second: texts.len() as f64 / seconds.max(1e-9),
    })
}
