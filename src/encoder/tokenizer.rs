//! The encoder's tokenizer: a `tokenizer.json` run by the `tokenizers`
//! crate, with a compact Unigram model in place of the crate's own.
//!
//! The crate's Unigram model keeps a byte trie with a hash map in every node:
//! 282 MB resident for e5's 250k pieces, more than the encoder's weights.
//! `CompactUnigram` finds the same segmentation (the Viterbi search of
//! `Unigram::encode_optimized`, candidates in the same order, the same
//! unknown-piece penalty and fusing) by looking each prefix up in one hash
//! map, about 20 MB; the crate's normaliser, pre-tokeniser and
//! post-processor still run around it. Other models (WordPiece) stay the crate's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenizers::models::unigram::UnigramTrainer;
use tokenizers::{
    DecoderWrapper, Encoding, Model, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, Token, Tokenizer,
    TokenizerImpl, TruncationParams,
};

use super::EncoderError;

type CompactTokenizer =
    TokenizerImpl<CompactUnigram, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>;

/// A loaded `tokenizer.json`.
pub(super) enum TextTokenizer {
    Crate(Box<Tokenizer>),
    Compact(Box<CompactTokenizer>),
}

impl TextTokenizer {
    /// Load `path`, truncating to `max_length` tokens and never padding
    /// (padding is done per forward pass).
    pub fn load(path: &Path, max_length: usize) -> Result<Self, EncoderError> {
        let bad = |reason: String| EncoderError::BadFile { path: path.to_path_buf(), reason };
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => EncoderError::MissingFile(path.to_path_buf()),
            _ => bad(e.to_string()),
        })?;
        let mut json: Value = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        let truncation = Some(TruncationParams { max_length, ..Default::default() });
        let Some(model) = json.get("model").and_then(CompactUnigram::from_json) else {
            let mut tokenizer: Tokenizer = serde_json::from_value(json).map_err(|e| bad(e.to_string()))?;
            tokenizer.with_truncation(truncation).map_err(|e| bad(e.to_string()))?;
            tokenizer.with_padding(None);
            return Ok(Self::Crate(Box::new(tokenizer)));
        };
        // The crate parses everything but the model, given a one-piece vocabulary.
        let unk = model.pieces[model.unk_id as usize].to_string();
        json["model"]["vocab"] = serde_json::json!([[unk, 0.0]]);
        json["model"]["unk_id"] = 0.into();
        let parts: Tokenizer = serde_json::from_value(json).map_err(|e| bad(e.to_string()))?;
        let mut tokenizer = CompactTokenizer::new(model);
        tokenizer
            .with_normalizer(parts.get_normalizer().cloned())
            .with_pre_tokenizer(parts.get_pre_tokenizer().cloned())
            .with_post_processor(parts.get_post_processor().cloned())
            .with_decoder(parts.get_decoder().cloned());
        let mut added: Vec<_> = parts.get_added_tokens_decoder().into_iter().collect();
        added.sort_by_key(|(id, _)| *id);
        let (special, plain): (Vec<_>, Vec<_>) = added.into_iter().map(|(_, t)| t).partition(|t| t.special);
        tokenizer.add_special_tokens(&special);
        tokenizer.add_tokens(&plain);
        tokenizer.with_truncation(truncation).map_err(|e| bad(e.to_string()))?;
        tokenizer.with_padding(None);
        Ok(Self::Compact(Box::new(tokenizer)))
    }

    /// Token ids of each input, with the model's special tokens.
    pub fn encode_batch(&self, inputs: Vec<String>) -> Result<Vec<Encoding>, EncoderError> {
        match self {
            Self::Crate(t) => t.encode_batch_fast(inputs, true),
            Self::Compact(t) => t.encode_batch_fast(inputs, true),
        }
        .map_err(|e| EncoderError::Tokenize(e.to_string()))
    }
}

/// sentencepiece's penalty below the lowest piece score for an unknown character.
const UNKNOWN_PENALTY: f64 = 10.0;

pub struct CompactUnigram {
    ids: HashMap<Box<str>, u32>,
    pieces: Vec<Box<str>>,
    scores: Vec<f64>,
    unk_id: u32,
    /// The longest piece, in bytes: no longer prefix can match.
    longest: usize,
    unknown_score: f64,
}

impl CompactUnigram {
    /// From a tokenizer.json `model` object of type Unigram without byte
    /// fallback; None for any other model (left to the crate).
    pub fn from_json(model: &Value) -> Option<Self> {
        if model.get("type")?.as_str()? != "Unigram"
            || model.get("byte_fallback").and_then(Value::as_bool) == Some(true)
        {
            return None;
        }
        let unk_id = u32::try_from(model.get("unk_id")?.as_u64()?).ok()?;
        let vocab = model.get("vocab")?.as_array()?;
        let mut ids = HashMap::with_capacity(vocab.len());
        let mut pieces = Vec::with_capacity(vocab.len());
        let mut scores = Vec::with_capacity(vocab.len());
        for (id, entry) in vocab.iter().enumerate() {
            let piece: Box<str> = entry.get(0)?.as_str()?.into();
            scores.push(entry.get(1)?.as_f64()?);
            ids.insert(piece.clone(), u32::try_from(id).ok()?);
            pieces.push(piece);
        }
        if unk_id as usize >= pieces.len() {
            return None;
        }
        let longest = pieces.iter().map(|p| p.len()).max().unwrap_or(0);
        let lowest = scores.iter().copied().fold(f64::INFINITY, f64::min);
        Some(Self { ids, pieces, scores, unk_id, longest, unknown_score: lowest - UNKNOWN_PENALTY })
    }

    /// The best segmentation of `sentence` as (start, end, id) byte spans,
    /// adjacent unknown characters fused into one span.
    fn segment(&self, sentence: &str) -> Vec<(usize, usize, u32)> {
        #[derive(Clone, Copy)]
        struct Best {
            score: f64,
            start: Option<usize>,
            id: u32,
        }
        let size = sentence.len();
        let mut best = vec![Best { score: 0.0, start: None, id: 0 }; size + 1];
        let consider = |best: &mut [Best], from: usize, to: usize, id: u32, score: f64| {
            let candidate = best[from].score + score;
            let node = &mut best[to];
            if node.start.is_none() || candidate > node.score {
                *node = Best { score: candidate, start: Some(from), id };
            }
        };
        for (start, first) in sentence.char_indices() {
            let mut limit = (start + self.longest).min(size);
            while !sentence.is_char_boundary(limit) {
                limit -= 1;
            }
            let mut single = false;
            // Prefixes in increasing length, as the crate's trie yields them, so ties resolve alike.
            let ends = sentence[start..limit].char_indices().skip(1).map(|(i, _)| start + i).chain([limit]);
            for end in ends.filter(|&end| end > start) {
                if let Some(&id) = self.ids.get(&sentence[start..end]) {
                    consider(&mut best, start, end, id, self.scores[id as usize]);
                    single |= end - start == first.len_utf8();
                }
            }
            if !single {
                consider(&mut best, start, start + first.len_utf8(), self.unk_id, self.unknown_score);
            }
        }
        let mut spans = Vec::new();
        let mut end = size;
        while end > 0 {
            let Best { start, id, .. } = best[end];
            let start = start.unwrap_or(0);
            match spans.last_mut() {
                Some((fused_start, _, last)) if id == self.unk_id && *last == self.unk_id => *fused_start = start,
                _ => spans.push((start, end, id)),
            }
            end = start;
        }
        spans.reverse();
        spans
    }
}

impl Model for CompactUnigram {
    type Trainer = UnigramTrainer;

    fn tokenize(&self, sequence: &str) -> tokenizers::Result<Vec<Token>> {
        Ok(self
            .segment(sequence)
            .into_iter()
            .map(|(start, end, id)| Token::new(id, sequence[start..end].to_owned(), (start, end)))
            .collect())
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.pieces.get(id as usize).map(|p| p.to_string())
    }

    fn get_vocab(&self) -> HashMap<String, u32> {
        self.ids.iter().map(|(p, &id)| (p.to_string(), id)).collect()
    }

    fn get_vocab_size(&self) -> usize {
        self.pieces.len()
    }

    fn save(&self, _folder: &Path, _prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        Err("kefu's compact Unigram model is read from tokenizer.json and never saved".into())
    }

    fn get_trainer(&self) -> Self::Trainer {
        UnigramTrainer::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line of the repository's corpora and evaluation sets, and some
    /// awkward strings, tokenised by the compact model and by the crate's
    /// own Unigram: the same ids. Runs when the e5 model is installed.
    #[test]
    fn compact_unigram_matches_the_crate_on_e5() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let path = root.join("models/multilingual-e5-small/tokenizer.json");
        if !path.is_file() {
            eprintln!("skipped: {} is not installed (run `kefu model fetch`)", path.display());
            return;
        }
        let compact = TextTokenizer::load(&path, 512).unwrap();
        assert!(matches!(compact, TextTokenizer::Compact(_)), "e5's Unigram gets the compact model");
        let mut reference = Tokenizer::from_file(&path).unwrap();
        reference.with_truncation(Some(TruncationParams { max_length: 512, ..Default::default() })).unwrap();
        reference.with_padding(None);

        let mut texts: Vec<String> = [
            "",
            " ",
            "query: 快递到哪了",
            "passage: 退货地址在哪？？？！！！",
            "𠮷野家の牛丼🍜🍜 ünïcödé ＦＵＬＬＷＩＤＴＨ",
            "\u{200b}\u{fffd}\u{1f600}\u{e000}",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ]
        .map(String::from)
        .to_vec();
        for dir in ["corpus", "corpus_examples/saas", "eval"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let file = entry.unwrap().path();
                if file.extension().is_some_and(|e| e == "toml" || e == "jsonl") {
                    let content = std::fs::read_to_string(&file).unwrap();
                    texts.extend(content.lines().map(|l| format!("query: {l}")));
                }
            }
        }
        texts.push(texts.concat().chars().take(3000).collect());
        assert!(texts.len() > 1000, "{} texts", texts.len());
        let want = reference.encode_batch_fast(texts.clone(), true).unwrap();
        let got = compact.encode_batch(texts.clone()).unwrap();
        for ((text, want), got) in texts.iter().zip(&want).zip(&got) {
            assert_eq!(got.get_ids(), want.get_ids(), "{text:?}");
        }
    }
}
