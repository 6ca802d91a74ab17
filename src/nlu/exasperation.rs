//! Exasperation, learned rather than listed: a customer who has run out of
//! patience shows it by repeating themselves ("我都问了三遍了"), by
//! punctuation ("？？？？"), by how long they have waited ("一个多月了还没解决"),
//! by despair; the anger lexicon (see `signals.rs`) has none of those words.
//!
//! A logistic regression over character n-grams, learned from the lines
//! kefu ships (`exasperation.toml`) with the deployment's own examples
//! (all but complaints and asks for a person) as further calm lines, so its
//! questions asked plainly stay answered. Character n-grams, not the
//! sentence embedding: e5's embedding is about the topic, and an exasperated
//! "where is my parcel" sits beside the calm one (measured: a linear probe
//! on it reached precision 0.4-0.6).
//! The threshold is fitted by cross-validation to a false-alarm budget: a
//! needless hand-off costs an agent's time.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::Deserialize;

use crate::corpus::{Corpus, Decision, OOS};
use crate::nlu::intent::sigmoid;
use crate::nlu::slots::normalise_width;

const LINES: &str = include_str!("exasperation.toml");

/// Inverse regularisation strength, as scikit-learn's `C`.
const REGULARISATION: f32 = 10.0;
/// Full-batch optimiser steps: twice as many move the dev set's
/// probabilities by at most 0.06 and flag the same lines.
const STEPS: usize = 300;
const LEARNING_RATE: f32 = 0.05;
const FOLDS: usize = 5;
/// The share of calm lines the threshold may flag (cross-validated): each
/// is an agent's time spent on a customer the bot was serving well.
const MAX_FALSE_ALARMS: f32 = 0.002;
/// Below this share of exasperated lines caught, the signal is noise and stays off.
const MIN_CAUGHT: f32 = 0.2;
/// An n-gram seen in fewer training lines than this says nothing general.
const MIN_LINES: u32 = 2;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Lines {
    exasperated: Vec<String>,
    calm: Vec<String>,
}

/// A text as weighted n-gram ids, L2-normalised.
type Features = Vec<(usize, f32)>;

/// Character 1- to 3-grams of each word, padded with a space at both ends
/// (what scikit-learn's `char_wb` analyser does), of the text lowercased
/// with full-width ASCII folded (？ and ? are one sign).
fn grams(text: &str) -> HashMap<String, u32> {
    let folded: String = normalise_width(text).chars().flat_map(char::to_lowercase).collect();
    let mut counts = HashMap::new();
    for word in folded.split_whitespace() {
        let padded: Vec<char> = std::iter::once(' ').chain(word.chars()).chain(std::iter::once(' ')).collect();
        for n in 1..=3 {
            for gram in padded.windows(n) {
                *counts.entry(gram.iter().collect()).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// N-gram ids and their inverse line frequencies.
struct Vocabulary {
    ids: HashMap<String, usize>,
    idf: Vec<f32>,
}

impl Vocabulary {
    fn learn(lines: &[HashMap<String, u32>]) -> Vocabulary {
        let mut seen: HashMap<&str, u32> = HashMap::new();
        for line in lines {
            for gram in line.keys() {
                *seen.entry(gram).or_insert(0) += 1;
            }
        }
        let mut kept: Vec<(&str, u32)> = seen.into_iter().filter(|&(_, lines)| lines >= MIN_LINES).collect();
        kept.sort_unstable();
        let n = lines.len() as f32;
        let idf = kept.iter().map(|&(_, df)| ((1.0 + n) / (1.0 + df as f32)).ln() + 1.0).collect();
        let ids = kept.into_iter().enumerate().map(|(id, (gram, _))| (gram.to_string(), id)).collect();
        Vocabulary { ids, idf }
    }

    /// Sublinear term frequency times inverse line frequency, L2-normalised.
    fn features(&self, counts: &HashMap<String, u32>) -> Features {
        let mut features: Features = counts
            .iter()
            .filter_map(|(gram, &tf)| self.ids.get(gram).map(|&id| (id, (1.0 + (tf as f32).ln()) * self.idf[id])))
            .collect();
        let norm = features.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            features.iter_mut().for_each(|(_, v)| *v /= norm);
        }
        features.sort_unstable_by_key(|&(id, _)| id);
        features
    }
}

/// Logistic regression weights; the last one is the intercept.
struct Weights(Vec<f32>);

impl Weights {
    fn probability(&self, features: &Features) -> f32 {
        let (intercept, weights) = self.0.split_last().unwrap_or((&0.0, &[]));
        sigmoid(intercept + features.iter().map(|&(id, v)| weights[id] * v).sum::<f32>())
    }

    /// Minimises the class-balanced log loss plus an L2 penalty on the
    /// weights (not the intercept), scikit-learn's objective scaled by
    /// 1/(C·n), with Adam from zero: deterministic.
    fn learn(rows: &[&Features], labels: &[bool], dims: usize) -> Weights {
        let n = rows.len() as f32;
        let positives = labels.iter().filter(|&&l| l).count().max(1) as f32;
        let class_weight =
            |label: bool| if label { n / (2.0 * positives) } else { n / (2.0 * (n - positives).max(1.0)) };
        let penalty = 1.0 / (REGULARISATION * n);
        let mut w = Weights(vec![0.0; dims + 1]);
        let (mut first, mut second) = (vec![0.0f32; dims + 1], vec![0.0f32; dims + 1]);
        let (beta1, beta2) = (0.9f32, 0.999f32);
        for step in 1..=STEPS {
            let mut gradient = vec![0.0f32; dims + 1];
            for (row, &label) in rows.iter().zip(labels) {
                let error = class_weight(label) * (w.probability(row) - f32::from(u8::from(label))) / n;
                for &(id, v) in row.iter() {
                    gradient[id] += error * v;
                }
                gradient[dims] += error;
            }
            let (correct1, correct2) = (1.0 - beta1.powi(step as i32), 1.0 - beta2.powi(step as i32));
            for i in 0..=dims {
                let g = if i < dims { gradient[i] + penalty * w.0[i] } else { gradient[i] };
                first[i] = beta1 * first[i] + (1.0 - beta1) * g;
                second[i] = beta2 * second[i] + (1.0 - beta2) * g * g;
                w.0[i] -= LEARNING_RATE * (first[i] / correct1) / ((second[i] / correct2).sqrt() + 1e-8);
            }
        }
        w
    }
}

/// The learned signal of one deployment.
pub struct ExasperationModel {
    vocabulary: Vocabulary,
    weights: Weights,
    /// `None` when no threshold keeps to the budget usefully: the signal stays silent.
    threshold: Option<f32>,
}

impl ExasperationModel {
    /// Learns from kefu's lines and the corpus's calm ones: all its examples
    /// but those of intents people handle (complaints, asks for a person).
    pub fn for_corpus(corpus: &Corpus) -> ExasperationModel {
        let calm = corpus.examples.iter().filter(|e| {
            e.intent == OOS || corpus.taxonomy.intent(&e.intent).is_some_and(|i| i.decision != Decision::Handoff)
        });
        Self::learn(calm.map(|e| e.text.as_str()))
    }

    /// Learns from kefu's lines and `calm` ones.
    pub fn learn<'a>(calm: impl IntoIterator<Item = &'a str>) -> ExasperationModel {
        // NOTE: the file is compiled in and parsed by a unit test.
        let shipped: Lines = toml::from_str(LINES).expect("the shipped exasperation lines parse");
        let mut counts: Vec<HashMap<String, u32>> = shipped.exasperated.iter().map(|t| grams(t)).collect();
        let mut labels = vec![true; counts.len()];
        counts.extend(shipped.calm.iter().map(|t| grams(t)));
        counts.extend(calm.into_iter().map(grams));
        labels.resize(counts.len(), false);
        let vocabulary = Vocabulary::learn(&counts);
        let rows: Vec<Features> = counts.iter().map(|c| vocabulary.features(c)).collect();
        let dims = vocabulary.idf.len();
        let threshold = cross_validated_threshold(&rows, &labels, dims);
        let all: Vec<&Features> = rows.iter().collect();
        let weights = Weights::learn(&all, &labels, dims);
        ExasperationModel { vocabulary, weights, threshold }
    }

    /// How likely `text` is an exasperated customer's, 0 to 1.
    pub fn probability(&self, text: &str) -> f32 {
        self.weights.probability(&self.vocabulary.features(&grams(text)))
    }

    /// Whether a person should take over from the bot because of how `text` is said.
    pub fn is_exasperated(&self, text: &str) -> bool {
        self.threshold.is_some_and(|t| self.probability(text) >= t)
    }

    /// The fitted threshold, `None` when the signal is off.
    pub fn threshold(&self) -> Option<f32> {
        self.threshold
    }
}

/// Each line's probability from a model fitted without its fold (folds
/// stratified by class, so each holds exasperated lines).
fn held_out_probabilities(rows: &[Features], labels: &[bool], dims: usize) -> Vec<f32> {
    let mut seen = [0usize; 2];
    let folds: Vec<usize> = labels
        .iter()
        .map(|&l| {
            seen[usize::from(l)] += 1;
            seen[usize::from(l)] % FOLDS
        })
        .collect();
    let fitted: Vec<Weights> = (0..FOLDS)
        .into_par_iter()
        .map(|fold| {
            let (train, train_labels): (Vec<&Features>, Vec<bool>) =
                (0..rows.len()).filter(|&i| folds[i] != fold).map(|i| (&rows[i], labels[i])).unzip();
            Weights::learn(&train, &train_labels, dims)
        })
        .collect();
    rows.iter().zip(&folds).map(|(row, &fold)| fitted[fold].probability(row)).collect()
}

/// The share of exasperated and of calm lines at or above `threshold`.
fn rates(held_out: &[f32], labels: &[bool], threshold: f32) -> (f32, f32) {
    let mut flagged = [0usize; 2];
    let mut total = [0usize; 2];
    for (&p, &label) in held_out.iter().zip(labels) {
        total[usize::from(label)] += 1;
        flagged[usize::from(label)] += usize::from(p >= threshold);
    }
    let share = |k: usize| flagged[k] as f32 / total[k].max(1) as f32;
    (share(1), share(0))
}

/// The lowest probability threshold at which at most [`MAX_FALSE_ALARMS`]
/// of the calm lines are flagged out of fold; `None` when that threshold
/// catches under [`MIN_CAUGHT`] of the exasperated ones. A rate, not a
/// precision: how many calm lines a deployment has says nothing about how
/// many of its customers are exasperated.
fn cross_validated_threshold(rows: &[Features], labels: &[bool], dims: usize) -> Option<f32> {
    let held_out = held_out_probabilities(rows, labels, dims);
    let threshold = (2..20).map(|step| step as f32 * 0.05).find(|&threshold| {
        let (_, false_alarms) = rates(&held_out, labels, threshold);
        false_alarms <= MAX_FALSE_ALARMS
    })?;
    (rates(&held_out, labels, threshold).0 >= MIN_CAUGHT).then_some(threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grams_are_per_word_padded_and_fold_full_width_signs() {
        let counts = grams("Hi？？ 你");
        for gram in [" ", "h", " hi", "hi?", "??", "? ", " 你 "] {
            assert!(counts.contains_key(gram), "{gram:?} in {counts:?}");
        }
        assert_eq!(counts["?"], 2);
        assert!(!counts.contains_key("i ?"), "n-grams stay inside a word");
    }

    #[test]
    fn held_out_lines_are_told_apart() {
        let holdout: Lines = toml::from_str(include_str!("../../tests/fixtures/exasperation_holdout.toml")).unwrap();
        let model = ExasperationModel::for_corpus(&Corpus::load(std::path::Path::new("corpus")).unwrap());
        assert!(model.threshold().is_some());
        let caught = holdout.exasperated.iter().filter(|t| model.is_exasperated(t)).count();
        let false_alarms: Vec<&String> = holdout.calm.iter().filter(|t| model.is_exasperated(t)).collect();
        assert!(caught * 10 >= holdout.exasperated.len() * 6, "caught {caught} of {}", holdout.exasperated.len());
        assert!(false_alarms.len() <= 2, "{false_alarms:?}");
    }

    #[test]
    fn too_few_calm_lines_to_keep_the_budget_leave_the_signal_off() {
        let model = ExasperationModel::learn(["快递到哪了", "where is my order"]);
        assert_eq!(model.threshold(), None);
        assert!(!model.is_exasperated("？？？？？？我的快递呢？？？"));
    }
}
