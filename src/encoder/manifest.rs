//! `kefu-model.json`: what kefu needs to know about a model directory that
//! the Hugging Face files do not say (input prefixes, pooling, length cap,
//! provenance). Written by the importer; optional for hand-dropped models.

use serde::{Deserialize, Serialize};

/// File name of the manifest inside a model directory.
pub const MANIFEST_FILE: &str = "kefu-model.json";

/// How token states are reduced to one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Average over the non-padding tokens (sentence-transformers' default).
    Mean,
    /// The first token's state.
    Cls,
}

/// Contents of `kefu-model.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Model name, equal to its directory name under `models/`.
    pub name: String,
    /// Prepended to `TextKind::Query` inputs (e.g. `"query: "`).
    pub query_prefix: String,
    /// Prepended to `TextKind::Passage` inputs (e.g. `"passage: "`).
    pub passage_prefix: String,
    /// Pooling over token states.
    pub pooling: Pooling,
    /// Token cap per input, special tokens included; clamped to the model's
    /// `max_position_embeddings` at load.
    pub max_length: usize,
    /// Where the weights came from, as `registry:package==version`.
    pub source: String,
    /// sha256 of the downloaded source artefact.
    pub source_sha256: String,
    /// sha256 of `model.safetensors` as written; the encoder fingerprint.
    pub weights_sha256: String,
}
