//! Encoder fine-tuning on labelled utterances: contrastive pairs
//! (SetFit-style) in candle, on the CPU, with progress and a time budget. The
//! result is written as a new model directory beside the base model, which
//! the encoder loads like any other (its weights digest is the fingerprint,
//! so every cache derived from the old embeddings is rebuilt).
//!
//! Each step takes anchors from distinct intents and one positive of the same
//! intent for each, and scores every anchor against every positive: the other
//! anchors' positives are the negatives (the multiple-negatives ranking loss).
//! Out-of-scope examples join the positives as extra negatives that match no
//! anchor, which pushes them away from every intent.
//!
//! A batch holds only a few dozen intents, most of them easy to tell apart, so
//! a second loss scores the same anchors and positives against a learned
//! prototype of every intent (a cosine classifier started at the intent
//! centroids): each step then also pulls away from the nearest rival intents.
//!
//! Only the top `trainable_layers` transformer layers learn. The layers below
//! are run once per text and their outputs kept, so a step costs a forward and
//! a backward pass through the top layers only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationParams};

use crate::corpus::OOS;
use crate::encoder::manifest::{Manifest, Pooling, MANIFEST_FILE};
use crate::support::fs::{replace_dir, FsError};
use crate::support::progress;

#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error("fine-tuning needs at least two intents with two examples each, found {0}")]
    TooFewPairs(usize),
    #[error("invalid fine-tuning options: {0}")]
    InvalidOptions(String),
    #[error("model {name:?} cannot be fine-tuned: {reason}")]
    Unsupported { name: String, reason: String },
    #[error("tokenising failed: {0}")]
    Tokenize(String),
    #[error("training failed: {0}")]
    Candle(#[from] candle_core::Error),
}

impl From<FsError> for FinetuneError {
    fn from(e: FsError) -> Self {
        FinetuneError::Write { path: e.path, message: e.source.to_string() }
    }
}

/// How to fine-tune.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FinetuneOptions {
    /// Passes over the in-scope examples (each is an anchor once per pass).
    pub epochs: usize,
    /// Anchors per step, each from a different intent.
    pub batch_size: usize,
    /// Out-of-scope examples added as negatives to each step.
    pub oos_negatives: usize,
    /// Peak AdamW learning rate (linear warm-up over the first tenth, then linear decay).
    pub learning_rate: f64,
    /// Top transformer layers that learn; the rest stay frozen.
    pub trainable_layers: usize,
    /// Inverse temperature of both losses over cosine similarities.
    pub scale: f32,
    /// Weight of the prototype classification loss against the ranking loss; 0 turns it off.
    pub class_weight: f32,
    /// Stop (and keep what was learnt) after this long.
    pub time_budget_seconds: u64,
    /// Token cap per input while training (utterances are short; the cap bounds step cost).
    pub max_tokens: usize,
    pub seed: u64,
}

impl Default for FinetuneOptions {
    fn default() -> Self {
        FinetuneOptions {
            epochs: 2,
            batch_size: 32,
            oos_negatives: 8,
            learning_rate: 1e-4,
            trainable_layers: 4,
            scale: 20.0,
            class_weight: 1.0,
            time_budget_seconds: 3600,
            max_tokens: 64,
            seed: 7,
        }
    }
}

/// What a fine-tuning run did.
#[derive(Debug, Clone, Serialize)]
pub struct FinetuneReport {
    pub base: String,
    pub name: String,
    pub dir: PathBuf,
    pub examples: usize,
    pub intents: usize,
    pub steps: usize,
    pub epochs_completed: f32,
    /// Mean training loss over the first and the last tenth of the steps.
    pub first_loss: f32,
    pub last_loss: f32,
    pub stopped_by_budget: bool,
    /// Time spent running the frozen layers once over every text.
    pub prepare_seconds: f32,
    pub seconds: f32,
}

/// The parts of `config.json` the training forward pass needs.
#[derive(Deserialize)]
struct BertDims {
    num_attention_heads: usize,
    num_hidden_layers: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default)]
    hidden_act: Option<String>,
    #[serde(default)]
    pad_token_id: u32,
}

fn default_eps() -> f64 {
    1e-12
}

/// Fine-tunes the model in `base_dir` on `examples` (text, intent or [`OOS`])
/// and writes the result to `<models_dir>/<name>`, replacing a previous one.
pub fn finetune(
    base_dir: &Path,
    models_dir: &Path,
    name: &str,
    examples: &[(&str, &str)],
    opts: &FinetuneOptions,
    show_progress: bool,
) -> Result<FinetuneReport, FinetuneError> {
    let started = Instant::now();
    check_options(opts)?;
    let base_name = base_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (dims, manifest) = read_base(base_dir, &base_name)?;
    let trainable = opts.trainable_layers.min(dims.num_hidden_layers);
    let frozen = dims.num_hidden_layers - trainable;
    let (members, oos_rows) = group_by_intent(examples)?;
    let ids = tokenize(base_dir, &manifest, opts.max_tokens, examples)?;

    let weights_path = base_dir.join("model.safetensors");
    let device = Device::Cpu;
    let mut weights = candle_core::safetensors::load(&weights_path, &device)
        .map_err(|e| FinetuneError::Read { path: weights_path.clone(), message: e.to_string() })?;
    let shape = Shape { heads: dims.num_attention_heads, eps: dims.layer_norm_eps };
    let (embeddings, layers, vars) = load_layers(&weights, dims.num_hidden_layers, frozen)
        .map_err(|message| FinetuneError::Read { path: weights_path.clone(), message })?;
    let bar = progress::bar(ids.len() as u64, show_progress, "preparing");
    let lower = lower_states(&embeddings, &layers[..frozen], &ids, dims.pad_token_id, &shape, &bar)?;
    bar.finish_and_clear();
    let prototypes = if opts.class_weight > 0.0 {
        Some(Var::from_tensor(&intent_centroids(&lower, &members, &layers[frozen..], &shape)?)?)
    } else {
        None
    };
    let prepare_seconds = started.elapsed().as_secs_f32();

    let mut rng = StdRng::seed_from_u64(opts.seed);
    let batches_per_epoch = epoch_batches(&members, opts.batch_size, &mut rng).len();
    let total_steps = batches_per_epoch * opts.epochs;
    let warmup = (total_steps / 10).max(1);
    let learnt = vars.iter().map(|(_, v)| v.clone()).chain(prototypes.clone()).collect();
    let mut adam =
        AdamW::new(learnt, ParamsAdamW { lr: opts.learning_rate, weight_decay: 0.01, ..ParamsAdamW::default() })?;
    let budget = Duration::from_secs(opts.time_budget_seconds);
    let bar = progress::bar(total_steps as u64, show_progress, "fine-tuning");
    let mut losses: Vec<f32> = Vec::with_capacity(total_steps);
    let mut stopped_by_budget = false;
    'epochs: for _ in 0..opts.epochs {
        for anchors in epoch_batches(&members, opts.batch_size, &mut rng) {
            if started.elapsed() > budget {
                stopped_by_budget = true;
                break 'epochs;
            }
            let step = losses.len();
            let lr = if step < warmup {
                (step + 1) as f64 / warmup as f64
            } else {
                (total_steps - step) as f64 / (total_steps - warmup).max(1) as f64
            };
            adam.set_learning_rate(opts.learning_rate * lr);
            let mut rows: Vec<usize> = anchors.iter().map(|&(_, a)| a).collect();
            for &(c, a) in &anchors {
                let others: Vec<usize> = members[c].iter().copied().filter(|&m| m != a).collect();
                rows.push(*others.choose(&mut rng).unwrap_or(&a));
            }
            rows.extend(oos_rows.choose_multiple(&mut rng, opts.oos_negatives).copied());
            let pooled =
                pooled_embeddings(&rows.iter().map(|&i| &lower[i]).collect::<Vec<_>>(), &layers[frozen..], &shape)?;
            let loss = batch_loss(&pooled, &anchors, prototypes.as_ref(), opts)?;
            adam.backward_step(&loss)?;
            let value = loss.to_scalar::<f32>()?;
            losses.push(value);
            bar.set_message(format!("loss {value:.3}"));
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    for (key, var) in &vars {
        weights.insert(key.clone(), var.as_tensor().clone());
    }
    let dir = models_dir.join(name);
    write_model(base_dir, &dir, &weights, &manifest, name)?;
    let tenth = (losses.len() / 10).max(1);
    let mean = |xs: &[f32]| if xs.is_empty() { f32::NAN } else { xs.iter().sum::<f32>() / xs.len() as f32 };
    Ok(FinetuneReport {
        base: base_name,
        name: name.to_string(),
        dir,
        examples: examples.len(),
        intents: members.len(),
        steps: losses.len(),
        epochs_completed: losses.len() as f32 / batches_per_epoch.max(1) as f32,
        first_loss: mean(&losses[..tenth.min(losses.len())]),
        last_loss: mean(&losses[losses.len().saturating_sub(tenth)..]),
        stopped_by_budget,
        prepare_seconds,
        seconds: started.elapsed().as_secs_f32(),
    })
}

fn check_options(opts: &FinetuneOptions) -> Result<(), FinetuneError> {
    let valid = opts.epochs > 0
        && opts.batch_size >= 2
        && opts.trainable_layers > 0
        && opts.learning_rate.is_finite()
        && opts.learning_rate > 0.0
        && opts.max_tokens >= 4
        && opts.class_weight.is_finite()
        && opts.class_weight >= 0.0;
    if valid {
        return Ok(());
    }
    Err(FinetuneError::InvalidOptions(
        "epochs, trainable_layers and learning_rate must be positive, batch_size at least 2, max_tokens at least 4, class_weight a number >= 0".into(),
    ))
}

/// The base model's dimensions and manifest, if kefu can fine-tune it (gelu, mean pooling).
fn read_base(base_dir: &Path, base_name: &str) -> Result<(BertDims, Manifest), FinetuneError> {
    let read_json = |path: &Path| -> Result<serde_json::Value, FinetuneError> {
        let bytes = std::fs::read(path)
            .map_err(|e| FinetuneError::Read { path: path.to_path_buf(), message: e.to_string() })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| FinetuneError::Read { path: path.to_path_buf(), message: e.to_string() })
    };
    let unsupported = |reason: String| FinetuneError::Unsupported { name: base_name.to_string(), reason };
    let config_path = base_dir.join("config.json");
    let dims: BertDims = serde_json::from_value(read_json(&config_path)?)
        .map_err(|e| FinetuneError::Read { path: config_path.clone(), message: e.to_string() })?;
    if dims.hidden_act.as_deref().is_some_and(|a| a != "gelu") {
        return Err(unsupported(format!("activation {:?} (only gelu)", dims.hidden_act)));
    }
    let manifest_path = base_dir.join(MANIFEST_FILE);
    let manifest: Manifest = serde_json::from_value(read_json(&manifest_path)?)
        .map_err(|e| FinetuneError::Read { path: manifest_path.clone(), message: e.to_string() })?;
    if manifest.pooling != Pooling::Mean {
        return Err(unsupported("only mean pooling is fine-tuned".into()));
    }
    Ok((dims, manifest))
}

/// The rows of each intent (in order of first appearance) and the out-of-scope
/// rows. Anchors need a second example of their intent: at least two intents must have one.
fn group_by_intent(examples: &[(&str, &str)]) -> Result<(Vec<Vec<usize>>, Vec<usize>), FinetuneError> {
    let mut intent_of: HashMap<&str, usize> = HashMap::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    let mut oos_rows: Vec<usize> = Vec::new();
    for (i, (_, label)) in examples.iter().enumerate() {
        if *label == OOS {
            oos_rows.push(i);
            continue;
        }
        let next = intent_of.len();
        let c = *intent_of.entry(label).or_insert(next);
        if c == members.len() {
            members.push(Vec::new());
        }
        members[c].push(i);
    }
    let pairable = members.iter().filter(|m| m.len() >= 2).count();
    if pairable < 2 {
        return Err(FinetuneError::TooFewPairs(pairable));
    }
    Ok((members, oos_rows))
}

/// Token ids of each example as a query, truncated to `max_tokens`.
fn tokenize(
    base_dir: &Path,
    manifest: &Manifest,
    max_tokens: usize,
    examples: &[(&str, &str)],
) -> Result<Vec<Vec<u32>>, FinetuneError> {
    let tokenizer_path = base_dir.join("tokenizer.json");
    let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
        .map_err(|e| FinetuneError::Read { path: tokenizer_path.clone(), message: e.to_string() })?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens.min(manifest.max_length),
            ..Default::default()
        }))
        .map_err(|e| FinetuneError::Tokenize(e.to_string()))?;
    tokenizer.with_padding(None);
    let inputs: Vec<String> = examples.iter().map(|(t, _)| format!("{}{t}", manifest.query_prefix)).collect();
    let encodings = tokenizer.encode_batch_fast(inputs, true).map_err(|e| FinetuneError::Tokenize(e.to_string()))?;
    Ok(encodings.iter().map(|e| e.get_ids().to_vec()).collect())
}

/// The loss of one batch: `pooled` holds the anchors' embeddings, then one
/// positive per anchor, then out-of-scope negatives. An in-batch ranking loss
/// (each anchor against every positive), plus the cosine classifier over the
/// intent prototypes when there are prototypes.
fn batch_loss(
    pooled: &Tensor,
    anchors: &[(usize, usize)],
    prototypes: Option<&Var>,
    opts: &FinetuneOptions,
) -> candle_core::Result<Tensor> {
    let device = pooled.device();
    let n = anchors.len();
    let rows = pooled.dim(0)?;
    let scores = (pooled.narrow(0, 0, n)?.matmul(&pooled.narrow(0, n, rows - n)?.t()?)? * f64::from(opts.scale))?;
    let targets = Tensor::from_vec((0..n as u32).collect::<Vec<_>>(), n, device)?;
    let loss = candle_nn::loss::cross_entropy(&scores, &targets)?;
    let Some(prototypes) = prototypes else { return Ok(loss) };
    let intents: Vec<u32> = anchors.iter().chain(anchors).map(|&(c, _)| c as u32).collect();
    let intents = Tensor::from_vec(intents, 2 * n, device)?;
    let logits =
        (pooled.narrow(0, 0, 2 * n)?.matmul(&unit_rows(prototypes.as_tensor())?.t()?)? * f64::from(opts.scale))?;
    loss + (candle_nn::loss::cross_entropy(&logits, &intents)? * f64::from(opts.class_weight))?
}

/// Embeddings, layers, and the trainable variables with their tensor names.
type LoadedLayers = (Embeddings, Vec<Layer>, Vec<(String, Var)>);

/// The embeddings and layers in `weights`; the layers from `frozen` up are
/// trainable variables, returned with their tensor names. Errors name a missing tensor.
fn load_layers(weights: &HashMap<String, Tensor>, count: usize, frozen: usize) -> Result<LoadedLayers, String> {
    let get = |key: &str| weights.get(key).cloned().ok_or_else(|| format!("tensor {key} is missing"));
    let embeddings = Embeddings {
        word: get("embeddings.word_embeddings.weight")?,
        position: get("embeddings.position_embeddings.weight")?,
        token_type: get("embeddings.token_type_embeddings.weight")?,
        norm: (get("embeddings.LayerNorm.weight")?, get("embeddings.LayerNorm.bias")?),
    };
    let mut vars: Vec<(String, Var)> = Vec::new();
    let mut layers = Vec::with_capacity(count);
    for l in 0..count {
        let mut param = |suffix: &str| -> Result<Tensor, String> {
            let key = format!("encoder.layer.{l}.{suffix}");
            let tensor = get(&key)?;
            if l < frozen {
                return Ok(tensor);
            }
            let var = Var::from_tensor(&tensor).map_err(|e| e.to_string())?;
            let t = var.as_tensor().clone();
            vars.push((key, var));
            Ok(t)
        };
        layers.push(Layer::load(&mut param)?);
    }
    Ok((embeddings, layers, vars))
}

/// Each text's token states after `frozen` (its unpadded `[tokens, hidden]` rows),
/// computed in length-sorted batches.
fn lower_states(
    embeddings: &Embeddings,
    frozen: &[Layer],
    ids: &[Vec<u32>],
    pad: u32,
    shape: &Shape,
    bar: &indicatif::ProgressBar,
) -> candle_core::Result<Vec<Tensor>> {
    let device = Device::Cpu;
    let mut lower: Vec<Tensor> = vec![Tensor::zeros(0, DType::F32, &device)?; ids.len()];
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| ids[i].len());
    for chunk in order.chunks(64) {
        let rows: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
        let (token_ids, mask) = pad_ids(&rows, pad, &device)?;
        let mut states = embeddings.forward(&token_ids, shape.eps)?;
        let bias = attention_bias(&mask)?;
        for layer in frozen {
            states = layer.forward(&states, &bias, shape)?;
        }
        for (j, &i) in chunk.iter().enumerate() {
            lower[i] = states.get(j)?.narrow(0, 0, ids[i].len())?.contiguous()?;
        }
        bar.inc(chunk.len() as u64);
    }
    Ok(lower)
}

/// Each intent's mean pooled embedding under the starting weights, `[intents, hidden]`:
/// where the prototypes of the classification loss begin.
fn intent_centroids(
    lower: &[Tensor],
    members: &[Vec<usize>],
    upper: &[Layer],
    shape: &Shape,
) -> candle_core::Result<Tensor> {
    let mut centroids = Vec::with_capacity(members.len());
    for rows in members {
        // NOTE: summed per chunk and detached, so no chunk's activations outlive it.
        let sums = rows
            .chunks(64)
            .map(|chunk| {
                pooled_embeddings(&chunk.iter().map(|&i| &lower[i]).collect::<Vec<_>>(), upper, shape)?
                    .sum(0)
                    .map(|s| s.detach())
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        centroids.push(Tensor::stack(&sums, 0)?.sum(0)?);
    }
    unit_rows(&Tensor::stack(&centroids, 0)?)
}

/// One pass's anchors as (intent, example), each batch from distinct intents:
/// every intent's examples are shuffled and dealt in rounds, one per intent per round.
fn epoch_batches(members: &[Vec<usize>], batch_size: usize, rng: &mut StdRng) -> Vec<Vec<(usize, usize)>> {
    let mut shuffled: Vec<Vec<usize>> = members.iter().filter(|m| m.len() >= 2).cloned().collect();
    let intents: Vec<usize> = members.iter().enumerate().filter(|(_, m)| m.len() >= 2).map(|(c, _)| c).collect();
    shuffled.iter_mut().for_each(|m| m.shuffle(rng));
    let rounds = shuffled.iter().map(Vec::len).max().unwrap_or(0);
    let mut batches = Vec::new();
    for round in 0..rounds {
        let mut picks: Vec<(usize, usize)> =
            intents.iter().zip(&shuffled).filter_map(|(&c, m)| m.get(round).map(|&a| (c, a))).collect();
        picks.shuffle(rng);
        // NOTE: a batch of one anchor has no negatives, so a round's last short batch joins the one before.
        let mut chunks: Vec<Vec<(usize, usize)>> = picks.chunks(batch_size).map(<[_]>::to_vec).collect();
        if chunks.len() > 1 && chunks.last().is_some_and(|c| c.len() < 2) {
            let last = chunks.pop().unwrap_or_default();
            if let Some(previous) = chunks.last_mut() {
                previous.extend(last);
            }
        }
        batches.extend(chunks.into_iter().filter(|c| c.len() >= 2));
    }
    batches.shuffle(rng);
    batches
}

/// Padded token ids and the 0/1 attention mask of `rows`.
fn pad_ids(rows: &[&[u32]], pad: u32, device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let width = rows.iter().map(|r| r.len()).max().unwrap_or(1).max(1);
    let mut ids = Vec::with_capacity(rows.len() * width);
    let mut mask = Vec::with_capacity(rows.len() * width);
    for row in rows {
        ids.extend_from_slice(row);
        ids.extend(std::iter::repeat_n(pad, width - row.len()));
        mask.extend(std::iter::repeat_n(1f32, row.len()));
        mask.extend(std::iter::repeat_n(0f32, width - row.len()));
    }
    Ok((Tensor::from_vec(ids, (rows.len(), width), device)?, Tensor::from_vec(mask, (rows.len(), width), device)?))
}

/// Additive attention bias `[batch, 1, 1, width]`: 0 on tokens, a large negative number on padding.
fn attention_bias(mask: &Tensor) -> candle_core::Result<Tensor> {
    ((mask.ones_like()? - mask)? * -1e9)?.unsqueeze(1)?.unsqueeze(1)
}

/// Runs stored lower-layer states through `layers` and returns L2-normalised mean-pooled rows.
fn pooled_embeddings(rows: &[&Tensor], layers: &[Layer], shape: &Shape) -> candle_core::Result<Tensor> {
    let width = rows.iter().map(|t| t.dim(0)).collect::<candle_core::Result<Vec<_>>>()?.into_iter().max().unwrap_or(1);
    let device = Device::Cpu;
    let mut padded = Vec::with_capacity(rows.len());
    let mut mask = Vec::with_capacity(rows.len() * width);
    for row in rows {
        let (len, hidden) = row.dims2()?;
        padded.push(if len < width {
            Tensor::cat(&[*row, &Tensor::zeros((width - len, hidden), DType::F32, &device)?], 0)?
        } else {
            (*row).clone()
        });
        mask.extend(std::iter::repeat_n(1f32, len));
        mask.extend(std::iter::repeat_n(0f32, width - len));
    }
    let mask = Tensor::from_vec(mask, (rows.len(), width), &device)?;
    let bias = attention_bias(&mask)?;
    let mut states = Tensor::stack(&padded, 0)?;
    for layer in layers {
        states = layer.forward(&states, &bias, shape)?;
    }
    let m = mask.unsqueeze(2)?;
    unit_rows(&states.broadcast_mul(&m)?.sum(1)?.broadcast_div(&m.sum(1)?)?)
}

/// `x` with each row scaled to unit length.
fn unit_rows(x: &Tensor) -> candle_core::Result<Tensor> {
    x.broadcast_div(&x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?)
}

struct Shape {
    heads: usize,
    eps: f64,
}

struct Embeddings {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    norm: (Tensor, Tensor),
}

impl Embeddings {
    fn forward(&self, ids: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
        let (batch, width) = ids.dims2()?;
        let words = self.word.index_select(&ids.flatten_all()?, 0)?.reshape((batch, width, ()))?;
        let summed =
            words.broadcast_add(&self.position.narrow(0, 0, width)?)?.broadcast_add(&self.token_type.get(0)?)?;
        layer_norm(&summed, &self.norm, eps)
    }
}

/// One BERT layer (post-norm attention and feed-forward), written with
/// differentiable ops: candle's fused layer norm has no backward pass.
struct Layer {
    query: (Tensor, Tensor),
    key: (Tensor, Tensor),
    value: (Tensor, Tensor),
    attention_out: (Tensor, Tensor),
    attention_norm: (Tensor, Tensor),
    intermediate: (Tensor, Tensor),
    output: (Tensor, Tensor),
    output_norm: (Tensor, Tensor),
}

impl Layer {
    fn load(param: &mut dyn FnMut(&str) -> Result<Tensor, String>) -> Result<Layer, String> {
        let mut pair = |name: &str| -> Result<(Tensor, Tensor), String> {
            Ok((param(&format!("{name}.weight"))?, param(&format!("{name}.bias"))?))
        };
        Ok(Layer {
            query: pair("attention.self.query")?,
            key: pair("attention.self.key")?,
            value: pair("attention.self.value")?,
            attention_out: pair("attention.output.dense")?,
            attention_norm: pair("attention.output.LayerNorm")?,
            intermediate: pair("intermediate.dense")?,
            output: pair("output.dense")?,
            output_norm: pair("output.LayerNorm")?,
        })
    }

    /// `x` is `[batch, width, hidden]`, `bias` the additive attention mask.
    fn forward(&self, x: &Tensor, bias: &Tensor, shape: &Shape) -> candle_core::Result<Tensor> {
        let (batch, width, hidden) = x.dims3()?;
        let head_dim = hidden / shape.heads;
        let split = |t: Tensor| t.reshape((batch, width, shape.heads, head_dim))?.transpose(1, 2)?.contiguous();
        let q = split(linear(x, &self.query)?)?;
        let k = split(linear(x, &self.key)?)?;
        let v = split(linear(x, &self.value)?)?;
        let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?.broadcast_add(bias)?;
        let context = candle_nn::ops::softmax(&scores, D::Minus1)?
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch, width, hidden))?;
        let attended = layer_norm(&(linear(&context, &self.attention_out)? + x)?, &self.attention_norm, shape.eps)?;
        let inner = linear(&attended, &self.intermediate)?.gelu_erf()?;
        layer_norm(&(linear(&inner, &self.output)? + &attended)?, &self.output_norm, shape.eps)
    }
}

/// `x W^T + b` for `x` of shape `[batch, width, in]`.
fn linear(x: &Tensor, (w, b): &(Tensor, Tensor)) -> candle_core::Result<Tensor> {
    let (batch, width, inner) = x.dims3()?;
    x.reshape((batch * width, inner))?.matmul(&w.t()?)?.broadcast_add(b)?.reshape((batch, width, ()))
}

fn layer_norm(x: &Tensor, (w, b): &(Tensor, Tensor), eps: f64) -> candle_core::Result<Tensor> {
    let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred.broadcast_div(&(variance + eps)?.sqrt()?)?.broadcast_mul(w)?.broadcast_add(b)
}

/// Writes the fine-tuned model next to its base (config and tokenizer copied,
/// weights and manifest new) through a temporary folder renamed into place.
fn write_model(
    base_dir: &Path,
    dir: &Path,
    weights: &HashMap<String, Tensor>,
    base: &Manifest,
    name: &str,
) -> Result<(), FinetuneError> {
    let write_err = |path: &Path, e: &dyn std::fmt::Display| FinetuneError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    // NOTE: the previous model of that name stays in place until the new one is whole.
    replace_dir(dir, |tmp| {
        for file in ["config.json", "tokenizer.json"] {
            std::fs::copy(base_dir.join(file), tmp.join(file)).map_err(|e| write_err(&tmp.join(file), &e))?;
        }
        let weights_path = tmp.join("model.safetensors");
        candle_core::safetensors::save(weights, &weights_path).map_err(|e| write_err(&weights_path, &e))?;
        let bytes = std::fs::read(&weights_path).map_err(|e| write_err(&weights_path, &e))?;
        let manifest = Manifest {
            name: name.to_string(),
            source: format!("finetune:{}", base.name),
            source_sha256: base.weights_sha256.clone(),
            weights_sha256: hex::encode(Sha256::digest(&bytes)),
            ..base.clone()
        };
        let manifest_path = tmp.join(MANIFEST_FILE);
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| write_err(&manifest_path, &e))?;
        std::fs::write(&manifest_path, json).map_err(|e| write_err(&manifest_path, &e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::bert::tests::write_tiny_bert;
    use crate::encoder::{BertEncoder, Encoder, TextKind};

    fn tiny_model(seed: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("tiny");
        std::fs::create_dir_all(&base).unwrap();
        write_tiny_bert(&base, seed);
        let manifest = Manifest {
            name: "tiny".into(),
            query_prefix: "hello ".into(),
            passage_prefix: String::new(),
            pooling: Pooling::Mean,
            max_length: 64,
            source: "test".into(),
            source_sha256: String::new(),
            weights_sha256: "base".into(),
        };
        std::fs::write(base.join(MANIFEST_FILE), serde_json::to_vec(&manifest).unwrap()).unwrap();
        dir
    }

    #[test]
    fn training_forward_pass_matches_the_encoder() {
        let dir = tiny_model(3);
        let base = dir.path().join("tiny");
        let texts = ["where is my package?", "refund my order", "查订单", "hello world!"];
        let encoder = BertEncoder::load(&base).unwrap();
        let expected = encoder.encode(&texts, TextKind::Query).unwrap();

        let weights = candle_core::safetensors::load(base.join("model.safetensors"), &Device::Cpu).unwrap();
        let (embeddings, layers, vars) = load_layers(&weights, 2, 1).unwrap();
        assert_eq!(vars.len(), 16, "one layer's weights and biases learn");
        let mut tokenizer = Tokenizer::from_file(base.join("tokenizer.json")).unwrap();
        tokenizer.with_padding(None);
        let ids: Vec<Vec<u32>> =
            texts.iter().map(|t| tokenizer.encode(format!("hello {t}"), true).unwrap().get_ids().to_vec()).collect();
        let shape = Shape { heads: 4, eps: 1e-12 };
        let lower =
            lower_states(&embeddings, &layers[..1], &ids, 0, &shape, &indicatif::ProgressBar::hidden()).unwrap();
        let pooled = pooled_embeddings(&lower.iter().collect::<Vec<_>>(), &layers[1..], &shape)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (got, want) in pooled.iter().zip(&expected) {
            let cosine: f32 = got.iter().zip(want).map(|(a, b)| a * b).sum();
            assert!(cosine > 0.9999, "cosine {cosine}");
        }
    }

    #[test]
    fn batches_hold_distinct_intents_and_every_pairable_example() {
        let members = vec![vec![0, 1, 2], vec![3, 4], vec![5], vec![6, 7, 8, 9]];
        let mut rng = StdRng::seed_from_u64(1);
        let batches = epoch_batches(&members, 2, &mut rng);
        let mut anchors: Vec<usize> = Vec::new();
        for batch in &batches {
            assert!(batch.len() >= 2);
            let mut intents: Vec<usize> = batch.iter().map(|&(c, _)| c).collect();
            intents.sort_unstable();
            intents.dedup();
            assert_eq!(intents.len(), batch.len(), "{batch:?}");
            anchors.extend(batch.iter().map(|&(_, a)| a));
        }
        anchors.sort_unstable();
        // The single example of intent 2 has no positive, and intent 3's
        // fourth example is alone in its round, with no other intent to rank against.
        assert_eq!(anchors[..5], [0, 1, 2, 3, 4]);
        assert_eq!(anchors.len(), 8);
        assert!(anchors[5..].iter().all(|a| (6..=9).contains(a)));
    }

    #[test]
    fn fine_tuning_lowers_the_loss_and_writes_a_loadable_model() {
        let dir = tiny_model(5);
        let base = dir.path().join("tiny");
        let examples: Vec<(&str, &str)> = vec![
            ("where is my package", "track"),
            ("where is the package shipping", "track"),
            ("package shipping?", "track"),
            ("refund my order", "refund"),
            ("refund refund!", "refund"),
            ("退款", "refund"),
            ("查订单", "order"),
            ("订单 order", "order"),
            ("my order?", "order"),
            ("hello world", OOS),
        ];
        let opts = FinetuneOptions {
            epochs: 30,
            batch_size: 3,
            oos_negatives: 1,
            learning_rate: 1e-3,
            trainable_layers: 1,
            ..FinetuneOptions::default()
        };
        let report = finetune(&base, dir.path(), "tiny-tuned", &examples, &opts, false).unwrap();
        assert_eq!((report.intents, report.examples, report.stopped_by_budget), (3, 10, false));
        assert!(report.steps >= 30 && report.last_loss < report.first_loss, "{report:?}");

        let tuned = BertEncoder::load(&report.dir).unwrap();
        let manifest: Manifest =
            serde_json::from_slice(&std::fs::read(report.dir.join(MANIFEST_FILE)).unwrap()).unwrap();
        assert_eq!(
            (manifest.name.as_str(), manifest.source.as_str(), manifest.query_prefix.as_str()),
            ("tiny-tuned", "finetune:tiny", "hello ")
        );
        assert_eq!(tuned.fingerprint(), manifest.weights_sha256);
        assert_ne!(manifest.weights_sha256, "base");

        let none: Vec<(&str, &str)> = vec![("refund", "refund"), ("order", "order")];
        assert!(matches!(finetune(&base, dir.path(), "x", &none, &opts, false), Err(FinetuneError::TooFewPairs(0))));
        let zero = FinetuneOptions { epochs: 0, ..opts.clone() };
        assert!(matches!(
            finetune(&base, dir.path(), "x", &examples, &zero, false),
            Err(FinetuneError::InvalidOptions(_))
        ));
        let negative = FinetuneOptions { class_weight: -1.0, ..opts };
        assert!(matches!(
            finetune(&base, dir.path(), "x", &examples, &negative, false),
            Err(FinetuneError::InvalidOptions(_))
        ));
    }
}
