//! `BertEncoder`: any Hugging Face BERT-class model directory (config.json,
//! model.safetensors, tokenizer.json, optional `kefu-model.json`) run on the
//! CPU by candle-transformers' `BertModel` or by ONNX Runtime: padded batches
//! with an attention mask, mean or CLS pooling, L2 normalisation.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::manifest::{Manifest, Pooling, MANIFEST_FILE};
use super::onnx::OnnxBert;
use super::tokenizer::TextTokenizer;
use super::{Encoder, EncoderError, Precision, Runtime, TextKind};

/// Padded tokens (batch rows x longest row) per forward pass. Bounds the
/// attention buffers when a caller hands over thousands of texts at once.
const MAX_TOKENS_PER_PASS: usize = 8192;

/// Padding tokens a longer row may add to the rows already in a pass before
/// it starts a new pass instead: a pass has a fixed cost (the weights are
/// read once per pass), so a few padded tokens are cheaper than a new pass,
/// but one long text must not widen a whole batch of short ones.
const MAX_PADDING_PER_ROW_ADDED: usize = 32;

/// Length cap for models without a manifest (BERT's usual limit).
const DEFAULT_MAX_LENGTH: usize = 512;

/// A BERT-class sentence encoder loaded from a model directory.
pub struct BertEncoder {
    network: Network,
    tokenizer: TextTokenizer,
    dim: usize,
    pad_id: u32,
    pooling: Pooling,
    max_length: usize,
    query_prefix: String,
    passage_prefix: String,
    fingerprint: String,
}

/// What runs the layers.
enum Network {
    /// The reference implementation, also what fine-tuning trains.
    Candle(BertModel),
    Onnx(OnnxBert),
}

/// The part of sentence-transformers' `1_Pooling/config.json` kefu reads.
#[derive(Deserialize)]
struct StPooling {
    #[serde(default)]
    pooling_mode_cls_token: bool,
}

/// The `model_type` field alone, checked before the full config is parsed.
#[derive(Deserialize)]
struct ModelType {
    model_type: Option<String>,
}

fn read_file(path: &Path) -> Result<Vec<u8>, EncoderError> {
    match fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(EncoderError::MissingFile(path.to_path_buf())),
        Err(e) => Err(bad(path, e)),
    }
}

fn bad(path: &Path, reason: impl ToString) -> EncoderError {
    EncoderError::BadFile { path: path.to_path_buf(), reason: reason.to_string() }
}

fn infer(e: candle_core::Error) -> EncoderError {
    EncoderError::Inference(e.to_string())
}

/// sha256 of a file, streamed so a large weights file is never held twice.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

impl BertEncoder {
    /// Load a model directory. Errors name the missing or broken file.
    ///
    /// Without a `kefu-model.json` the model gets no prefixes, pooling from
    /// `1_Pooling/config.json` (mean when absent), a length cap of
    /// min(512, max_position_embeddings), and the sha256 of its
    /// `model.safetensors` as fingerprint.
    pub fn load(dir: &Path) -> Result<Self, EncoderError> {
        Self::load_on(dir, &Runtime::Candle)
    }

    /// Load a model directory to run on `runtime`.
    pub fn load_on(dir: &Path, runtime: &Runtime) -> Result<Self, EncoderError> {
        if !dir.is_dir() {
            return Err(EncoderError::MissingDir(dir.to_path_buf()));
        }
        let config_path = dir.join("config.json");
        let config_bytes = read_file(&config_path)?;
        let model_type: ModelType = serde_json::from_slice(&config_bytes).map_err(|e| bad(&config_path, e))?;
        // NOTE: RoBERTa-family models (xlm-roberta, ...) share BERT's tensor
        // names but offset position ids; running them as BERT would silently
        // give wrong vectors, so only plain BERT is accepted.
        if let Some(t) = model_type.model_type.as_deref() {
            if t != "bert" {
                return Err(bad(&config_path, format!("model_type {t:?} is not supported, only \"bert\"")));
            }
        }
        let config: Config = serde_json::from_slice(&config_bytes).map_err(|e| bad(&config_path, e))?;

        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest: Option<Manifest> = match fs::read(&manifest_path) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| bad(&manifest_path, e))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(bad(&manifest_path, e)),
        };

        let tokenizer_path = dir.join("tokenizer.json");
        if !tokenizer_path.is_file() {
            return Err(EncoderError::MissingFile(tokenizer_path));
        }

        let weights_path = dir.join("model.safetensors");
        if !weights_path.is_file() {
            return Err(EncoderError::MissingFile(weights_path));
        }
        let network = match runtime {
            Runtime::Candle => {
                // SAFETY: the weights file is memory-mapped read-only; kefu never
                // writes into an installed model directory (the importer replaces
                // whole directories by rename), so the mapping stays valid.
                let vb = unsafe {
                    VarBuilder::from_mmaped_safetensors(std::slice::from_ref(&weights_path), DType::F32, &Device::Cpu)
                }
                .map_err(|e| bad(&weights_path, e))?;
                Network::Candle(BertModel::load(vb, &config).map_err(|e| bad(&weights_path, e))?)
            }
            Runtime::Onnx { library, precision } => {
                Network::Onnx(OnnxBert::load(&weights_path, &config, library, *precision)?)
            }
        };

        let (pooling, max_length, query_prefix, passage_prefix, fingerprint) = match manifest {
            Some(m) => (m.pooling, m.max_length, m.query_prefix, m.passage_prefix, m.weights_sha256),
            None => {
                let fingerprint = sha256_file(&weights_path).map_err(|e| bad(&weights_path, e))?;
                (read_st_pooling(dir)?, DEFAULT_MAX_LENGTH, String::new(), String::new(), fingerprint)
            }
        };
        // int8 vectors differ slightly from f32 ones: what was derived from
        // one must not be reused for the other. "w7": seven-bit weights, so
        // nothing fitted with the earlier eight-bit ones is reused either.
        let fingerprint = match runtime {
            Runtime::Onnx { precision: Precision::Int8, .. } => format!("{fingerprint}+int8w7"),
            _ => fingerprint,
        };
        let max_length = max_length.min(config.max_position_embeddings).max(2);
        // NOTE: padding is done here, per forward pass, so a tokenizer.json
        // that pads to a fixed length cannot inflate every batch.
        let tokenizer = TextTokenizer::load(&tokenizer_path, max_length)?;

        Ok(Self {
            network,
            tokenizer,
            dim: config.hidden_size,
            pad_id: u32::try_from(config.pad_token_id).map_err(|e| bad(&config_path, e))?,
            pooling,
            max_length,
            query_prefix,
            passage_prefix,
            fingerprint,
        })
    }

    /// Token cap per input in effect (special tokens included).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Pooling in effect.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Which runtime runs the layers.
    pub fn runtime_name(&self) -> &'static str {
        match &self.network {
            Network::Candle(_) => "candle",
            Network::Onnx(model) => match model.precision() {
                Precision::F32 => "onnx-f32",
                Precision::Int8 => "onnx-int8",
            },
        }
    }

    /// One forward pass over already-tokenised rows; returns normalised rows.
    fn forward(&self, rows: &[&[u32]]) -> Result<Vec<Vec<f32>>, EncoderError> {
        let width = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(rows.len() * width);
        let mut mask = Vec::with_capacity(rows.len() * width);
        for row in rows {
            ids.extend_from_slice(row);
            ids.extend(std::iter::repeat_n(self.pad_id, width - row.len()));
            mask.extend(std::iter::repeat_n(1u32, row.len()));
            mask.extend(std::iter::repeat_n(0u32, width - row.len()));
        }
        let states = match &self.network {
            Network::Candle(model) => {
                let shape = (rows.len(), width);
                (|| {
                    let ids = Tensor::from_vec(ids, shape, &Device::Cpu)?;
                    let mask = Tensor::from_vec(mask.clone(), shape, &Device::Cpu)?;
                    let type_ids = ids.zeros_like()?;
                    model.forward(&ids, &type_ids, Some(&mask))?.flatten_all()?.to_vec1::<f32>()
                })()
                .map_err(infer)?
            }
            Network::Onnx(model) => model.states(&ids, &mask, rows.len(), width)?,
        };
        Ok(pool(&states, &mask, width, self.dim, self.pooling))
    }
}

/// One L2-normalised vector per row of `states` (`[rows, width, dim]`).
fn pool(states: &[f32], mask: &[u32], width: usize, dim: usize, pooling: Pooling) -> Vec<Vec<f32>> {
    states
        .chunks_exact(width * dim)
        .zip(mask.chunks_exact(width))
        .map(|(tokens, mask)| {
            let mut vector = match pooling {
                Pooling::Cls => tokens[..dim].to_vec(),
                Pooling::Mean => {
                    let mut sum = vec![0f32; dim];
                    for (token, _) in tokens.chunks_exact(dim).zip(mask).filter(|(_, &m)| m == 1) {
                        sum.iter_mut().zip(token).for_each(|(s, t)| *s += t);
                    }
                    let count = mask.iter().filter(|&&m| m == 1).count().max(1) as f32;
                    sum.iter_mut().for_each(|s| *s /= count);
                    sum
                }
            };
            // The floor keeps an all-zero vector (possible only for a
            // degenerate model) from turning into NaNs.
            let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            vector.iter_mut().for_each(|v| *v /= norm);
            vector
        })
        .collect()
}

/// Pooling for a manifest-less directory, from sentence-transformers' config.
fn read_st_pooling(dir: &Path) -> Result<Pooling, EncoderError> {
    let path: PathBuf = dir.join("1_Pooling").join("config.json");
    match fs::read(&path) {
        Ok(bytes) => {
            let st: StPooling = serde_json::from_slice(&bytes).map_err(|e| bad(&path, e))?;
            Ok(if st.pooling_mode_cls_token { Pooling::Cls } else { Pooling::Mean })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Pooling::Mean),
        Err(e) => Err(bad(&path, e)),
    }
}

impl Encoder for BertEncoder {
    fn dim(&self) -> usize {
        self.dim
    }

    fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn encode(&self, texts: &[&str], kind: TextKind) -> Result<Vec<Vec<f32>>, EncoderError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let prefix = match kind {
            TextKind::Query => &self.query_prefix,
            TextKind::Passage => &self.passage_prefix,
        };
        let inputs: Vec<String> = texts.iter().map(|t| format!("{prefix}{t}")).collect();
        let encodings = self.tokenizer.encode_batch(inputs)?;

        // Sorting by length keeps padding small inside each pass; results are
        // written back to their input positions.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let mut out = vec![Vec::new(); encodings.len()];
        let mut start = 0;
        while start < order.len() {
            let mut end = start + 1;
            while end < order.len() {
                // Rows are sorted, so the last row of the pass is the widest.
                let width = encodings[order[end]].get_ids().len();
                let widened = (end - start) * (width - encodings[order[end - 1]].get_ids().len());
                if (end + 1 - start) * width > MAX_TOKENS_PER_PASS || widened > MAX_PADDING_PER_ROW_ADDED {
                    break;
                }
                end += 1;
            }
            let rows: Vec<&[u32]> = order[start..end].iter().map(|&i| encodings[i].get_ids()).collect();
            for (&i, vector) in order[start..end].iter().zip(self.forward(&rows)?) {
                out[i] = vector;
            }
            start = end;
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use safetensors::tensor::{Dtype, TensorView};
    use std::collections::HashMap;

    const HIDDEN: usize = 32;
    const LAYERS: usize = 2;
    const FF: usize = 64;
    const WORDS: &[&str] = &[
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world", "order", "refund", "where", "is", "my", "the", "package",
        "?", "!", "##s", "ship", "##ping", "退", "款", "订", "单", "查",
    ];

    /// Write a tiny random BERT (2 layers, hidden 32) with a WordPiece
    /// tokenizer into `dir`; deterministic for a given seed.
    pub(crate) fn write_tiny_bert(dir: &Path, seed: u64) {
        let config = serde_json::json!({
            "architectures": ["BertModel"], "model_type": "bert",
            "vocab_size": WORDS.len(), "hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
            "num_attention_heads": 4, "intermediate_size": FF, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": 64, "type_vocab_size": 2, "initializer_range": 0.02,
            "layer_norm_eps": 1e-12, "pad_token_id": 0
        });
        fs::write(dir.join("config.json"), config.to_string()).unwrap();

        let mut rng = StdRng::seed_from_u64(seed);
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let mut add = |name: String, shape: Vec<usize>, ones: bool| {
            let n: usize = shape.iter().product();
            let data: Vec<u8> = (0..n)
                .flat_map(|_| {
                    let v: f32 = if ones { 1.0 + rng.gen_range(-0.1..0.1) } else { rng.gen_range(-0.5..0.5) };
                    v.to_le_bytes()
                })
                .collect();
            tensors.push((name, shape, data));
        };
        add("embeddings.word_embeddings.weight".into(), vec![WORDS.len(), HIDDEN], false);
        add("embeddings.position_embeddings.weight".into(), vec![64, HIDDEN], false);
        add("embeddings.token_type_embeddings.weight".into(), vec![2, HIDDEN], false);
        add("embeddings.LayerNorm.weight".into(), vec![HIDDEN], true);
        add("embeddings.LayerNorm.bias".into(), vec![HIDDEN], false);
        for l in 0..LAYERS {
            let p = format!("encoder.layer.{l}");
            for (name, out_dim, in_dim) in [
                ("attention.self.query", HIDDEN, HIDDEN),
                ("attention.self.key", HIDDEN, HIDDEN),
                ("attention.self.value", HIDDEN, HIDDEN),
                ("attention.output.dense", HIDDEN, HIDDEN),
                ("intermediate.dense", FF, HIDDEN),
                ("output.dense", HIDDEN, FF),
            ] {
                add(format!("{p}.{name}.weight"), vec![out_dim, in_dim], false);
                add(format!("{p}.{name}.bias"), vec![out_dim], false);
            }
            for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
                add(format!("{p}.{ln}.weight"), vec![HIDDEN], true);
                add(format!("{p}.{ln}.bias"), vec![HIDDEN], false);
            }
        }
        let views: Vec<(String, TensorView)> =
            tensors.iter().map(|(n, s, d)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), d).unwrap())).collect();
        safetensors::serialize_to_file(views, &None, &dir.join("model.safetensors")).unwrap();

        let vocab: HashMap<&str, usize> = WORDS.iter().enumerate().map(|(i, w)| (*w, i)).collect();
        let tokenizer = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                           "strip_accents": null, "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}},
                           {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {
                    "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                    "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
            "decoder": null,
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 100, "vocab": vocab}
        });
        fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    const TEXTS: &[&str] = &[
        "hello world",
        "where is my package?",
        "refund refund refund my order shipping!",
        "查订单",
        "退款",
        "",
        "hello",
    ];

    #[test]
    fn loads_and_encodes_normalised_rows() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_bert(dir.path(), 7);
        let enc = BertEncoder::load(dir.path()).unwrap();
        assert_eq!(enc.dim(), HIDDEN);
        assert_eq!(enc.pooling(), Pooling::Mean);
        assert_eq!(enc.fingerprint().len(), 64, "sha256 of model.safetensors when no manifest");
        let rows = enc.encode(TEXTS, TextKind::Query).unwrap();
        assert_eq!(rows.len(), TEXTS.len());
        for row in &rows {
            assert_eq!(row.len(), HIDDEN);
            let n: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((n - 1.0).abs() < 1e-4, "norm {n}");
        }
        assert!(cosine(&rows[0], &rows[2]) < 0.9999, "different texts must differ");
        assert!(enc.encode(&[], TextKind::Query).unwrap().is_empty());
    }

    #[test]
    fn batched_equals_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_bert(dir.path(), 11);
        let enc = BertEncoder::load(dir.path()).unwrap();
        let batched = enc.encode(TEXTS, TextKind::Passage).unwrap();
        for (text, row) in TEXTS.iter().zip(&batched) {
            let single = enc.encode(&[text], TextKind::Passage).unwrap();
            let c = cosine(&single[0], row);
            assert!(c > 0.9999, "{text:?}: cosine {c}");
        }
    }

    #[test]
    fn manifest_selects_prefix_pooling_and_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_bert(dir.path(), 3);
        let manifest = Manifest {
            name: "tiny".into(),
            query_prefix: "where ".into(),
            passage_prefix: String::new(),
            pooling: Pooling::Cls,
            max_length: 1000,
            source: "test".into(),
            source_sha256: "0".repeat(64),
            weights_sha256: "ab".repeat(32),
        };
        fs::write(dir.path().join(MANIFEST_FILE), serde_json::to_string(&manifest).unwrap()).unwrap();
        let enc = BertEncoder::load(dir.path()).unwrap();
        assert_eq!(enc.fingerprint(), "ab".repeat(32));
        assert_eq!(enc.pooling(), Pooling::Cls);
        assert_eq!(enc.max_length(), 64, "clamped to max_position_embeddings");
        let q = enc.encode(&["is my order"], TextKind::Query).unwrap();
        let p = enc.encode(&["where is my order"], TextKind::Passage).unwrap();
        assert!(cosine(&q[0], &p[0]) > 0.9999, "query prefix must be prepended");
    }

    #[test]
    fn cls_pooling_from_sentence_transformers_config() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_bert(dir.path(), 5);
        fs::create_dir(dir.path().join("1_Pooling")).unwrap();
        fs::write(dir.path().join("1_Pooling/config.json"), r#"{"pooling_mode_cls_token": true}"#).unwrap();
        assert_eq!(BertEncoder::load(dir.path()).unwrap().pooling(), Pooling::Cls);
    }

    #[test]
    fn long_input_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_bert(dir.path(), 9);
        let enc = BertEncoder::load(dir.path()).unwrap();
        let long = "hello ".repeat(500);
        let rows = enc.encode(&[long.as_str()], TextKind::Query).unwrap();
        assert_eq!(rows[0].len(), HIDDEN);
    }

    /// The ONNX Runtime library `kefu model fetch` installed in the checkout, if any.
    pub(crate) fn installed_runtime() -> Option<PathBuf> {
        let models = std::env::var_os("KEFU_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
        let library = crate::encoder::onnx::runtime_library(&models);
        if library.is_file() {
            Some(library)
        } else {
            eprintln!("skipped: {} is not installed (run `kefu model fetch`)", library.display());
            None
        }
    }

    /// Both precisions against candle: f32 to cosine 0.9999, int8 to 0.995,
    /// and on each a text's vector is the same in a batch as alone.
    #[test]
    fn onnx_runtime_matches_candle() {
        let Some(library) = installed_runtime() else { return };
        let dir = tempfile::tempdir().unwrap();
        write_tiny_bert(dir.path(), 13);
        let candle = BertEncoder::load(dir.path()).unwrap();
        for (precision, name, min_cosine) in
            [(Precision::F32, "onnx-f32", 0.9999), (Precision::Int8, "onnx-int8", 0.995)]
        {
            let onnx =
                BertEncoder::load_on(dir.path(), &Runtime::Onnx { library: library.clone(), precision }).unwrap();
            assert_eq!(onnx.runtime_name(), name);
            for kind in [TextKind::Query, TextKind::Passage] {
                let expected = candle.encode(TEXTS, kind).unwrap();
                let batched = onnx.encode(TEXTS, kind).unwrap();
                for ((text, want), got) in TEXTS.iter().zip(&expected).zip(&batched) {
                    let c = cosine(want, got);
                    assert!(c >= min_cosine, "{name} {text:?}: cosine {c} to candle");
                    let single = onnx.encode(&[text], kind).unwrap();
                    let c = cosine(&single[0], got);
                    assert!(c > 0.9999, "{name} {text:?}: batched and alone differ, cosine {c}");
                }
            }
        }
    }

    #[test]
    fn int8_numerics_have_their_own_fingerprint() {
        let Some(library) = installed_runtime() else { return };
        let dir = tempfile::tempdir().unwrap();
        write_tiny_bert(dir.path(), 2);
        let fingerprint = |precision| {
            let runtime = Runtime::Onnx { library: library.clone(), precision };
            BertEncoder::load_on(dir.path(), &runtime).unwrap().fingerprint().to_string()
        };
        let candle = BertEncoder::load(dir.path()).unwrap().fingerprint().to_string();
        assert_eq!(fingerprint(Precision::F32), candle, "f32 on either engine shares what was derived");
        assert_eq!(fingerprint(Precision::Int8), format!("{candle}+int8w7"));
    }

    #[test]
    fn a_missing_or_broken_runtime_library_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_bert(dir.path(), 1);
        let library = dir.path().join("libonnxruntime.so");
        let runtime = |library: &Path| Runtime::Onnx { library: library.into(), precision: Precision::default() };
        let load = |library: &Path| match BertEncoder::load_on(dir.path(), &runtime(library)) {
            Ok(_) => panic!("load must fail"),
            Err(e) => e.to_string(),
        };
        let msg = load(&library);
        assert!(msg.contains("libonnxruntime.so") && msg.contains("missing"), "{msg}");
        fs::write(&library, b"not a shared library").unwrap();
        let msg = load(&library);
        assert!(msg.contains("libonnxruntime.so") && msg.contains("broken"), "{msg}");
    }

    fn load_err(dir: &Path) -> String {
        match BertEncoder::load(dir) {
            Ok(_) => panic!("load must fail"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn missing_and_corrupt_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_err(&dir.path().join("nope")).contains("does not exist"));
        for file in ["config.json", "tokenizer.json", "model.safetensors"] {
            write_tiny_bert(dir.path(), 1);
            fs::remove_file(dir.path().join(file)).unwrap();
            let msg = load_err(dir.path());
            assert!(msg.contains(file) && msg.contains("missing"), "{msg}");

            write_tiny_bert(dir.path(), 1);
            let bytes = fs::read(dir.path().join(file)).unwrap();
            fs::write(dir.path().join(file), &bytes[..bytes.len() / 2]).unwrap();
            let msg = load_err(dir.path());
            assert!(msg.contains(file) && msg.contains("broken"), "{msg}");
        }
        write_tiny_bert(dir.path(), 1);
        fs::write(dir.path().join(MANIFEST_FILE), "{not json").unwrap();
        let msg = load_err(dir.path());
        assert!(msg.contains(MANIFEST_FILE) && msg.contains("broken"), "{msg}");
    }
}
