//! Intent scoring: a similarity-weighted vote of the nearest exemplars mixed
//! with a softmax head trained on the exemplar embeddings, an out-of-scope
//! threshold and a calibrated confidence.
//!
//! Every number that shapes a decision (the vote's temperature, the mix, the
//! out-of-scope threshold, the calibration) is fitted on out-of-fold scores of
//! the training examples themselves (k-fold cross-fitting), so that every
//! out-of-scope example takes part in choosing the threshold, or, when a
//! held-out validation set is given, on its scores.
//!
//! The calibration reads, besides the mixed probabilities, how close the
//! message is to the best intent's centroid and the head's raw logit for it:
//! both are low for messages unlike anything in the corpus, which softmax
//! probabilities alone hide (see eval/README.md for the figures).

use std::collections::HashMap;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::corpus::OOS;
use crate::index::{ExemplarIndex, IndexError, IndexParams};
use crate::nlu::head::{softmax, HeadError, HeadTrainOptions, SoftmaxHead};

#[derive(Debug, thiserror::Error)]
pub enum IntentError {
    #[error("no training examples")]
    Empty,
    #[error("training needs at least two in-scope intents, found {0}")]
    TooFewIntents(usize),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error("cannot read or write {path}: {message}")]
    Persist { path: String, message: String },
}

/// Neighbours returned with a score, for showing candidates.
const NEIGHBOURS_SHOWN: usize = 30;

/// One embedded training example.
#[derive(Debug, Clone)]
pub struct TrainingExample {
    pub text: String,
    /// Intent id, or [`OOS`].
    pub label: String,
    /// Scenario of the intent; ignored for out-of-scope examples.
    pub group: String,
    pub vector: Vec<f32>,
}

/// How to fit an [`IntentModel`].
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// Folds for cross-fitting the thresholds (at least 2).
    pub folds: usize,
    /// Neighbours in the vote.
    pub k: usize,
    /// Weight of out-of-scope recall against in-scope accuracy when choosing
    /// the threshold: 1.0 values both equally; below 1 favours answering,
    /// since most real traffic is in scope.
    pub oos_weight: f32,
    pub seed: u64,
    pub head: HeadTrainOptions,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions { folds: 4, k: 10, oos_weight: 0.2, seed: 7, head: HeadTrainOptions::default() }
    }
}

/// Figures measured on out-of-fold scores while fitting; saved with the model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FitReport {
    pub examples: usize,
    pub in_scope_accuracy: f32,
    pub oos_recall: Option<f32>,
    pub seconds: f32,
}

/// Number of features the calibration reads (see [`Evidence::features`]).
const FEATURES: usize = 6;

/// Fitted numbers that turn scores into decisions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Calibration {
    /// Share of the vote in the mix (the head has the rest).
    pub knn_weight: f32,
    /// Softness of the similarity-weighted vote.
    pub knn_temperature: f32,
    /// Logistic regression of "the best intent is right" on the evidence
    /// features; the last weight is the bias.
    pub weights: [f32; FEATURES + 1],
    /// Below this calibrated confidence the message is out of scope.
    pub oos_threshold: f32,
    pub k: usize,
    pub report: FitReport,
}

impl Calibration {
    /// Calibrated probability that the best in-scope intent is right.
    fn confidence(&self, evidence: &Evidence) -> f32 {
        logistic(&self.weights, &evidence.features())
    }
}

fn logistic(weights: &[f32; FEATURES + 1], x: &[f32; FEATURES]) -> f32 {
    let z: f32 = weights[FEATURES] + weights.iter().zip(x).map(|(w, x)| w * x).sum::<f32>();
    sigmoid(z)
}

/// What the scores say about the best in-scope intent of one query.
#[derive(Debug, Clone, Copy)]
struct Evidence {
    top: usize,
    /// Mixed probability of `top`.
    raw: f32,
    /// `raw` minus the runner-up's probability.
    margin: f32,
    /// Similarity of the nearest in-scope exemplar.
    nearest: f32,
    /// Mixed probability of the out-of-scope class (0 without one).
    oos_mass: f32,
    /// Cosine similarity to the centroid of `top`'s exemplars.
    centroid: f32,
    /// The head's logit for `top`: its magnitude, which the softmax
    /// normalises away, is low for messages unlike any training example.
    logit: f32,
}

impl Evidence {
    fn new(probs: &[f32], hits: &[(usize, f32)], centroids: &[f32], logits: &[f32], oos: Option<usize>) -> Evidence {
        let (top, raw) = best_in_scope(probs, oos);
        let second =
            probs.iter().enumerate().filter(|&(i, _)| i != top && Some(i) != oos).map(|(_, &p)| p).fold(0.0, f32::max);
        let nearest = hits.iter().filter(|(c, _)| Some(*c) != oos).map(|&(_, s)| s).fold(0.0, f32::max);
        let centroid = centroids.get(top).copied().unwrap_or(0.0);
        let logit = logits.get(top).copied().unwrap_or(0.0);
        Evidence { top, raw, margin: raw - second, nearest, oos_mass: oos.map_or(0.0, |o| probs[o]), centroid, logit }
    }

    fn features(&self) -> [f32; FEATURES] {
        [self.raw, self.margin, self.nearest, self.oos_mass, self.centroid, self.logit]
    }
}

pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// A neighbour exemplar that supported the decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbour {
    pub intent: String,
    pub text: String,
    pub similarity: f32,
}

/// The scored intents for one query.
#[derive(Debug, Clone)]
pub struct Scored {
    /// In-scope intents by mixed probability, best first.
    pub ranked: Vec<(String, f32)>,
    /// True when the message is outside every intent.
    pub out_of_scope: bool,
    /// Calibrated probability that `ranked[0]` is right.
    pub confidence: f32,
    /// The nearest exemplars, best first.
    pub neighbours: Vec<Neighbour>,
}

impl Scored {
    /// The best in-scope intent, or [`OOS`].
    pub fn intent(&self) -> &str {
        match (self.out_of_scope, self.ranked.first()) {
            (false, Some((id, _))) => id,
            _ => OOS,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ModelMeta {
    labels: Vec<String>,
    label_groups: Vec<String>,
    exemplar_labels: Vec<usize>,
    exemplar_texts: Vec<String>,
    centroids: Vec<Vec<f32>>,
    calibration: Calibration,
}

/// Index + head + calibration, ready to score queries.
pub struct IntentModel {
    labels: Vec<String>,
    /// Scenario of each label; [`OOS`] for the out-of-scope class.
    label_groups: Vec<String>,
    exemplar_labels: Vec<usize>,
    exemplar_texts: Vec<String>,
    index: ExemplarIndex,
    head: SoftmaxHead,
    /// Unit-length mean exemplar of each in-scope class (empty for the
    /// out-of-scope class): how close a message sits to the intent it is
    /// given is a strong sign of being in scope at all.
    centroids: Vec<Vec<f32>>,
    calibration: Calibration,
}

/// Out-of-fold evidence for one example.
struct HeldOut {
    gold: usize,
    head: Vec<f32>,
    hits: Vec<(usize, f32)>,
    /// Cosine similarity to each class centroid.
    centroids: Vec<f32>,
    logits: Vec<f32>,
}

/// A head, index and centroids fitted without the examples they score.
struct Scorer<'a> {
    head: &'a SoftmaxHead,
    index: &'a ExemplarIndex,
    /// The class of each of the index's exemplars.
    classes: &'a [usize],
    centroids: &'a [Vec<f32>],
    k: usize,
}

impl Scorer<'_> {
    /// The evidence on `vector`, whose class is `gold`.
    fn held_out(&self, vector: &[f32], gold: usize) -> Result<HeldOut, IntentError> {
        let hits =
            self.index.search(vector, self.k, None)?.into_iter().map(|h| (self.classes[h.id], h.similarity)).collect();
        let logits = self.head.logits(vector);
        Ok(HeldOut {
            gold,
            head: softmax(&logits),
            hits,
            centroids: centroid_similarities(self.centroids, vector),
            logits,
        })
    }
}

/// The mix, calibration and threshold chosen on held-out evidence.
struct Choice {
    knn_weight: f32,
    knn_temperature: f32,
    weights: [f32; FEATURES + 1],
    fitted: Fitted,
    /// Top-1 accuracy on the in-scope held-out examples.
    top1: f32,
}

/// Picks the kNN/head mix by top-1 accuracy on the in-scope held-out
/// examples, then fits the calibration and the out-of-scope threshold for it.
fn choose_calibration(held_out: &[HeldOut], oos_class: Option<usize>, oos_weight: f32) -> Option<Choice> {
    let mut best: Option<Choice> = None;
    for knn_weight in [0.0, 0.25, 0.5, 0.75, 1.0] {
        for temperature in [0.01, 0.03, 0.1] {
            let evidence: Vec<Evidence> = held_out
                .iter()
                .map(|h| {
                    Evidence::new(
                        &mix(&h.head, &h.hits, knn_weight, temperature),
                        &h.hits,
                        &h.centroids,
                        &h.logits,
                        oos_class,
                    )
                })
                .collect();
            let samples: Vec<([f32; FEATURES], bool)> =
                evidence.iter().zip(held_out).map(|(e, h)| (e.features(), e.top == h.gold)).collect();
            let weights = fit_logistic(&samples);
            let outcomes: Vec<HeldOutResult> = evidence
                .iter()
                .zip(held_out)
                .map(|(e, h)| HeldOutResult {
                    gold_oos: Some(h.gold) == oos_class,
                    top_right: e.top == h.gold,
                    confidence: logistic(&weights, &e.features()),
                })
                .collect();
            let fitted = fit_threshold(&outcomes, oos_weight);
            // NOTE: the mix is chosen for telling intents apart (top-1 on
            // in-scope examples); the out-of-scope trade-off only breaks
            // ties, so that changing it moves the threshold, not the classifier.
            let in_scope: Vec<&HeldOutResult> = outcomes.iter().filter(|o| !o.gold_oos).collect();
            let top1 = in_scope.iter().filter(|o| o.top_right).count() as f32 / in_scope.len().max(1) as f32;
            if best.as_ref().is_none_or(|b| (top1, fitted.score) > (b.top1, b.fitted.score)) {
                best = Some(Choice { knn_weight, knn_temperature: temperature, weights, fitted, top1 });
            }
            if knn_weight == 0.0 {
                break; // the temperature does not matter without the vote
            }
        }
    }
    best
}

/// Mixes head probabilities with a similarity-weighted vote over `hits` (best first).
fn mix(head: &[f32], hits: &[(usize, f32)], knn_weight: f32, temperature: f32) -> Vec<f32> {
    let mut probs: Vec<f32> = head.iter().map(|p| p * (1.0 - knn_weight)).collect();
    let Some(&(_, best)) = hits.first() else { return head.to_vec() };
    let weights: Vec<f32> = hits.iter().map(|(_, s)| ((s - best) / temperature).exp()).collect();
    let total: f32 = weights.iter().sum();
    for ((label, _), w) in hits.iter().zip(weights) {
        probs[*label] += knn_weight * w / total;
    }
    probs
}

/// Best in-scope class and its probability (the out-of-scope class, if any, is skipped).
fn best_in_scope(probs: &[f32], oos: Option<usize>) -> (usize, f32) {
    probs.iter().enumerate().filter(|(i, _)| Some(*i) != oos).fold((usize::MAX, f32::MIN), |best, (i, &p)| {
        if p > best.1 {
            (i, p)
        } else {
            best
        }
    })
}

/// Unit-length mean of each class's rows; empty for `skip` (the out-of-scope
/// class, which has no centre) and for classes without rows.
fn class_centroids(x: &[Vec<f32>], y: &[usize], n_classes: usize, skip: Option<usize>) -> Vec<Vec<f32>> {
    let dim = x.first().map_or(0, Vec::len);
    let mut sums = vec![vec![0.0f32; dim]; n_classes];
    for (row, &c) in x.iter().zip(y) {
        sums[c].iter_mut().zip(row).for_each(|(s, v)| *s += v);
    }
    sums.into_iter()
        .enumerate()
        .map(|(c, sum)| {
            let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt();
            if Some(c) == skip || norm == 0.0 {
                Vec::new()
            } else {
                sum.into_iter().map(|v| v / norm).collect()
            }
        })
        .collect()
}

/// Cosine similarity of a unit-length `query` to each centroid (0 for an empty one).
fn centroid_similarities(centroids: &[Vec<f32>], query: &[f32]) -> Vec<f32> {
    centroids.iter().map(|c| c.iter().zip(query).map(|(a, b)| a * b).sum()).collect()
}

/// How one held-out example fares under a candidate calibration.
struct HeldOutResult {
    gold_oos: bool,
    /// Best in-scope class is the gold one.
    top_right: bool,
    /// Calibrated confidence in the best in-scope class.
    confidence: f32,
}

struct Fitted {
    threshold: f32,
    score: f32,
    in_scope_accuracy: f32,
    oos_recall: Option<f32>,
}

/// Chooses the out-of-scope threshold that maximises in-scope accuracy plus
/// `oos_weight` times out-of-scope recall. Without out-of-scope examples there
/// is nothing to weigh rejection against: the threshold is 0 and nothing is
/// rejected (a low confidence still makes the policy ask which was meant).
fn fit_threshold(outcomes: &[HeldOutResult], oos_weight: f32) -> Fitted {
    let n_in = outcomes.iter().filter(|o| !o.gold_oos).count().max(1) as f32;
    let n_oos = outcomes.iter().filter(|o| o.gold_oos).count();
    let mut scores: Vec<f32> = outcomes.iter().map(|o| o.confidence).collect();
    scores.sort_by(f32::total_cmp);
    scores.dedup();
    let evaluate = |threshold: f32| {
        let in_right = outcomes.iter().filter(|o| !o.gold_oos && o.top_right && o.confidence >= threshold).count();
        let oos_right = outcomes.iter().filter(|o| o.gold_oos && o.confidence < threshold).count();
        let accuracy = in_right as f32 / n_in;
        let recall = (n_oos > 0).then(|| oos_right as f32 / n_oos as f32);
        (accuracy, recall)
    };
    if n_oos == 0 {
        let (accuracy, _) = evaluate(0.0);
        return Fitted { threshold: 0.0, score: accuracy, in_scope_accuracy: accuracy, oos_recall: None };
    }
    // Candidate thresholds sit halfway between neighbouring observed scores.
    let candidates = std::iter::once(0.0).chain(scores.windows(2).map(|w| (w[0] + w[1]) / 2.0));
    let mut best = Fitted { threshold: 0.0, score: f32::MIN, in_scope_accuracy: 0.0, oos_recall: None };
    for threshold in candidates {
        let (accuracy, recall) = evaluate(threshold);
        let score = accuracy + oos_weight * recall.unwrap_or(0.0);
        if score > best.score {
            best = Fitted { threshold, score, in_scope_accuracy: accuracy, oos_recall: recall };
        }
    }
    best
}

/// Logistic regression of `right` on the features, by Newton's method with a
/// small ridge (which keeps the step finite when the classes separate).
fn fit_logistic(samples: &[([f32; FEATURES], bool)]) -> [f32; FEATURES + 1] {
    const D: usize = FEATURES + 1;
    let mut w = [0.0f64; D];
    for _ in 0..50 {
        let mut grad = [0.0f64; D];
        let mut hess = [[0.0f64; D]; D];
        for (x, y) in samples {
            let row: [f64; D] = std::array::from_fn(|i| if i < FEATURES { x[i] as f64 } else { 1.0 });
            let z: f64 = row.iter().zip(&w).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-z).exp());
            let err = p - if *y { 1.0 } else { 0.0 };
            let curvature = (p * (1.0 - p)).max(1e-9);
            for i in 0..D {
                grad[i] += err * row[i];
                for j in 0..D {
                    hess[i][j] += curvature * row[i] * row[j];
                }
            }
        }
        for i in 0..D {
            grad[i] += 1e-3 * w[i];
            hess[i][i] += 1e-3;
        }
        let Some(step) = solve(hess, grad) else { break };
        for i in 0..D {
            w[i] -= step[i];
        }
        if step.iter().map(|s| s.abs()).sum::<f64>() < 1e-7 {
            break;
        }
    }
    w.map(|v| v as f32)
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting.
fn solve<const D: usize>(mut a: [[f64; D]; D], mut b: [f64; D]) -> Option<[f64; D]> {
    for col in 0..D {
        let pivot = (col..D).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..D {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (value, above) in a[row].iter_mut().zip(pivot_row).skip(col) {
                *value -= f * above;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; D];
    for row in (0..D).rev() {
        let rest: f64 = (row + 1..D).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - rest) / a[row][row];
    }
    Some(x)
}

impl IntentModel {
    /// Fits thresholds by cross-fitting, then trains the final index and head on everything.
    pub fn fit(
        examples: Vec<TrainingExample>,
        opts: &FitOptions,
        progress: &dyn Fn(&str),
    ) -> Result<IntentModel, IntentError> {
        Self::fit_validated(examples, Vec::new(), opts, progress)
    }

    /// Like [`IntentModel::fit`], but when `validation` holds labelled examples
    /// that were never trained on, the mix, the calibration and the
    /// out-of-scope threshold are fitted on their scores under the final head
    /// and index instead of on cross-fitted scores of the training examples.
    ///
    /// NOTE: an encoder fine-tuned on the training examples embeds them closer
    /// to their intents than it will embed any new message, so cross-fitted
    /// scores would set the threshold far too low; held-out examples do not
    /// have that bias. Validation examples of unknown intents are skipped.
    pub fn fit_validated(
        examples: Vec<TrainingExample>,
        validation: Vec<TrainingExample>,
        opts: &FitOptions,
        progress: &dyn Fn(&str),
    ) -> Result<IntentModel, IntentError> {
        let started = std::time::Instant::now();
        if examples.is_empty() {
            return Err(IntentError::Empty);
        }
        let mut labels: Vec<String> = Vec::new();
        let mut label_groups: Vec<String> = Vec::new();
        let mut class_of: HashMap<String, usize> = HashMap::new();
        for e in &examples {
            if !class_of.contains_key(&e.label) {
                class_of.insert(e.label.clone(), labels.len());
                labels.push(e.label.clone());
                label_groups.push(if e.label == OOS { OOS.to_string() } else { e.group.clone() });
            }
        }
        let oos_class = class_of.get(OOS).copied();
        let n_in_scope = labels.len() - usize::from(oos_class.is_some());
        if n_in_scope < 2 {
            return Err(IntentError::TooFewIntents(n_in_scope));
        }
        let gold: Vec<usize> = examples.iter().map(|e| class_of[&e.label]).collect();
        let groups: Vec<String> = gold.iter().map(|&c| label_groups[c].clone()).collect();
        let x: Vec<Vec<f32>> = examples.iter().map(|e| e.vector.clone()).collect();
        let centroids = class_centroids(&x, &gold, labels.len(), oos_class);
        // Takes the vectors: the final index keeps them, no copy needed.
        let train_final = |x: Vec<Vec<f32>>| -> Result<(SoftmaxHead, ExemplarIndex), IntentError> {
            let head = SoftmaxHead::train(&x, &gold, labels.len(), &opts.head)?;
            Ok((head, ExemplarIndex::build(x, groups.clone(), IndexParams::default())?))
        };
        let (held_out, (head, index)) = if validation.is_empty() {
            let folds = opts.folds.max(2);
            let fold_of = assign_folds(&gold, labels.len(), folds, opts.seed);
            progress(&format!("cross-fitting {folds} folds and training the final head and index"));
            // The folds and the final model are independent fits: on all
            // cores at once, results in fold order whatever finishes first.
            let cross_fit = |fold: usize| -> Result<Vec<HeldOut>, IntentError> {
                let (train, test): (Vec<usize>, Vec<usize>) = (0..examples.len()).partition(|&i| fold_of[i] != fold);
                if test.is_empty() {
                    return Ok(Vec::new());
                }
                let x: Vec<Vec<f32>> = train.iter().map(|&i| examples[i].vector.clone()).collect();
                let y: Vec<usize> = train.iter().map(|&i| gold[i]).collect();
                let head = SoftmaxHead::train(&x, &y, labels.len(), &opts.head)?;
                let centroids = class_centroids(&x, &y, labels.len(), oos_class);
                let groups = train.iter().map(|&i| groups[i].clone()).collect();
                let index = ExemplarIndex::build(x, groups, IndexParams::default())?;
                let scorer = Scorer { head: &head, index: &index, classes: &y, centroids: &centroids, k: opts.k };
                test.iter().map(|&i| scorer.held_out(&examples[i].vector, gold[i])).collect()
            };
            let (held_out, trained) = rayon::join(
                || (0..folds).into_par_iter().map(cross_fit).collect::<Result<Vec<_>, _>>(),
                || train_final(x),
            );
            (held_out?.into_iter().flatten().collect(), trained?)
        } else {
            progress("training the head and index");
            let (head, index) = train_final(x)?;
            progress("scoring the validation examples");
            let scorer = Scorer { head: &head, index: &index, classes: &gold, centroids: &centroids, k: opts.k };
            let mut held_out = Vec::with_capacity(validation.len());
            for e in &validation {
                let Some(&label) = class_of.get(&e.label) else { continue };
                held_out.push(scorer.held_out(&e.vector, label)?);
            }
            (held_out, (head, index))
        };

        progress("fitting thresholds");
        let Choice { knn_weight, knn_temperature, weights, fitted, .. } =
            choose_calibration(&held_out, oos_class, opts.oos_weight).ok_or(IntentError::Empty)?;

        let calibration = Calibration {
            knn_weight,
            knn_temperature,
            weights,
            oos_threshold: fitted.threshold,
            k: opts.k,
            report: FitReport {
                examples: examples.len(),
                in_scope_accuracy: fitted.in_scope_accuracy,
                oos_recall: fitted.oos_recall,
                seconds: started.elapsed().as_secs_f32(),
            },
        };
        Ok(IntentModel {
            labels,
            label_groups,
            exemplar_labels: gold,
            exemplar_texts: examples.into_iter().map(|e| e.text).collect(),
            index,
            head,
            centroids,
            calibration,
        })
    }

    /// Scores one query embedding, restricted to a scenario when given.
    pub fn score(&self, query: &[f32], scenario: Option<&str>) -> Result<Scored, IntentError> {
        let oos_class = self.labels.iter().position(|l| l == OOS);
        let allowed = |class: usize| scenario.is_none_or(|s| self.label_groups[class] == s || Some(class) == oos_class);
        let k = self.calibration.k;
        // NOTE: more neighbours are fetched than vote, so that the candidates
        // shown to callers span several intents; only the first k vote.
        let wanted = k.max(NEIGHBOURS_SHOWN);
        let mut hits = match scenario {
            None => self.index.search(query, wanted, None)?,
            Some(s) => {
                let mut hits = self.index.search(query, wanted, Some(s))?;
                if oos_class.is_some() {
                    hits.extend(self.index.search(query, wanted, Some(OOS))?);
                }
                hits.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
                hits
            }
        };
        hits.retain(|h| allowed(self.exemplar_labels[h.id]));
        let logits = self.head.logits(query);
        let mut head = softmax(&logits);
        for (class, p) in head.iter_mut().enumerate() {
            if !allowed(class) {
                *p = 0.0;
            }
        }
        let total: f32 = head.iter().sum();
        if total > 0.0 {
            head.iter_mut().for_each(|p| *p /= total);
        }
        let labelled: Vec<(usize, f32)> =
            hits.iter().take(k).map(|h| (self.exemplar_labels[h.id], h.similarity)).collect();
        let probs = mix(&head, &labelled, self.calibration.knn_weight, self.calibration.knn_temperature);
        let evidence =
            Evidence::new(&probs, &labelled, &centroid_similarities(&self.centroids, query), &logits, oos_class);
        let confidence = if evidence.top == usize::MAX { 0.0 } else { self.calibration.confidence(&evidence) };
        let out_of_scope = confidence < self.calibration.oos_threshold;
        let mut ranked: Vec<(String, f32)> = probs
            .iter()
            .enumerate()
            .filter(|&(c, &p)| Some(c) != oos_class && allowed(c) && p > 0.0)
            .map(|(c, &p)| (self.labels[c].clone(), p))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(5);
        let neighbours = hits
            .iter()
            .map(|h| Neighbour {
                intent: self.labels[self.exemplar_labels[h.id]].clone(),
                text: self.exemplar_texts[h.id].clone(),
                similarity: h.similarity,
            })
            .collect();
        Ok(Scored { ranked, out_of_scope, confidence, neighbours })
    }

    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// Number of exemplars in the index.
    pub fn exemplars(&self) -> usize {
        self.exemplar_texts.len()
    }

    /// Writes the model into `dir` (created if needed).
    pub fn save(&self, dir: &Path) -> Result<(), IntentError> {
        let persist = |path: &Path, e: &dyn std::fmt::Display| IntentError::Persist {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| persist(dir, &e))?;
        self.index.save(&dir.join("index"))?;
        self.head.save(&dir.join("head.safetensors"))?;
        let meta = ModelMeta {
            labels: self.labels.clone(),
            label_groups: self.label_groups.clone(),
            exemplar_labels: self.exemplar_labels.clone(),
            exemplar_texts: self.exemplar_texts.clone(),
            centroids: self.centroids.clone(),
            calibration: self.calibration.clone(),
        };
        let path = dir.join("intent-model.json");
        let json = serde_json::to_vec(&meta).map_err(|e| persist(&path, &e))?;
        std::fs::write(&path, json).map_err(|e| persist(&path, &e))
    }

    /// Reads a model written by [`IntentModel::save`].
    pub fn load(dir: &Path) -> Result<IntentModel, IntentError> {
        let path = dir.join("intent-model.json");
        let persist = |e: &dyn std::fmt::Display| IntentError::Persist {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let bytes = std::fs::read(&path).map_err(|e| persist(&e))?;
        let meta: ModelMeta = serde_json::from_slice(&bytes).map_err(|e| persist(&e))?;
        let index = ExemplarIndex::load(&dir.join("index"))?;
        let head = SoftmaxHead::load(&dir.join("head.safetensors"))?;
        if index.len() != meta.exemplar_labels.len() {
            return Err(persist(&format!(
                "index holds {} vectors but the model lists {} exemplars",
                index.len(),
                meta.exemplar_labels.len()
            )));
        }
        Ok(IntentModel {
            labels: meta.labels,
            label_groups: meta.label_groups,
            exemplar_labels: meta.exemplar_labels,
            exemplar_texts: meta.exemplar_texts,
            centroids: meta.centroids,
            index,
            head,
            calibration: meta.calibration,
        })
    }
}

/// Agent-taught exemplars (corrections) joining a fitted model: see `train::taught`.
impl IntentModel {
    /// Makes `text` an exemplar of `label` in the live index, so the kNN vote
    /// counts it on the next query; an exemplar with the same text is
    /// relabelled instead of duplicated (the latest correction wins). The head
    /// and the calibration are not refitted: that is what a retrain is for.
    /// Returns false when the model has no class `label`.
    ///
    /// NOTE: a relabelled exemplar stays in its old scenario's graph, so a
    /// query restricted to the new scenario does not find it; the engine's
    /// taught-exemplar authority covers that case until the next retrain.
    pub fn teach(&mut self, text: &str, label: &str, vector: Vec<f32>) -> Result<bool, IntentError> {
        let Some(class) = self.labels.iter().position(|l| l == label) else { return Ok(false) };
        let mut known = false;
        for (i, existing) in self.exemplar_texts.iter().enumerate() {
            if existing == text {
                self.exemplar_labels[i] = class;
                known = true;
            }
        }
        if !known {
            self.index.add(vector, self.label_groups[class].clone())?;
            self.exemplar_labels.push(class);
            self.exemplar_texts.push(text.to_string());
        }
        Ok(true)
    }
}

/// Stratified fold of each example: each class is shuffled and dealt round-robin.
fn assign_folds(gold: &[usize], n_classes: usize, folds: usize, seed: u64) -> Vec<usize> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (i, &c) in gold.iter().enumerate() {
        by_class[c].push(i);
    }
    let mut fold_of = vec![0; gold.len()];
    let mut next = 0;
    for members in &mut by_class {
        members.shuffle(&mut rng);
        for &i in members.iter() {
            fold_of[i] = next % folds;
            next += 1;
        }
    }
    fold_of
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_weights_the_vote_by_similarity() {
        let head = vec![0.5, 0.5, 0.0];
        let probs = mix(&head, &[(0, 0.9), (1, 0.5)], 1.0, 0.1);
        assert!(probs[0] > 0.95, "{probs:?}");
        let sum: f32 = mix(&head, &[(0, 0.9), (1, 0.5), (2, 0.8)], 0.5, 0.03).iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
    }

    #[test]
    fn threshold_separates_oos_from_in_scope() {
        let mut outcomes = Vec::new();
        for i in 0..50 {
            outcomes.push(HeldOutResult { gold_oos: false, top_right: true, confidence: 0.6 + i as f32 / 200.0 });
            outcomes.push(HeldOutResult { gold_oos: true, top_right: false, confidence: 0.2 + i as f32 / 200.0 });
        }
        let fitted = fit_threshold(&outcomes, 1.0);
        assert!(fitted.threshold > 0.445 && fitted.threshold <= 0.6, "{}", fitted.threshold);
        assert_eq!(fitted.in_scope_accuracy, 1.0);
        assert_eq!(fitted.oos_recall, Some(1.0));
    }

    #[test]
    fn without_oos_examples_nothing_is_rejected() {
        let outcomes: Vec<HeldOutResult> = (0..100)
            .map(|i| HeldOutResult { gold_oos: false, top_right: i % 10 != 0, confidence: i as f32 / 100.0 })
            .collect();
        let fitted = fit_threshold(&outcomes, 1.0);
        assert_eq!(fitted.threshold, 0.0);
        assert_eq!(fitted.in_scope_accuracy, 0.9, "every right answer is kept, however unsure");
        assert_eq!(fitted.oos_recall, None);
    }

    #[test]
    fn logistic_calibration_follows_the_evidence() {
        // Right when the first feature is high; the others are noise.
        let samples: Vec<([f32; FEATURES], bool)> = (0..400)
            .map(|i| ([i as f32 / 400.0, ((i * 37) % 100) as f32 / 100.0, 0.9, 0.0, 0.8, 3.0], (i * 7919) % 400 < i))
            .collect();
        let w = fit_logistic(&samples);
        let p = |x: f32| logistic(&w, &[x, 0.5, 0.9, 0.0, 0.8, 3.0]);
        assert!(p(0.1) < 0.3 && p(0.9) > 0.7, "{} {}", p(0.1), p(0.9));
        assert!(w[0] > 0.0);
    }

    #[test]
    fn centroids_are_unit_class_means_and_skip_out_of_scope() {
        let x = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.6, 0.8], vec![1.0, 0.0]];
        let centroids = class_centroids(&x, &[0, 0, 1, 2], 4, Some(2));
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let close = |a: &[f32], b: &[f32]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(close(&centroids[0], &[s, s]) && close(&centroids[1], &[0.6, 0.8]), "{centroids:?}");
        assert!(centroids[2].is_empty() && centroids[3].is_empty());
        let sims = centroid_similarities(&centroids, &[1.0, 0.0]);
        assert!(close(&sims, &[s, 0.6, 0.0, 0.0]), "{sims:?}");
    }

    #[test]
    fn solves_linear_systems() {
        let x = solve([[2.0, 1.0], [1.0, 3.0]], [3.0, 5.0]).unwrap();
        assert!((x[0] - 0.8).abs() < 1e-9 && (x[1] - 1.4).abs() < 1e-9);
        assert!(solve([[1.0, 2.0], [2.0, 4.0]], [1.0, 2.0]).is_none());
    }

    #[test]
    fn folds_are_stratified() {
        let gold: Vec<usize> = (0..40).map(|i| i % 2).collect();
        let folds = assign_folds(&gold, 2, 4, 1);
        for f in 0..4 {
            let members: Vec<usize> = (0..40).filter(|&i| folds[i] == f).collect();
            assert_eq!(members.len(), 10);
            assert_eq!(members.iter().filter(|&&i| gold[i] == 0).count(), 5);
        }
    }

    fn blob(center: &[f32], jitter: f32, seed: u64) -> Vec<f32> {
        use rand::Rng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let v: Vec<f32> = center.iter().map(|c| c + rng.gen_range(-jitter..jitter)).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }

    fn toy_examples() -> Vec<TrainingExample> {
        let dim = 16;
        let axis = |a: usize| (0..dim).map(|i| if i == a { 1.0 } else { 0.0 }).collect::<Vec<f32>>();
        let mut examples = Vec::new();
        for (class, (label, group)) in [("hours", "general"), ("refund", "shop"), ("return", "shop")].iter().enumerate()
        {
            for j in 0..20 {
                examples.push(TrainingExample {
                    text: format!("{label} {j}"),
                    label: label.to_string(),
                    group: group.to_string(),
                    vector: blob(&axis(class), 0.3, (class * 100 + j) as u64),
                });
            }
        }
        for j in 0..20 {
            examples.push(TrainingExample {
                text: format!("oos {j}"),
                label: OOS.into(),
                group: String::new(),
                vector: blob(&axis(3 + j % 8), 0.3, 1000 + j as u64),
            });
        }
        examples
    }

    #[test]
    fn fits_the_calibration_on_validation_examples_when_given() {
        let validation: Vec<TrainingExample> = toy_examples()
            .into_iter()
            .step_by(2)
            .map(|e| TrainingExample { vector: blob(&e.vector, 0.2, e.text.len() as u64), ..e })
            .chain(std::iter::once(TrainingExample {
                text: "?".into(),
                label: "unknown".into(),
                group: String::new(),
                vector: blob(&[1.0; 16], 0.1, 3),
            }))
            .collect();
        let n_validation_oos = validation.iter().filter(|e| e.label == OOS).count();
        let model = IntentModel::fit_validated(toy_examples(), validation, &FitOptions::default(), &|_| {}).unwrap();
        let report = &model.calibration().report;
        assert_eq!(report.examples, 80);
        assert!(report.in_scope_accuracy > 0.9, "{report:?}");
        // Recall is measured on the validation's out-of-scope examples: a multiple of 1/10.
        assert_eq!(n_validation_oos, 10);
        assert!(report.oos_recall.is_some_and(|r| (r * 10.0 - (r * 10.0).round()).abs() < 1e-4), "{report:?}");
        let axis0: Vec<f32> = (0..16).map(|i| if i == 0 { 1.0 } else { 0.0 }).collect();
        assert_eq!(model.score(&axis0, None).unwrap().intent(), "hours");
    }

    #[test]
    fn fits_scores_and_round_trips() {
        let model = IntentModel::fit(toy_examples(), &FitOptions::default(), &|_| {}).unwrap();
        let axis0: Vec<f32> = (0..16).map(|i| if i == 0 { 1.0 } else { 0.0 }).collect();
        let scored = model.score(&axis0, None).unwrap();
        assert_eq!(scored.intent(), "hours");
        assert!(scored.confidence > 0.5);
        let far = blob(&(0..16).map(|i| if i == 9 { 1.0 } else { 0.0 }).collect::<Vec<f32>>(), 0.1, 5);
        assert!(model.score(&far, None).unwrap().out_of_scope);
        // Restricted to a scenario, intents of other scenarios are not offered.
        let shop = model.score(&axis0, Some("shop")).unwrap();
        assert!(shop.ranked.iter().all(|(id, _)| id != "hours"));

        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        let loaded = IntentModel::load(dir.path()).unwrap();
        assert_eq!(loaded.calibration(), model.calibration());
        assert_eq!(loaded.score(&axis0, None).unwrap().ranked, scored.ranked);
    }
}
