//! kefu's own ONNX export of a BERT encoder, written straight from the
//! safetensors weights (no torch, no `onnx` package): embedding layer norm,
//! then per layer self-attention (ONNX Runtime's fused attention kernel) and
//! the feed-forward block, in opset-21 operators that ONNX Runtime's optimiser
//! fuses on load (layer norms with their residuals, GELU with its bias). With
//! int8 precision the linear layers become ONNX Runtime's integer matrix
//! product (com.microsoft `MatMulIntegerToFloat`) between quantised
//! activations and weights.
//!
//! The token-embedding lookup stays outside the graph: the runtime would
//! otherwise hold its own copy of the largest table (250k rows for e5), while
//! kefu reads the few rows a text needs from the weights file. The
//! graph takes the summed word, position and type embeddings and the attention
//! mask.

use std::collections::HashMap;

use candle_transformers::models::bert::{Config, HiddenAct};

use super::proto::Message;
use super::weights::Weights;
use crate::encoder::{EncoderError, Precision};

/// `[batch, tokens, hidden]`: word + position + token-type embeddings.
pub(super) const INPUT_EMBEDDINGS: &str = "embeddings";
/// `[batch, tokens]` int32: 1 on tokens, 0 on padding.
pub(super) const INPUT_MASK: &str = "attention_mask";
/// `[batch, tokens, hidden]`: the last layer's token states.
pub(super) const OUTPUT_STATES: &str = "states";

// Opset 21 for `QuantizeLinear` with one block per row.
const OPSET: i64 = 21;
const IR_VERSION: i64 = 10;
const MICROSOFT: &str = "com.microsoft";
// onnx.proto `TensorProto.DataType` and `AttributeProto.AttributeType`.
const FLOAT: i64 = 1;
const UINT8: i64 = 2;
const INT8: i64 = 3;
const INT32: i64 = 6;
const INT64: i64 = 7;
const ATTRIBUTE_FLOAT: i64 = 1;
const ATTRIBUTE_INT: i64 = 2;
/// Largest int8 weight: see `int8_product`.
const WEIGHT_LEVELS: f32 = 63.0;

/// A linear layer's weight as `dims` `[in, out]`, row-major, and its bias.
struct Linear {
    dims: [usize; 2],
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// Nodes and constants of the graph being written; names are generated.
#[derive(Default)]
struct Graph {
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    names: usize,
    precision: Precision,
    /// Activations already quantised, by tensor name: see `quantise_activations`.
    quantised: HashMap<String, (String, String, String)>,
}

fn attribute_int(name: &str, value: i64) -> Message {
    Message::new().string(1, name).int(3, value).int(20, ATTRIBUTE_INT)
}

fn attribute_float(name: &str, value: f32) -> Message {
    Message::new().string(1, name).float(2, value).int(20, ATTRIBUTE_FLOAT)
}

/// A tensor input or output with symbolic batch and token dimensions.
fn value_info(name: &str, data_type: i64, dims: &[Result<i64, &str>]) -> Message {
    let shape = dims.iter().fold(Message::new(), |shape, dim| {
        let dim = match dim {
            Ok(size) => Message::new().int(1, *size),
            Err(symbol) => Message::new().string(2, symbol),
        };
        shape.message(1, dim)
    });
    let tensor = Message::new().int(1, data_type).message(2, shape);
    Message::new().string(1, name).message(2, Message::new().message(1, tensor))
}

impl Graph {
    fn fresh(&mut self, hint: &str) -> String {
        self.names += 1;
        format!("{hint}_{}", self.names)
    }

    fn constant(&mut self, hint: &str, dims: &[usize], data_type: i64, raw: &[u8]) -> String {
        let name = self.fresh(hint);
        let tensor = dims.iter().fold(Message::new(), |t, &d| t.int(1, d as i64));
        self.initializers.push(tensor.int(2, data_type).string(8, &name).bytes(9, raw));
        name
    }

    fn floats(&mut self, hint: &str, dims: &[usize], values: &[f32]) -> String {
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(hint, dims, FLOAT, &raw)
    }

    fn ints(&mut self, hint: &str, values: &[i64]) -> String {
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(hint, &[values.len()], INT64, &raw)
    }

    /// Add a node with one output and return that output's name.
    fn op(&mut self, op_type: &str, inputs: &[&str], attributes: Vec<Message>) -> String {
        let output = self.fresh(op_type);
        self.op_into("", op_type, inputs, attributes, &output);
        output
    }

    /// Add a node of ONNX Runtime's own operators (domain com.microsoft).
    fn microsoft_op(&mut self, op_type: &str, inputs: &[&str], attributes: Vec<Message>) -> String {
        let output = self.fresh(op_type);
        self.op_into(MICROSOFT, op_type, inputs, attributes, &output);
        output
    }

    /// Add a node of `domain` ("" for the standard operators) writing `output`.
    fn op_into(&mut self, domain: &str, op_type: &str, inputs: &[&str], attributes: Vec<Message>, output: &str) {
        let node = inputs.iter().fold(Message::new(), |n, i| n.string(1, i));
        let node = node.string(2, output).string(3, output).string(4, op_type);
        let node = if domain.is_empty() { node } else { node.string(7, domain) };
        self.nodes.push(attributes.into_iter().fold(node, |n, a| n.message(5, a)));
    }

    /// A torch-layout `[out, in]` weight as `[in, out]`, and its bias.
    fn transposed(weights: &Weights, name: &str) -> Result<Linear, EncoderError> {
        let (dims, w) = weights.floats(&format!("{name}.weight"))?;
        let [rows, cols] = dims[..] else { return Err(weights.broken(format!("{name}.weight is not a matrix"))) };
        let mut transposed = vec![0f32; w.len()];
        for r in 0..rows {
            for c in 0..cols {
                transposed[c * rows + r] = w[r * cols + c];
            }
        }
        let (_, bias) = weights.floats(&format!("{name}.bias"))?;
        Ok(Linear { dims: [cols, rows], weight: transposed, bias })
    }

    /// `x · Wᵀ + b` for a torch-layout `[out, in]` weight.
    fn linear(&mut self, x: &str, weights: &Weights, name: &str) -> Result<String, EncoderError> {
        let Linear { dims, weight, bias } = Self::transposed(weights, name)?;
        let b = self.floats(name, &[dims[1]], &bias);
        let product = match self.precision {
            Precision::F32 => {
                let w = self.floats(name, &dims, &weight);
                self.op("MatMul", &[x, &w], vec![])
            }
            Precision::Int8 => self.int8_product(x, &weight, dims, name),
        };
        Ok(self.op("Add", &[&product, &b], vec![]))
    }

    /// `x · w` for `w` `[inner, outer]` in int8: weights scaled to ±63 per
    /// output column, each token's activations onto 0..=255 with its own scale
    /// and zero point, products summed exactly in int32, then scaled back.
    /// Seven bits of weight, because on x86 CPUs without VNNI (AVX2 only)
    /// ONNX Runtime sums pairs of uint8 x int8 products in int16, which
    /// 255 x 127 x 2 overflows (a fixture vector fell to cosine 0.978 there)
    /// and 255 x 63 x 2 does not. Measured on the e5 fixture with ±127 weights
    /// on a VNNI CPU (min cosine to f32): 0.9994; with activations symmetric
    /// around 0, 0.9986; with one scale for the whole batch (ONNX Runtime's
    /// dynamic quantisation), 0.992, and a text's vector then depends on its
    /// batch-mates.
    fn int8_product(&mut self, x: &str, w: &[f32], [inner, outer]: [usize; 2], name: &str) -> String {
        let mut scales = vec![0f32; outer];
        for (column, scale) in scales.iter_mut().enumerate() {
            let largest = (0..inner).map(|i| w[i * outer + column].abs()).fold(0f32, f32::max);
            *scale = if largest > 0.0 { largest / WEIGHT_LEVELS } else { 1.0 };
        }
        let quantised: Vec<u8> = w
            .iter()
            .enumerate()
            .map(|(i, v)| (v / scales[i % outer]).round().clamp(-WEIGHT_LEVELS, WEIGHT_LEVELS) as i8 as u8)
            .collect();
        let w = self.constant(name, &[inner, outer], INT8, &quantised);
        let column_scales = self.floats(name, &[outer], &scales);
        let (values, token_scales, token_shifts) = self.quantise_activations(x, inner);
        let one = self.floats("one", &[], &[1.0]);
        // Exact int32 sums as f32; the op takes only one scale per tensor.
        let product = self.microsoft_op("MatMulIntegerToFloat", &[&values, &w, &one, &one], vec![]);
        let product = self.op("Mul", &[&product, &column_scales], vec![]);
        let product = self.op("Mul", &[&product, &token_scales], vec![]);
        // Each token's zero point times the column sums of the weights.
        let column_sums: Vec<f32> = (0..outer)
            .map(|column| {
                scales[column] * (0..inner).map(|i| f32::from(quantised[i * outer + column] as i8)).sum::<f32>()
            })
            .collect();
        let column_sums = self.floats(name, &[outer], &column_sums);
        let correction = self.op("Mul", &[&token_shifts, &column_sums], vec![]);
        self.op("Sub", &[&product, &correction], vec![])
    }

    /// `x` `[batch, tokens, width]` as uint8, each token's range [min, max]
    /// (widened to hold 0) mapped onto 0..=255: its scale and its zero point
    /// times the scale, both `[batch, tokens, 1]`. Done once per tensor,
    /// whichever layers read it.
    fn quantise_activations(&mut self, x: &str, width: usize) -> (String, String, String) {
        if let Some(done) = self.quantised.get(x) {
            return done.clone();
        }
        let inverse_range = self.floats("inverse_range", &[], &[1.0 / 255.0]);
        let smallest = self.floats("smallest", &[], &[f32::MIN_POSITIVE]);
        let zero = self.floats("zero", &[], &[0.0]);
        let last = self.ints("last_axis", &[-1]);
        let keep = || vec![attribute_int("keepdims", 1)];
        let high = self.op("ReduceMax", &[x, &last], keep());
        let high = self.op("Max", &[&high, &zero], vec![]);
        let low = self.op("ReduceMin", &[x, &last], keep());
        let low = self.op("Min", &[&low, &zero], vec![]);
        let range = self.op("Sub", &[&high, &low], vec![]);
        let scale = self.op("Mul", &[&range, &inverse_range], vec![]);
        // An all-zero token keeps a usable scale.
        let scale = self.op("Max", &[&scale, &smallest], vec![]);
        let zero_point = self.op("Div", &[&low, &scale], vec![]);
        let zero_point = self.op("Neg", &[&zero_point], vec![]);
        let zero_point = self.op("Round", &[&zero_point], vec![]);
        let shift = self.op("Mul", &[&zero_point, &scale], vec![]);
        let zero_point = self.op("Cast", &[&zero_point], vec![attribute_int("to", UINT8)]);
        // One block as wide as the row: a scale per token.
        let attributes = vec![attribute_int("axis", -1), attribute_int("block_size", width as i64)];
        let values = self.op("QuantizeLinear", &[x, &scale, &zero_point], attributes);
        let done = (values, scale, shift);
        self.quantised.insert(x.to_string(), done.clone());
        done
    }

    fn layer_norm(&mut self, x: &str, weights: &Weights, name: &str, eps: f32) -> Result<String, EncoderError> {
        let (dims, scale) = weights.floats(&format!("{name}.weight"))?;
        let scale = self.floats(name, &dims, &scale);
        let (dims, bias) = weights.floats(&format!("{name}.bias"))?;
        let bias = self.floats(name, &dims, &bias);
        let attributes = vec![attribute_int("axis", -1), attribute_float("epsilon", eps)];
        Ok(self.op("LayerNormalization", &[x, &scale, &bias], attributes))
    }

    /// The exact (erf) GELU, in the pattern ONNX Runtime fuses into one kernel.
    fn gelu(&mut self, x: &str) -> String {
        let sqrt2 = self.floats("sqrt2", &[], &[std::f32::consts::SQRT_2]);
        let one = self.floats("one", &[], &[1.0]);
        let half = self.floats("half", &[], &[0.5]);
        let scaled = self.op("Div", &[x, &sqrt2], vec![]);
        let erf = self.op("Erf", &[&scaled], vec![]);
        let shifted = self.op("Add", &[&erf, &one], vec![]);
        let product = self.op("Mul", &[x, &shifted], vec![]);
        self.op("Mul", &[&product, &half], vec![])
    }

    /// Multi-head self-attention over `x`, before the output projection, as
    /// one of ONNX Runtime's fused attention kernels: the optimiser does not
    /// recognise the plain-operator form, whose twenty nodes a layer cost a
    /// single short query about a third of its time. With f32 weights the
    /// kernel also makes the query, key and value projections, as one matrix
    /// product; with int8 they are made apart, as every other linear layer.
    fn attention(&mut self, x: &str, weights: &Weights, prefix: &str, config: &Config) -> Result<String, EncoderError> {
        let heads = vec![attribute_int("num_heads", config.num_attention_heads as i64)];
        let projection = |which: &str| format!("{prefix}.attention.self.{which}");
        match self.precision {
            Precision::F32 => {
                let parts = ["query", "key", "value"]
                    .map(|which| Self::transposed(weights, &projection(which)))
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()?;
                let [inner, outer] = parts[0].dims;
                if parts.iter().any(|part| part.dims != [inner, outer]) {
                    return Err(weights.broken(format!("{prefix} has query, key and value of different shapes")));
                }
                // [in, q | k | v] row by row, biases likewise.
                let mut packed = Vec::with_capacity(inner * outer * 3);
                for row in 0..inner {
                    for part in &parts {
                        packed.extend_from_slice(&part.weight[row * outer..(row + 1) * outer]);
                    }
                }
                let bias: Vec<f32> = parts.iter().flat_map(|part| part.bias.iter().copied()).collect();
                let packed = self.floats("qkv", &[inner, outer * 3], &packed);
                let bias = self.floats("qkv_bias", &[outer * 3], &bias);
                Ok(self.microsoft_op("Attention", &[x, &packed, &bias, INPUT_MASK], heads))
            }
            Precision::Int8 => {
                let [query, key, value] = ["query", "key", "value"].map(projection);
                let query = self.linear(x, weights, &query)?;
                let key = self.linear(x, weights, &key)?;
                let value = self.linear(x, weights, &value)?;
                let inputs = [&query, &key, &value, "", INPUT_MASK];
                Ok(self.microsoft_op("MultiHeadAttention", &inputs, heads))
            }
        }
    }
}

/// The serialised ONNX model of `config`'s encoder layers from `weights`
/// (tensor names under `prefix`, "" or "bert.").
pub(super) fn bert_graph(
    weights: &Weights,
    config: &Config,
    prefix: &str,
    precision: Precision,
) -> Result<Vec<u8>, EncoderError> {
    if config.hidden_act != HiddenAct::Gelu {
        return Err(
            weights.broken(format!("activation {:?} has no ONNX export; use the candle backend", config.hidden_act))
        );
    }
    if config.num_attention_heads == 0 || !config.hidden_size.is_multiple_of(config.num_attention_heads) {
        return Err(weights.broken("hidden size is not a multiple of the attention heads"));
    }
    let eps = config.layer_norm_eps as f32;
    let mut graph = Graph { precision, ..Graph::default() };
    let mut x = graph.layer_norm(INPUT_EMBEDDINGS, weights, &format!("{prefix}embeddings.LayerNorm"), eps)?;
    for layer in 0..config.num_hidden_layers {
        let p = format!("{prefix}encoder.layer.{layer}");
        let context = graph.attention(&x, weights, &p, config)?;
        let attended = graph.linear(&context, weights, &format!("{p}.attention.output.dense"))?;
        let residual = graph.op("Add", &[&attended, &x], vec![]);
        let x1 = graph.layer_norm(&residual, weights, &format!("{p}.attention.output.LayerNorm"), eps)?;
        let inner = graph.linear(&x1, weights, &format!("{p}.intermediate.dense"))?;
        let inner = graph.gelu(&inner);
        let out = graph.linear(&inner, weights, &format!("{p}.output.dense"))?;
        let residual = graph.op("Add", &[&out, &x1], vec![]);
        x = graph.layer_norm(&residual, weights, &format!("{p}.output.LayerNorm"), eps)?;
    }
    graph.op_into("", "Identity", &[&x], vec![], OUTPUT_STATES);

    let hidden = config.hidden_size as i64;
    let mut body = Message::new();
    for node in graph.nodes {
        body = body.message(1, node);
    }
    body = body.string(2, "kefu_bert");
    for initializer in graph.initializers {
        body = body.message(5, initializer);
    }
    let body = body
        .message(11, value_info(INPUT_EMBEDDINGS, FLOAT, &[Err("batch"), Err("tokens"), Ok(hidden)]))
        .message(11, value_info(INPUT_MASK, INT32, &[Err("batch"), Err("tokens")]))
        .message(12, value_info(OUTPUT_STATES, FLOAT, &[Err("batch"), Err("tokens"), Ok(hidden)]));
    let opset = Message::new().string(1, "").int(2, OPSET);
    let microsoft = Message::new().string(1, MICROSOFT).int(2, 1);
    Ok(Message::new()
        .int(1, IR_VERSION)
        .string(2, "kefu")
        .message(7, body)
        .message(8, opset)
        .message(8, microsoft)
        .into_bytes())
}
