//! Sentence encoder: the `Encoder` trait, its BERT implementation on candle or
//! ONNX Runtime, the model-thread handle the rest of the app talks to, the
//! `kefu-model.json` manifest, and the importer that installs models and the
//! runtime library into `models/`.
//!
//! NOTE: candle is used here for inference, and besides only where kefu
//! trains: the softmax head (`nlu/head.rs`) and fine-tuning
//! (`learning/finetune.rs`). Everything else sees plain `Vec<Vec<f32>>`
//! rows, L2-normalised, one per input text.

pub mod bert;
pub mod handle;
#[cfg(test)]
pub mod hashed;
pub mod import;
pub mod manifest;
pub mod onnx;
pub mod timing;
mod tokenizer;

use std::path::{Path, PathBuf};

pub use bert::BertEncoder;
pub use handle::{BatchOptions, EncoderHandle};
pub use manifest::{Manifest, Pooling};

/// Which engine runs the encoder, as configured (`--backend`, `KEFU_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// ONNX Runtime when its library is installed, else candle.
    #[default]
    Auto,
    /// candle: pure Rust, the reference and the fine-tuning engine.
    Candle,
    /// ONNX Runtime: several times faster on short texts; its library must be installed.
    Onnx,
}

/// How ONNX Runtime holds and multiplies the layers' weights, as configured
/// (`--precision`, `KEFU_PRECISION`); candle always runs f32.
///
/// f32 is the default because int8, though its vectors stay within cosine
/// 0.999 of f32, moves the fitted out-of-scope threshold enough to change
/// evaluation figures by more than noise (README, "Current figures").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32: the reference numerics, as candle computes them.
    #[default]
    F32,
    /// int8 weights (a scale per output column) times uint8 activations (a
    /// scale and zero point per token): about twice as fast for one query,
    /// a quarter of the weight memory.
    Int8,
}

/// The engine an encoder is loaded on, with what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    Candle,
    Onnx {
        /// The ONNX Runtime shared library.
        library: PathBuf,
        precision: Precision,
    },
}

impl Backend {
    /// The runtime this choice means given what is installed in `models_dir`.
    pub fn runtime(self, models_dir: &Path, precision: Precision) -> Runtime {
        let library = onnx::runtime_library(models_dir);
        match self {
            Backend::Candle => Runtime::Candle,
            Backend::Auto if !library.is_file() => Runtime::Candle,
            Backend::Auto | Backend::Onnx => Runtime::Onnx { library, precision },
        }
    }
}

/// What a text is, which selects the model's input prefix
/// (`"query: "` / `"passage: "` for e5; nothing for models without prefixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextKind {
    /// A customer message or an exemplar utterance.
    Query,
    /// An answer passage to be retrieved.
    Passage,
}

/// A text-to-vector model. Implementations return one L2-normalised row of
/// `dim()` floats per input text, in input order.
pub trait Encoder: Send {
    /// Length of every returned row.
    fn dim(&self) -> usize;
    /// Stable identifier of the model weights (a sha256 hex digest, with the
    /// numerics appended when they are not f32), used as a cache key for
    /// anything derived from embeddings (e.g. vector indexes).
    fn fingerprint(&self) -> &str;
    /// Embed `texts`; an empty slice yields an empty result.
    fn encode(&self, texts: &[&str], kind: TextKind) -> Result<Vec<Vec<f32>>, EncoderError>;
}

/// Errors from loading or running an encoder.
///
/// NOTE: variants carry strings rather than source errors so the model thread
/// can hand the same failure to every request of a failed batch (`Clone`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum EncoderError {
    /// The model directory itself does not exist.
    #[error("model directory {0} does not exist (install one with `kefu model fetch`)")]
    MissingDir(PathBuf),
    /// A required file of the model directory is absent.
    #[error("model file {0} is missing (re-run `kefu model fetch`)")]
    MissingFile(PathBuf),
    /// A model file exists but cannot be read or parsed.
    #[error("model file {path} is broken: {reason}")]
    BadFile {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Tokenisation of an input failed.
    #[error("tokenizer failed: {0}")]
    Tokenize(String),
    /// The forward pass failed.
    #[error("model inference failed: {0}")]
    Inference(String),
    /// The request queue of the model thread is full; callers should retry
    /// later (the API answers 429).
    #[error("encoder is busy, retry later")]
    Busy,
    /// The model thread has stopped.
    #[error("encoder thread has stopped")]
    Closed,
}
