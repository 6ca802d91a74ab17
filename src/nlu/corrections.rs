//! Agent-taught exemplars (corrections) in the live engine, and the authority
//! they have over a query that is (nearly) the same text.
//!
//! A leaf module: plain vectors and [`Scored`] in, no engine, no I/O.

use std::collections::HashMap;

use crate::corpus::OOS;
use crate::nlu::intent::{Neighbour, Scored};
use crate::support::vector::{dot, norm, unit};

/// One correction as the live engine holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaughtExemplar {
    pub text: String,
    /// Intent id or [`OOS`].
    pub intent: String,
    /// Unit-length embedding of `text`.
    pub vector: Vec<f32>,
}

/// Taught exemplars, one per text: teaching a text again replaces its intent
/// (the latest correction wins).
#[derive(Debug, Default, Clone)]
pub struct Taught {
    entries: Vec<TaughtExemplar>,
    by_text: HashMap<String, usize>,
}

impl Taught {
    /// Adds or relabels `text`; true when the text is new. The vector is normalised here.
    pub fn insert(&mut self, text: String, intent: String, vector: Vec<f32>) -> bool {
        let vector = unit(vector);
        match self.by_text.get(&text) {
            Some(&i) => {
                self.entries[i] = TaughtExemplar { text, intent, vector };
                false
            }
            None => {
                self.by_text.insert(text.clone(), self.entries.len());
                self.entries.push(TaughtExemplar { text, intent, vector });
                true
            }
        }
    }

    /// The intent taught for exactly this text.
    pub fn intent_of(&self, text: &str) -> Option<&str> {
        self.by_text.get(text).map(|&i| self.entries[i].intent.as_str())
    }

    /// The most similar taught exemplar whose intent `allowed` accepts, with its cosine similarity.
    ///
    /// NOTE: a linear scan, not an index: corrections number in the thousands
    /// at most between retrains (a retrain folds them into the real index), and
    /// a scan of a few thousand 384-float rows costs well under a millisecond.
    pub fn nearest(&self, query: &[f32], allowed: impl Fn(&str) -> bool) -> Option<(&TaughtExemplar, f32)> {
        let norm = norm(query);
        if norm == 0.0 || !norm.is_finite() {
            return None;
        }
        self.entries
            .iter()
            .filter(|e| e.vector.len() == query.len() && allowed(&e.intent))
            .map(|e| (e, dot(&e.vector, query) / norm))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[TaughtExemplar] {
        &self.entries
    }
}

/// Lets a taught exemplar at cosine `similarity` decide the intent of `scored`.
///
/// NOTE: the taught exemplar also joins the kNN vote (see
/// `IntentModel::teach`), but one exemplar among k neighbours mixed with a head
/// trained without it can be outvoted on the very text the agent corrected. An
/// agent's correction of (nearly) the same words is the strongest evidence
/// there is, so above the configured similarity it decides: the taught intent
/// becomes the best one (or the message out of scope), with the similarity as
/// the confidence.
pub fn apply_authority(scored: &mut Scored, taught: &TaughtExemplar, similarity: f32) {
    let similarity = similarity.clamp(0.0, 1.0);
    let neighbour = Neighbour { intent: taught.intent.clone(), text: taught.text.clone(), similarity };
    scored.neighbours.retain(|n| n.text != taught.text);
    scored.neighbours.insert(0, neighbour);
    if taught.intent == OOS {
        scored.out_of_scope = true;
        // For out-of-scope messages the engine reports 1 - confidence.
        scored.confidence = 1.0 - similarity;
        return;
    }
    let previous =
        scored.ranked.iter().position(|(id, _)| *id == taught.intent).map(|i| scored.ranked.remove(i).1).unwrap_or(0.0);
    let top = scored.ranked.first().map_or(0.0, |(_, p)| *p);
    scored.ranked.insert(0, (taught.intent.clone(), previous.max(top).max(similarity)));
    scored.out_of_scope = false;
    scored.confidence = similarity;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored() -> Scored {
        Scored {
            ranked: vec![("refund_status".into(), 0.7), ("return_policy".into(), 0.2)],
            out_of_scope: false,
            confidence: 0.8,
            neighbours: vec![Neighbour {
                intent: "refund_status".into(), text: "退款到哪了".into(), similarity: 0.9
            }],
        }
    }

    #[test]
    fn latest_teaching_of_a_text_wins() {
        let mut taught = Taught::default();
        assert!(taught.insert("a".into(), "x".into(), vec![3.0, 4.0]));
        assert!(!taught.insert("a".into(), "y".into(), vec![3.0, 4.0]));
        assert!(taught.insert("b".into(), "x".into(), vec![1.0, 0.0]));
        assert_eq!(taught.len(), 2);
        assert_eq!(taught.intent_of("a"), Some("y"));
        // Vectors are stored unit-length, so similarities are cosines.
        let (hit, sim) = taught.nearest(&[0.6, 0.8], |_| true).unwrap();
        assert_eq!(hit.text, "a");
        assert!((sim - 1.0).abs() < 1e-6, "{sim}");
        let (hit, _) = taught.nearest(&[0.6, 0.8], |intent| intent == "x").unwrap();
        assert_eq!(hit.text, "b");
        assert!(taught.nearest(&[0.0, 0.0], |_| true).is_none());
        assert!(taught.nearest(&[1.0, 0.0, 0.0], |_| true).is_none(), "other dimension");
    }

    #[test]
    fn authority_puts_the_taught_intent_first() {
        let mut s = scored();
        let taught = TaughtExemplar { text: "钱退哪去了".into(), intent: "return_policy".into(), vector: vec![] };
        apply_authority(&mut s, &taught, 0.97);
        assert_eq!(s.intent(), "return_policy");
        assert_eq!(s.ranked.len(), 2);
        assert!(s.ranked[0].1 >= s.ranked[1].1);
        assert!((s.confidence - 0.97).abs() < 1e-6);
        assert_eq!(s.neighbours[0].text, "钱退哪去了");
    }

    #[test]
    fn authority_can_say_out_of_scope_and_back() {
        let mut s = scored();
        apply_authority(&mut s, &TaughtExemplar { text: "今天天气".into(), intent: OOS.into(), vector: vec![] }, 0.99);
        assert_eq!(s.intent(), OOS);
        assert!((1.0 - s.confidence - 0.99).abs() < 1e-6);
        let mut s = Scored { out_of_scope: true, confidence: 0.1, ..scored() };
        apply_authority(
            &mut s,
            &TaughtExemplar { text: "退款".into(), intent: "refund_status".into(), vector: vec![] },
            0.96,
        );
        assert_eq!(s.intent(), "refund_status");
        assert_eq!(s.ranked.iter().filter(|(id, _)| id == "refund_status").count(), 1);
    }
}
