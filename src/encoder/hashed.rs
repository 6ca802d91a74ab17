//! A deterministic stand-in encoder for in-process tests: character 1- to
//! 3-grams hashed into a fixed number of buckets, L2-normalised. Texts that
//! share characters land near each other, so the engine, the policy and the
//! API can be tested in seconds without the downloaded model.

use sha2::{Digest, Sha256};

use super::{Encoder, EncoderError, TextKind};

/// Hashed character n-grams to a unit vector.
pub struct HashedNgramEncoder {
    dim: usize,
    fingerprint: String,
}

impl HashedNgramEncoder {
    pub fn new(dim: usize) -> Self {
        HashedNgramEncoder { dim, fingerprint: format!("hashed-ngrams-{dim}") }
    }

    fn embed(&self, text: &str) -> Vec<f32> {
        let chars: Vec<char> = text.to_lowercase().chars().filter(|c| !c.is_whitespace()).collect();
        let mut row = vec![0f32; self.dim];
        for n in 1..=3 {
            for gram in chars.windows(n) {
                let digest = Sha256::digest(gram.iter().collect::<String>().as_bytes());
                let bucket =
                    u64::from_le_bytes(digest[..8].try_into().expect("a sha256 digest has 32 bytes. This is a bug."))
                        as usize
                        % self.dim;
                // Longer grams say more about the text than single characters.
                row[bucket] += n as f32;
            }
        }
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|x| *x /= norm);
        } else {
            row[0] = 1.0;
        }
        row
    }
}

impl Encoder for HashedNgramEncoder {
    fn dim(&self) -> usize {
        self.dim
    }

    fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn encode(&self, texts: &[&str], _kind: TextKind) -> Result<Vec<Vec<f32>>, EncoderError> {
        Ok(texts.iter().map(|t| self.embed(t)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_texts_are_near_and_rows_are_unit_length() {
        let e = HashedNgramEncoder::new(256);
        let rows = e.encode(&["退货地址在哪", "退货地址是哪里", "今天天气怎么样", ""], TextKind::Query).unwrap();
        let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        assert!(cos(&rows[0], &rows[1]) > cos(&rows[0], &rows[2]) + 0.3);
        assert!(rows.iter().all(|r| (r.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5));
        assert_eq!(rows, e.encode(&["退货地址在哪", "退货地址是哪里", "今天天气怎么样", ""], TextKind::Query).unwrap());
    }
}
