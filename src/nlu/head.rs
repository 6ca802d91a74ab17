//! Intent classification head: multinomial logistic (softmax) regression on
//! frozen sentence embeddings.
//!
//! Training uses candle (AdamW on mini-batches, early stopping on a held-out
//! split); the trained model is a plain `[classes x dim]` weight matrix and a
//! bias, so inference on the request path is a few dot products with no
//! tensor library involved.
//!
//! Unit-length embeddings have tiny, strongly correlated coordinates (all
//! sentences share a large common direction), which makes raw softmax
//! regression slow to converge. Training therefore standardises every
//! feature (zero mean, unit variance over the training rows) and folds that
//! affine map into the weights afterwards, so callers still pass raw
//! embeddings.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// Errors raised while training, saving or loading a head.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// There is nothing to train on.
    #[error("no training rows")]
    Empty,
    /// `x` and `y` have different lengths.
    #[error("{rows} rows but {labels} labels")]
    LengthMismatch {
        /// Number of rows.
        rows: usize,
        /// Number of labels.
        labels: usize,
    },
    /// A row does not have the dimension of the first row (or is empty).
    #[error("row {row} has {got} values, expected {expected}")]
    Ragged {
        /// Index of the offending row.
        row: usize,
        /// Dimension of the first row.
        expected: usize,
        /// Length of the offending row.
        got: usize,
    },
    /// A row contains NaN or an infinity.
    #[error("row {row} contains a non-finite value")]
    NonFinite {
        /// Index of the offending row.
        row: usize,
    },
    /// A label is not below `n_classes`.
    #[error("label {label} of row {row} is out of range for {n_classes} classes")]
    LabelOutOfRange {
        /// Index of the offending row.
        row: usize,
        /// The label.
        label: usize,
        /// Number of classes.
        n_classes: usize,
    },
    /// The training options cannot be used.
    #[error("invalid training options: {0}")]
    InvalidOptions(String),
    /// The tensor library failed during training.
    #[error("training failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// Reading or writing a head file failed.
    #[error("head file {path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A head file exists but is not a valid head.
    #[error("head file {path} is corrupt: {reason}")]
    Corrupt {
        /// The file involved.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Training hyper-parameters. The defaults suit both a small hand-written
/// corpus (tens of classes, tens of examples each) and CLINC150-sized data
/// (150 classes, 100 examples each) without tuning.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct HeadTrainOptions {
    /// Upper bound on passes over the data. Early stopping usually ends
    /// training well before it.
    pub max_epochs: usize,
    /// Stop after this many epochs without a lower validation loss;
    /// 0 disables early stopping and trains for `max_epochs`.
    pub patience: usize,
    /// Share of each class held out to pick the number of epochs (at least
    /// one row of every class stays in training). After the epoch count is
    /// chosen the head is retrained on all rows for that many epochs.
    pub validation_fraction: f32,
    /// AdamW learning rate (inputs are standardised, so this is scale-free).
    pub learning_rate: f64,
    /// AdamW decoupled weight decay on the weights (not the bias).
    pub weight_decay: f64,
    /// Rows per optimiser step.
    pub batch_size: usize,
    /// Seed for the validation split and the batch order; training is
    /// deterministic given the seed.
    pub seed: u64,
    /// Weight each row by the inverse frequency of its class, so small
    /// classes count as much as large ones.
    pub balance_classes: bool,
}

impl Default for HeadTrainOptions {
    fn default() -> Self {
        Self {
            max_epochs: 200,
            patience: 8,
            validation_fraction: 0.1,
            learning_rate: 2e-3,
            weight_decay: 1e-2,
            batch_size: 64,
            seed: 0x6b656675,
            balance_classes: false,
        }
    }
}

/// A trained softmax-regression head: `logits = W x + b`.
#[derive(Debug, Clone, PartialEq)]
pub struct SoftmaxHead {
    n_classes: usize,
    dim: usize,
    /// Row-major `[n_classes, dim]`, already folded with the input standardisation.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

const FORMAT_KEY: &str = "format";
const FORMAT: &str = "kefu-softmax-head-v1";
const WEIGHT: &str = "weight";
const BIAS: &str = "bias";
/// Features whose training standard deviation is below this are treated as
/// constant: dividing by a near-zero deviation would turn rounding noise into
/// huge inputs.
const MIN_STD: f32 = 1e-6;

impl SoftmaxHead {
    /// Trains a head on rows `x` with labels `y` in `0..n_classes`.
    ///
    /// Classes without rows are allowed (their logits end up low). With
    /// early stopping on, a stratified `validation_fraction` of the rows is
    /// held out, training stops once the validation cross-entropy has not
    /// improved for `patience` epochs, and the head is then retrained on every
    /// row for the best epoch count. When no row can be held out (every class
    /// has a single row) it trains for `max_epochs`.
    pub fn train(x: &[Vec<f32>], y: &[usize], n_classes: usize, opts: &HeadTrainOptions) -> Result<Self, HeadError> {
        let dim = validate(x, y, n_classes)?;
        if opts.max_epochs == 0 || opts.batch_size == 0 || !opts.learning_rate.is_finite() || opts.learning_rate <= 0.0
        {
            return Err(HeadError::InvalidOptions("max_epochs, batch_size and learning_rate must be positive".into()));
        }
        if !(0.0..1.0).contains(&opts.validation_fraction) {
            return Err(HeadError::InvalidOptions("validation_fraction must be in [0, 1)".into()));
        }

        let (mean, std) = standardisation(x, dim);
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let all: Vec<usize> = (0..x.len()).collect();
        let (train_rows, val_rows) = if opts.patience > 0 {
            stratified_split(y, n_classes, opts.validation_fraction, &mut rng)
        } else {
            (all.clone(), Vec::new())
        };

        let data = Data::new(x, y, n_classes, &mean, &std, opts.balance_classes)?;
        let epochs = if val_rows.is_empty() {
            opts.max_epochs
        } else {
            let (_, best_epochs) = fit(&data, &train_rows, Some(&val_rows), opts, &mut rng)?;
            best_epochs
        };
        let fit_opts = HeadTrainOptions { max_epochs: epochs, ..opts.clone() };
        let ((w, b), _) = fit(&data, &all, None, &fit_opts, &mut rng)?;
        Ok(Self::fold(n_classes, dim, &w, &b, &mean, &std))
    }

    /// Folds `x -> (x - mean) / std` into the weights: `W' = W / std`,
    /// `b' = b - W' mean`, so inference takes raw embeddings.
    fn fold(n_classes: usize, dim: usize, w: &[f32], b: &[f32], mean: &[f32], std: &[f32]) -> Self {
        let mut weight = vec![0.0; n_classes * dim];
        let mut bias = b.to_vec();
        for c in 0..n_classes {
            for j in 0..dim {
                let folded = w[c * dim + j] / std[j];
                weight[c * dim + j] = folded;
                bias[c] -= folded * mean[j];
            }
        }
        Self { n_classes, dim, weight, bias }
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// Input dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Raw class scores for one embedding.
    ///
    /// `x` must have [`SoftmaxHead::dim`] values; the embeddings come from
    /// the same encoder the head was trained on, so a mismatch is a wiring bug
    /// and panics rather than returning meaningless scores.
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        assert_eq!(x.len(), self.dim, "embedding dimension does not match the head");
        self.weight
            .chunks_exact(self.dim)
            .zip(&self.bias)
            .map(|(row, b)| b + row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>())
            .collect()
    }

    /// Writes the head as a safetensors file (`weight` `[classes, dim]`,
    /// `bias` `[classes]`), replacing `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), HeadError> {
        let shown = path.display().to_string();
        let corrupt = |e: safetensors::SafeTensorError| HeadError::Corrupt {
            path: shown.clone(),
            reason: format!("cannot serialise: {e}"),
        };
        let weight_bytes: Vec<u8> = self.weight.iter().flat_map(|v| v.to_le_bytes()).collect();
        let bias_bytes: Vec<u8> = self.bias.iter().flat_map(|v| v.to_le_bytes()).collect();
        let weight = TensorView::new(Dtype::F32, vec![self.n_classes, self.dim], &weight_bytes).map_err(corrupt)?;
        let bias = TensorView::new(Dtype::F32, vec![self.n_classes], &bias_bytes).map_err(corrupt)?;
        let meta = HashMap::from([(FORMAT_KEY.to_string(), FORMAT.to_string())]);
        let bytes = safetensors::serialize([(WEIGHT, weight), (BIAS, bias)], &Some(meta)).map_err(corrupt)?;

        crate::support::fs::write_atomically(path, &bytes)
            .map_err(|e| HeadError::Io { path: e.path.display().to_string(), source: e.source })
    }

    /// Reads a head written by [`SoftmaxHead::save`]. A missing, truncated or
    /// inconsistent file is an error naming the file.
    pub fn load(path: &Path) -> Result<Self, HeadError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| HeadError::Io { path: shown.clone(), source })?;
        let corrupt = |reason: String| HeadError::Corrupt { path: shown.clone(), reason };
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(format!("bad header: {e}")))?;
        let format = header.metadata().as_ref().and_then(|m| m.get(FORMAT_KEY));
        if format.map(String::as_str) != Some(FORMAT) {
            return Err(corrupt(format!("unknown format {format:?}, expected {FORMAT:?}")));
        }
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(format!("bad tensors: {e}")))?;
        let read = |name: &str| -> Result<(Vec<usize>, Vec<f32>), HeadError> {
            let t = tensors.tensor(name).map_err(|e| corrupt(format!("tensor `{name}`: {e}")))?;
            if t.dtype() != Dtype::F32 {
                return Err(corrupt(format!("tensor `{name}` is {:?}, expected F32", t.dtype())));
            }
            let values: Vec<f32> =
                t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            if values.iter().any(|v| !v.is_finite()) {
                return Err(corrupt(format!("tensor `{name}` has non-finite values")));
            }
            Ok((t.shape().to_vec(), values))
        };
        let (w_shape, weight) = read(WEIGHT)?;
        let (b_shape, bias) = read(BIAS)?;
        let (n_classes, dim) = match w_shape[..] {
            [c, d] if c > 0 && d > 0 => (c, d),
            _ => return Err(corrupt(format!("`{WEIGHT}` has shape {w_shape:?}, expected [classes, dim]"))),
        };
        if b_shape != [n_classes] {
            return Err(corrupt(format!("`{BIAS}` has shape {b_shape:?}, expected [{n_classes}]")));
        }
        Ok(Self { n_classes, dim, weight, bias })
    }
}

/// Numerically stable softmax.
/// Class probabilities from a head's logits; they sum to 1.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// Checks the training data and returns its dimension.
fn validate(x: &[Vec<f32>], y: &[usize], n_classes: usize) -> Result<usize, HeadError> {
    if x.is_empty() {
        return Err(HeadError::Empty);
    }
    if x.len() != y.len() {
        return Err(HeadError::LengthMismatch { rows: x.len(), labels: y.len() });
    }
    let dim = x[0].len();
    for (row, (v, &label)) in x.iter().zip(y).enumerate() {
        if v.len() != dim || dim == 0 {
            return Err(HeadError::Ragged { row, expected: dim, got: v.len() });
        }
        if v.iter().any(|f| !f.is_finite()) {
            return Err(HeadError::NonFinite { row });
        }
        if label >= n_classes {
            return Err(HeadError::LabelOutOfRange { row, label, n_classes });
        }
    }
    Ok(dim)
}

/// Per-feature mean and standard deviation (floored at `MIN_STD`, where the
/// feature is then left unscaled so it contributes nothing but its mean).
fn standardisation(x: &[Vec<f32>], dim: usize) -> (Vec<f32>, Vec<f32>) {
    let n = x.len() as f64;
    let mut mean = vec![0f64; dim];
    for row in x {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += f64::from(*v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0f64; dim];
    for row in x {
        for ((s, m), v) in var.iter_mut().zip(&mean).zip(row) {
            *s += (f64::from(*v) - m).powi(2);
        }
    }
    let std = var.iter().map(|s| (s / n).sqrt() as f32).map(|s| if s < MIN_STD { 1.0 } else { s }).collect();
    (mean.into_iter().map(|m| m as f32).collect(), std)
}

/// Holds out about `fraction` of every class (keeping at least one row of
/// each class in training) and returns (train, validation) row indices.
fn stratified_split(y: &[usize], n_classes: usize, fraction: f32, rng: &mut StdRng) -> (Vec<usize>, Vec<usize>) {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (row, &label) in y.iter().enumerate() {
        by_class[label].push(row);
    }
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for mut rows in by_class {
        rows.shuffle(rng);
        let held = ((rows.len() as f32 * fraction).round() as usize).min(rows.len().saturating_sub(1));
        val.extend_from_slice(&rows[..held]);
        train.extend_from_slice(&rows[held..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

/// Standardised training data on the CPU device.
struct Data {
    x: Tensor,
    y: Tensor,
    /// Per-row loss weight.
    w: Tensor,
    n_classes: usize,
    dim: usize,
}

impl Data {
    fn new(
        x: &[Vec<f32>],
        y: &[usize],
        n_classes: usize,
        mean: &[f32],
        std: &[f32],
        balance: bool,
    ) -> Result<Self, HeadError> {
        let dim = mean.len();
        let flat: Vec<f32> =
            x.iter().flat_map(|row| row.iter().zip(mean).zip(std).map(|((v, m), s)| (v - m) / s)).collect();
        let mut counts = vec![0usize; n_classes];
        y.iter().for_each(|&c| counts[c] += 1);
        let weights: Vec<f32> = y
            .iter()
            .map(|&c| if balance { x.len() as f32 / (n_classes as f32 * counts[c] as f32) } else { 1.0 })
            .collect();
        let labels: Vec<u32> = y.iter().map(|&c| c as u32).collect();
        let dev = Device::Cpu;
        Ok(Self {
            x: Tensor::from_vec(flat, (x.len(), dim), &dev)?,
            y: Tensor::from_vec(labels, x.len(), &dev)?,
            w: Tensor::from_vec(weights, x.len(), &dev)?,
            n_classes,
            dim,
        })
    }

    /// Weighted mean cross-entropy of the linear model on `rows`.
    fn loss(&self, weight: &Tensor, bias: &Tensor, rows: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.x.index_select(rows, 0)?;
        let y = self.y.index_select(rows, 0)?;
        let w = self.w.index_select(rows, 0)?;
        let logits = x.matmul(&weight.t()?)?.broadcast_add(bias)?;
        let log_p = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let picked = log_p.gather(&y.unsqueeze(1)?, 1)?.squeeze(1)?;
        (picked * &w)?.sum_all()?.neg()? / f64::from(w.sum_all()?.to_scalar::<f32>()?)
    }
}

/// Flat weights (`[classes x dim]`, row-major) and bias.
type Params = (Vec<f32>, Vec<f32>);

/// Trains from zero on `rows` and returns the weights and bias. With
/// `val`, it tracks the validation loss, stops early, and returns the weights
/// of the best epoch together with that epoch count; without, it trains
/// `max_epochs` epochs and returns that count.
fn fit(
    data: &Data,
    rows: &[usize],
    val: Option<&[usize]>,
    opts: &HeadTrainOptions,
    rng: &mut StdRng,
) -> Result<(Params, usize), HeadError> {
    let dev = Device::Cpu;
    // Zero start: the loss is convex, so no symmetry needs breaking and the
    // result depends on the seed only through the batch order.
    let weight = Var::zeros((data.n_classes, data.dim), DType::F32, &dev)?;
    let bias = Var::zeros(data.n_classes, DType::F32, &dev)?;
    let adam = |vars: Vec<Var>, weight_decay| {
        AdamW::new(vars, ParamsAdamW { lr: opts.learning_rate, weight_decay, ..ParamsAdamW::default() })
    };
    let mut opt_w = adam(vec![weight.clone()], opts.weight_decay)?;
    let mut opt_b = adam(vec![bias.clone()], 0.0)?;
    let val_rows =
        val.map(|v| Tensor::from_vec(v.iter().map(|&r| r as u32).collect::<Vec<_>>(), v.len(), &dev)).transpose()?;

    let snapshot = || -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
        Ok((weight.as_tensor().flatten_all()?.to_vec1()?, bias.as_tensor().to_vec1()?))
    };
    let mut best = (f32::INFINITY, 0, snapshot()?);
    let mut order: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    for epoch in 1..=opts.max_epochs {
        order.shuffle(rng);
        for batch in order.chunks(opts.batch_size) {
            let idx = Tensor::from_slice(batch, batch.len(), &dev)?;
            let loss = data.loss(weight.as_tensor(), bias.as_tensor(), &idx)?;
            let grads = loss.backward()?;
            opt_w.step(&grads)?;
            opt_b.step(&grads)?;
        }
        let Some(val_rows) = &val_rows else { continue };
        let val_loss = data.loss(weight.as_tensor(), bias.as_tensor(), val_rows)?.to_scalar::<f32>()?;
        if val_loss < best.0 {
            best = (val_loss, epoch, snapshot()?);
        } else if epoch - best.1 >= opts.patience {
            break;
        }
    }
    if val_rows.is_some() {
        Ok((best.2, best.1.max(1)))
    } else {
        Ok((snapshot()?, opts.max_epochs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// `n_classes` well-separated unit-vector clusters in `dim` dimensions,
    /// sharing a large common component like real sentence embeddings.
    /// `seed` fixes the classes, `sample_seed` the rows drawn from them.
    fn clusters(
        n_classes: usize,
        per_class: usize,
        dim: usize,
        noise: f32,
        seed: u64,
        sample_seed: u64,
    ) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let common: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let centres: Vec<Vec<f32>> =
            (0..n_classes).map(|_| (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect()).collect();
        let mut rng = StdRng::seed_from_u64(sample_seed);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for (c, centre) in centres.iter().enumerate() {
            for _ in 0..per_class {
                let v: Vec<f32> =
                    (0..dim).map(|j| 3.0 * common[j] + centre[j] + noise * rng.gen_range(-1.0f32..1.0)).collect();
                let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
                x.push(v.into_iter().map(|a| a / norm).collect());
                y.push(c);
            }
        }
        (x, y)
    }

    fn accuracy(head: &SoftmaxHead, x: &[Vec<f32>], y: &[usize]) -> f64 {
        let right = x
            .iter()
            .zip(y)
            .filter(|(v, &c)| {
                let p = softmax(&head.logits(v));
                (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])) == Some(c)
            })
            .count();
        right as f64 / x.len() as f64
    }

    #[test]
    fn learns_a_separable_problem() {
        let (x, y) = clusters(27, 30, 64, 0.5, 1, 10);
        let head = SoftmaxHead::train(&x, &y, 27, &HeadTrainOptions::default()).unwrap();
        assert_eq!((head.n_classes(), head.dim()), (27, 64));
        let (tx, ty) = clusters(27, 10, 64, 0.5, 1, 11);
        assert!(accuracy(&head, &x, &y) > 0.99);
        assert!(accuracy(&head, &tx, &ty) > 0.99);
    }

    #[test]
    fn probabilities_sum_to_one() {
        let (x, y) = clusters(5, 20, 16, 0.5, 2, 2);
        let head = SoftmaxHead::train(&x, &y, 6, &HeadTrainOptions::default()).unwrap();
        for v in &x {
            let p = softmax(&head.logits(v));
            assert_eq!(p.len(), 6);
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            assert!(p.iter().all(|&q| (0.0..=1.0).contains(&q)));
        }
        // Class 5 has no rows, so it should never be the best guess.
        assert!(x.iter().all(|v| softmax(&head.logits(v))[5] < 0.1));
    }

    #[test]
    fn training_is_deterministic_given_the_seed() {
        let (x, y) = clusters(4, 15, 8, 1.0, 3, 3);
        let opts = HeadTrainOptions::default();
        let a = SoftmaxHead::train(&x, &y, 4, &opts).unwrap();
        let b = SoftmaxHead::train(&x, &y, 4, &opts).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn save_and_load_round_trip() {
        let (x, y) = clusters(3, 10, 8, 0.5, 4, 4);
        let head = SoftmaxHead::train(&x, &y, 3, &HeadTrainOptions::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head.safetensors");
        head.save(&path).unwrap();
        let loaded = SoftmaxHead::load(&path).unwrap();
        assert_eq!(loaded, head);
        assert_eq!(loaded.logits(&x[0]), head.logits(&x[0]));

        let missing = SoftmaxHead::load(&dir.path().join("none.safetensors")).unwrap_err();
        assert!(missing.to_string().contains("none.safetensors"));
        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(SoftmaxHead::load(&path), Err(HeadError::Corrupt { .. })));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let o = HeadTrainOptions::default();
        assert!(matches!(SoftmaxHead::train(&[], &[], 2, &o), Err(HeadError::Empty)));
        let x = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        assert!(matches!(
            SoftmaxHead::train(&x, &[0, 2], 2, &o),
            Err(HeadError::LabelOutOfRange { row: 1, label: 2, .. })
        ));
        assert!(matches!(SoftmaxHead::train(&x, &[0], 2, &o), Err(HeadError::LengthMismatch { .. })));
        let ragged = vec![vec![1.0, 0.0], vec![0.0]];
        assert!(matches!(
            SoftmaxHead::train(&ragged, &[0, 1], 2, &o),
            Err(HeadError::Ragged { row: 1, expected: 2, got: 1 })
        ));
        let nan = vec![vec![1.0, 0.0], vec![f32::NAN, 1.0]];
        assert!(matches!(SoftmaxHead::train(&nan, &[0, 1], 2, &o), Err(HeadError::NonFinite { row: 1 })));
        let zero_batch = HeadTrainOptions { batch_size: 0, ..o };
        assert!(matches!(SoftmaxHead::train(&x, &[0, 1], 2, &zero_batch), Err(HeadError::InvalidOptions(_))));
    }

    /// CLINC150-sized timing check; run with `cargo test --release -- --ignored`.
    #[test]
    #[ignore]
    fn trains_clinc_sized_data_quickly() {
        let (x, y) = clusters(151, 100, 384, 6.0, 5, 50);
        let start = std::time::Instant::now();
        let head = SoftmaxHead::train(&x, &y, 151, &HeadTrainOptions::default()).unwrap();
        let elapsed = start.elapsed();
        let (tx, ty) = clusters(151, 20, 384, 6.0, 5, 51);
        println!(
            "15,100 x 384 x 151: {elapsed:?}, train accuracy {:.4}, test accuracy {:.4}",
            accuracy(&head, &x, &y),
            accuracy(&head, &tx, &ty)
        );
        assert!(elapsed.as_secs() < 60);
    }
}
