//! Out-of-scope examples kefu brings to every deployment (`background_oos.toml`):
//! a corpus's own out-of-scope lines are usually a few dozen, and a threshold
//! fitted on them alone lets through the near misses no one thought to write
//! (a password reset, a refund or a renewal with someone else's service).
//!
//! Only deployments that have out-of-scope examples get them: trained from
//! in-scope lines alone, nothing is rejected (see `fit_threshold`). A
//! background line closer to one of the deployment's intents than its own
//! paraphrases usually are to each other is the deployment's business, not a
//! negative, and is left out.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;
use serde::Deserialize;

use crate::corpus::OOS;
use crate::nlu::intent::TrainingExample;
use crate::support::vector::dot;

const BACKGROUND: &str = include_str!("background_oos.toml");

/// A background line is left out when its nearest in-scope exemplar is at
/// least as similar as this quantile of the exemplars' similarities to their
/// nearest same-intent paraphrase: as close as the closest paraphrases, a
/// near duplicate. Near misses sit only a little further from an intent than
/// its paraphrases (with e5, 0.93-0.95 against a median of 0.93 on the demo
/// corpus), so a lower bar would drop the very lines the set is for.
const PARAPHRASE_QUANTILE: f64 = 0.9;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackgroundFile {
    zh: Vec<String>,
    en: Vec<String>,
}

/// The background lines, Chinese first.
pub fn texts() -> Vec<String> {
    // NOTE: the file is compiled in and parsed by a unit test.
    let file: BackgroundFile = toml::from_str(BACKGROUND).expect("the shipped background set parses");
    file.zh.into_iter().chain(file.en).collect()
}

/// Whether `examples` take background lines at all: only beside out-of-scope lines of their own.
pub fn applies(examples: &[TrainingExample]) -> bool {
    examples.iter().any(|e| e.label == OOS)
}

/// The embedded background lines (`candidates`) that may serve as
/// out-of-scope examples beside `examples`: none when the set does not
/// [`applies`] or there are too few paraphrases to measure; never a text the
/// examples already hold, nor one as close to an intent as its paraphrases.
pub fn negatives(examples: &[TrainingExample], candidates: Vec<(String, Vec<f32>)>) -> Vec<TrainingExample> {
    if !applies(examples) {
        return Vec::new();
    }
    let in_scope: Vec<&TrainingExample> = examples.iter().filter(|e| e.label != OOS).collect();
    let Some(limit) = paraphrase_similarity(&in_scope) else { return Vec::new() };
    let known: HashSet<&str> = examples.iter().map(|e| e.text.trim()).collect();
    candidates
        .into_par_iter()
        .filter(|(text, vector)| {
            !known.contains(text.trim()) && in_scope.iter().all(|e| dot(&e.vector, vector) < limit)
        })
        .map(|(text, vector)| TrainingExample { text, label: OOS.to_string(), group: String::new(), vector })
        .collect()
}

/// The [`PARAPHRASE_QUANTILE`] of each exemplar's similarity to its nearest
/// other exemplar of the same intent; `None` without an intent of two.
fn paraphrase_similarity(in_scope: &[&TrainingExample]) -> Option<f32> {
    let mut by_label: HashMap<&str, Vec<&[f32]>> = HashMap::new();
    for e in in_scope {
        by_label.entry(e.label.as_str()).or_default().push(&e.vector);
    }
    let mut nearest: Vec<f32> = by_label
        .into_par_iter()
        .filter(|(_, members)| members.len() > 1)
        .flat_map_iter(|(_, members)| {
            (0..members.len())
                .map(|i| {
                    let others = members.iter().enumerate().filter(|&(j, _)| j != i);
                    others.map(|(_, other)| dot(members[i], other)).fold(f32::MIN, f32::max)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if nearest.is_empty() {
        return None;
    }
    nearest.sort_by(f32::total_cmp);
    Some(nearest[((nearest.len() - 1) as f64 * PARAPHRASE_QUANTILE) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(text: &str, label: &str, vector: [f32; 2]) -> TrainingExample {
        let norm = (vector[0] * vector[0] + vector[1] * vector[1]).sqrt();
        TrainingExample {
            text: text.into(),
            label: label.into(),
            group: "g".into(),
            vector: vector.iter().map(|v| v / norm).collect(),
        }
    }

    fn candidate(text: &str, vector: [f32; 2]) -> (String, Vec<f32>) {
        let e = example(text, OOS, vector);
        (e.text, e.vector)
    }

    #[test]
    fn the_shipped_set_parses_in_both_languages() {
        let texts = texts();
        assert!(texts.len() >= 100, "{}", texts.len());
        assert!(texts.iter().any(|t| t.is_ascii()) && texts.iter().any(|t| !t.is_ascii()));
    }

    #[test]
    fn keeps_far_lines_and_leaves_out_the_deployments_own_business() {
        let examples = vec![
            example("hours", "hours", [1.0, 0.0]),
            example("opening hours", "hours", [1.0, 0.05]),
            example("when open", "hours", [1.0, -0.05]),
            example("joke", OOS, [0.0, 1.0]),
        ];
        let kept = negatives(
            &examples,
            vec![
                candidate("weather", [0.2, 1.0]),
                candidate("are you open now", [1.0, 0.02]),
                candidate("joke", [0.0, 1.0]),
            ],
        );
        let texts: Vec<&str> = kept.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["weather"], "close to an intent, or already an example: left out");
        assert_eq!(kept[0].label, OOS);
    }

    #[test]
    fn nothing_without_out_of_scope_examples_of_the_deployments_own() {
        let examples = vec![example("hours", "hours", [1.0, 0.0]), example("opening", "hours", [1.0, 0.1])];
        assert!(negatives(&examples, vec![candidate("weather", [0.0, 1.0])]).is_empty());
    }
}
