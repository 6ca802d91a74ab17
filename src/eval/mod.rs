//! Data and metrics for `kefu eval`: loading labelled sets (JSONL, Banking77-style
//! CSV, CLINC150 `data_full.json`), scoring engine predictions against them into
//! the report the contract promises.
//!
//! Running the engine is the caller's job; this module is pure data in, numbers
//! out, so the metric rules can be unit-tested without a model.

mod dataset;
pub mod html;
mod metrics;

use std::path::PathBuf;

pub use dataset::{load_labelled, load_validation, LabelledLine, SetRole, OOS};
pub use metrics::{
    score, ClassStats, Comparison, Confusion, DecisionStats, EvalReport, LineError, Prediction, ReliabilityBin,
    SlotStats,
};

/// Errors from loading labelled sets and scoring predictions.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The file could not be read at all.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// One line (or CSV record) of the file is malformed.
    #[error("{}:{line}: {message}", .path.display())]
    Line {
        /// The file holding the bad line.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// The file as a whole is not a labelled set we understand.
    #[error("{}: {message}", .path.display())]
    Format {
        /// The file that was rejected.
        path: PathBuf,
        /// Why it was rejected.
        message: String,
    },
    /// `score` was given a different number of predictions than lines.
    #[error("{lines} labelled lines but {predictions} predictions")]
    LengthMismatch {
        /// Number of labelled lines.
        lines: usize,
        /// Number of predictions.
        predictions: usize,
    },
    /// `score` was given no lines; every metric would be undefined.
    #[error("nothing to score: the labelled set is empty")]
    NothingToScore,
}
