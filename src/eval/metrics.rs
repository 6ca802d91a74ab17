//! Scoring engine predictions against labelled lines.
//!
//! The top-level report keys and their rules are fixed by the contract (CLI:
//! eval); everything after `latency_ms_p99` is extra detail for data scientists.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::dataset::{LabelledLine, OOS};
use super::EvalError;
use crate::policy::Action;

/// How many confused pairs the JSON report keeps.
const TOP_CONFUSIONS: usize = 20;
/// How many worst intents and confusions the human summary shows.
const SUMMARY_ROWS: usize = 5;

/// What the engine did with one labelled line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Predicted intent id, or `"oos"` when out of scope.
    pub intent: String,
    pub decision: Action,
    /// Whether the customer was also routed to sales.
    pub lead: bool,
    /// Extracted slots, normalised as the taxonomy says.
    pub slots: Map<String, Value>,
    /// Whole-pipeline latency for this query.
    pub latency_ms: f64,
    /// The engine's calibrated confidence in `intent`.
    #[serde(default)]
    pub confidence: f32,
}

/// One line the engine got wrong (intent or decision), for reading errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineError {
    pub text: String,
    pub gold: String,
    pub predicted: String,
    pub confidence: f32,
    /// What the engine did: answer, clarify or handoff.
    pub decision: String,
    /// The decision the line expects, if it names one.
    pub gold_decision: Option<String>,
}

/// Lines whose confidence falls in `[low, high)` (the last bin holds 1.0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub low: f64,
    pub high: f64,
    pub lines: usize,
    /// Mean confidence of the bin's lines; null when it has none.
    pub confidence: Option<f64>,
    /// Share of the bin's lines whose intent is right; null when it has none.
    pub accuracy: Option<f64>,
}

/// Precision/recall of one intent (or of `oos`) over all lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassStats {
    /// Lines whose gold label is this intent.
    pub support: usize,
    /// Lines predicted as this intent.
    pub predicted: usize,
    /// Lines both gold and predicted as this intent.
    pub correct: usize,
    /// `correct / predicted`; null when never predicted.
    pub precision: Option<f64>,
    /// `correct / support`; null when absent from the gold labels.
    pub recall: Option<f64>,
    /// Harmonic mean of precision and recall; null when either is null.
    pub f1: Option<f64>,
}

/// One (gold, predicted) intent pair the engine mixed up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    /// The labelled intent.
    pub gold: String,
    /// What the engine said instead.
    pub predicted: String,
    /// How many lines.
    pub count: usize,
}

/// Accuracy on the lines expecting one decision label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionStats {
    /// Lines expecting this decision.
    pub support: usize,
    /// How many of them the engine got right under the contract's rules.
    pub correct: usize,
    /// `correct / support`.
    pub accuracy: f64,
}

/// Micro precision/recall of one slot name over the slot-labelled lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotStats {
    /// Expected (line, value) pairs for this slot.
    pub support: usize,
    /// Extracted (line, value) pairs for this slot.
    pub predicted: usize,
    /// Extracted pairs equal to the expected value.
    pub correct: usize,
    /// `correct / predicted`; null when never extracted.
    pub precision: Option<f64>,
    /// `correct / support`; null when never expected.
    pub recall: Option<f64>,
}

/// The `kefu eval` report. Field order is the JSON key order, contract keys first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Number of labelled lines scored.
    pub n: usize,
    /// Intent accuracy over in-scope lines (gold != "oos"); 0 when there are none.
    pub intent_accuracy: f64,
    /// Of lines predicted oos, the share that are gold oos; null when the test
    /// has no oos lines, 0 when it has some but nothing was predicted oos.
    pub oos_precision: Option<f64>,
    /// Of gold oos lines, the share predicted oos; null when the test has none.
    pub oos_recall: Option<f64>,
    /// Decision accuracy over lines with a decision; null when none has one.
    pub decision_accuracy: Option<f64>,
    /// Micro F1 over (line, slot, value) triples; null when no line has slots.
    pub slot_f1: Option<f64>,
    /// Median per-query latency (nearest rank).
    pub latency_ms_p50: f64,
    /// 99th percentile per-query latency (nearest rank).
    pub latency_ms_p99: f64,
    /// Lines whose gold intent is not oos.
    pub in_scope: usize,
    /// Lines whose gold intent is oos.
    pub oos: usize,
    /// Lines carrying an expected decision.
    pub decision_lines: usize,
    /// Lines carrying a `slots` field.
    pub slot_lines: usize,
    /// Micro slot precision; null when nothing was extracted on slot lines.
    pub slot_precision: Option<f64>,
    /// Micro slot recall; null when no slot was expected.
    pub slot_recall: Option<f64>,
    /// Mean per-query latency.
    pub latency_ms_mean: f64,
    /// Slowest query.
    pub latency_ms_max: f64,
    /// Per intent (gold or predicted, `oos` included), keyed by intent id.
    pub per_intent: BTreeMap<String, ClassStats>,
    /// The most frequent wrong (gold, predicted) pairs, most frequent first.
    pub confusions: Vec<Confusion>,
    /// Per expected decision label.
    pub per_decision: BTreeMap<String, DecisionStats>,
    /// Per slot name.
    pub per_slot: BTreeMap<String, SlotStats>,
    /// Expected calibration error of the intent confidence over all lines:
    /// the line-weighted gap between confidence and accuracy per bin.
    #[serde(default)]
    pub ece: f64,
    /// The reliability diagram behind `ece`: ten equal-width confidence bins.
    #[serde(default)]
    pub reliability: Vec<ReliabilityBin>,
    /// Every line with a wrong intent or a wrong decision, in file order.
    #[serde(default)]
    pub errors: Vec<LineError>,
}

/// Scores `predictions[i]` against `lines[i]`.
///
/// Rules the contract fixes: a gold decision `not_answer` is right when the
/// engine does not answer; `lead` is right when it answers with `lead: true`;
/// any other decision must match exactly. Slot values compare as JSON values.
///
/// # Errors
///
/// [`EvalError::LengthMismatch`] when the slices differ in length and
/// [`EvalError::NothingToScore`] when they are empty.
pub fn score(lines: &[LabelledLine], predictions: &[Prediction]) -> Result<EvalReport, EvalError> {
    if lines.len() != predictions.len() {
        return Err(EvalError::LengthMismatch { lines: lines.len(), predictions: predictions.len() });
    }
    if lines.is_empty() {
        return Err(EvalError::NothingToScore);
    }
    let mut tally = Tally::default();
    for (line, pred) in lines.iter().zip(predictions) {
        tally.add(line, pred);
    }
    let mut latencies: Vec<f64> = predictions.iter().map(|p| p.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    let mut report = tally.into_report(&latencies);
    (report.reliability, report.ece) = reliability(lines, predictions);
    report.errors = lines
        .iter()
        .zip(predictions)
        .filter(|(line, pred)| {
            line.intent != pred.intent || line.decision.as_deref().is_some_and(|gold| !decision_right(gold, pred))
        })
        .map(|(line, pred)| LineError {
            text: line.text.clone(),
            gold: line.intent.clone(),
            predicted: pred.intent.clone(),
            confidence: pred.confidence,
            decision: pred.decision.as_str().to_owned(),
            gold_decision: line.decision.clone(),
        })
        .collect();
    Ok(report)
}

/// Confidence bins for a reliability diagram, and the expected calibration error.
fn reliability(lines: &[LabelledLine], predictions: &[Prediction]) -> (Vec<ReliabilityBin>, f64) {
    const BINS: usize = 10;
    // (lines, confidence sum, right)
    let mut sums = [(0usize, 0f64, 0usize); BINS];
    for (line, pred) in lines.iter().zip(predictions) {
        let confidence = f64::from(pred.confidence).clamp(0.0, 1.0);
        let bin = ((confidence * BINS as f64) as usize).min(BINS - 1);
        sums[bin].0 += 1;
        sums[bin].1 += confidence;
        sums[bin].2 += usize::from(line.intent == pred.intent);
    }
    let total = lines.len().max(1) as f64;
    let mut ece = 0.0;
    let bins = sums
        .iter()
        .enumerate()
        .map(|(i, &(count, confidence_sum, right))| {
            let confidence = (count > 0).then(|| confidence_sum / count as f64);
            let accuracy = ratio(right, count);
            if let (Some(c), Some(a)) = (confidence, accuracy) {
                ece += (c - a).abs() * count as f64 / total;
            }
            ReliabilityBin {
                low: i as f64 / BINS as f64,
                high: (i + 1) as f64 / BINS as f64,
                lines: count,
                confidence,
                accuracy,
            }
        })
        .collect();
    (bins, ece)
}

/// What the lines scored so far add up to.
#[derive(Default)]
struct Tally<'a> {
    n: usize,
    in_scope: usize,
    in_scope_correct: usize,
    oos_gold: usize,
    oos_predicted: usize,
    oos_both: usize,
    classes: BTreeMap<String, ClassStats>,
    confused: HashMap<(&'a str, &'a str), usize>,
    /// Gold decision -> (lines, right).
    decisions: BTreeMap<String, (usize, usize)>,
    /// Slot -> (gold, predicted, right).
    slot_counts: BTreeMap<String, (usize, usize, usize)>,
    slot_lines: usize,
}

impl<'a> Tally<'a> {
    fn add(&mut self, line: &'a LabelledLine, pred: &'a Prediction) {
        self.n += 1;
        let gold_oos = line.intent == OOS;
        let pred_oos = pred.intent == OOS;
        let right = line.intent == pred.intent;
        if gold_oos {
            self.oos_gold += 1;
        } else {
            self.in_scope += 1;
            self.in_scope_correct += usize::from(right);
        }
        self.oos_predicted += usize::from(pred_oos);
        self.oos_both += usize::from(gold_oos && pred_oos);

        self.classes.entry(line.intent.clone()).or_insert_with(ClassStats::empty).support += 1;
        let predicted = self.classes.entry(pred.intent.clone()).or_insert_with(ClassStats::empty);
        predicted.predicted += 1;
        predicted.correct += usize::from(right);
        if !right {
            *self.confused.entry((line.intent.as_str(), pred.intent.as_str())).or_default() += 1;
        }
        if let Some(gold) = &line.decision {
            let entry = self.decisions.entry(gold.clone()).or_default();
            entry.0 += 1;
            entry.1 += usize::from(decision_right(gold, pred));
        }
        if let Some(gold) = &line.slots {
            self.slot_lines += 1;
            count_slots(gold, &pred.slots, &mut self.slot_counts);
        }
    }

    /// The report, with the latencies of every line (ascending).
    fn into_report(mut self, latencies: &[f64]) -> EvalReport {
        for stats in self.classes.values_mut() {
            stats.finish();
        }
        let (tp, pred_total, gold_total) = self
            .slot_counts
            .values()
            .fold((0, 0, 0), |(t, p, g), &(support, predicted, correct)| (t + correct, p + predicted, g + support));
        // NOTE: slot-labelled lines that expect nothing and get nothing are a
        // perfect score, not an undefined one; `{}` lines exist to test exactly that.
        let slot_f1 = (self.slot_lines > 0).then(|| {
            if pred_total + gold_total == 0 {
                1.0
            } else {
                2.0 * tp as f64 / (pred_total + gold_total) as f64
            }
        });
        let decision_lines = self.decisions.values().map(|&(support, _)| support).sum();
        let decision_correct: usize = self.decisions.values().map(|&(_, correct)| correct).sum();
        EvalReport {
            n: self.n,
            intent_accuracy: ratio(self.in_scope_correct, self.in_scope).unwrap_or(0.0),
            // NOTE: with gold oos lines but no oos prediction, precision is 0 rather
            // than null, so the key is numeric whenever the test has oos lines, as
            // the contract's "null when the test has no oos lines" implies.
            oos_precision: (self.oos_gold > 0).then(|| ratio(self.oos_both, self.oos_predicted).unwrap_or(0.0)),
            oos_recall: ratio(self.oos_both, self.oos_gold),
            decision_accuracy: ratio(decision_correct, decision_lines),
            slot_f1,
            latency_ms_p50: nearest_rank(latencies, 50.0),
            latency_ms_p99: nearest_rank(latencies, 99.0),
            in_scope: self.in_scope,
            oos: self.oos_gold,
            decision_lines,
            slot_lines: self.slot_lines,
            slot_precision: ratio(tp, pred_total),
            slot_recall: ratio(tp, gold_total),
            latency_ms_mean: latencies.iter().sum::<f64>() / latencies.len() as f64,
            latency_ms_max: latencies.last().copied().unwrap_or(0.0),
            per_intent: self.classes,
            confusions: top_confusions(self.confused),
            per_decision: self
                .decisions
                .into_iter()
                .map(|(label, (support, correct))| {
                    let accuracy = correct as f64 / support as f64;
                    (label, DecisionStats { support, correct, accuracy })
                })
                .collect(),
            per_slot: self
                .slot_counts
                .into_iter()
                .map(|(name, (support, predicted, correct))| {
                    let stats = SlotStats {
                        support,
                        predicted,
                        correct,
                        precision: ratio(correct, predicted),
                        recall: ratio(correct, support),
                    };
                    (name, stats)
                })
                .collect(),
            ece: 0.0,
            reliability: Vec::new(),
            errors: Vec::new(),
        }
    }
}

/// The contract's decision rule for one line.
fn decision_right(gold: &str, pred: &Prediction) -> bool {
    match gold {
        "not_answer" => pred.decision != Action::Answer,
        "lead" => pred.decision == Action::Answer && pred.lead,
        exact => pred.decision.as_str() == exact,
    }
}

/// Adds one line's slot triples to per-slot (support, predicted, correct).
fn count_slots(
    gold: &Map<String, Value>,
    predicted: &Map<String, Value>,
    counts: &mut BTreeMap<String, (usize, usize, usize)>,
) {
    // NOTE: a null value on either side means "not extracted"; engines that
    // serialise every slot key with null must not be charged false positives.
    for (name, value) in gold.iter().filter(|(_, v)| !v.is_null()) {
        let entry = counts.entry(name.clone()).or_default();
        entry.0 += 1;
        entry.2 += usize::from(predicted.get(name) == Some(value));
    }
    for (name, _) in predicted.iter().filter(|(_, v)| !v.is_null()) {
        counts.entry(name.clone()).or_default().1 += 1;
    }
}

fn top_confusions(confused: HashMap<(&str, &str), usize>) -> Vec<Confusion> {
    let mut pairs: Vec<Confusion> = confused
        .into_iter()
        .map(|((gold, predicted), count)| Confusion { gold: gold.to_owned(), predicted: predicted.to_owned(), count })
        .collect();
    // Names break count ties so the report is identical run to run.
    pairs.sort_by(|a, b| {
        b.count.cmp(&a.count).then_with(|| a.gold.cmp(&b.gold)).then_with(|| a.predicted.cmp(&b.predicted))
    });
    pairs.truncate(TOP_CONFUSIONS);
    pairs
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// Nearest-rank percentile of ascending `sorted`: the smallest value with at
/// least `p`% of the values at or below it. 0 for an empty slice.
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    crate::support::percentile::nearest_rank(sorted, p).unwrap_or(0.0)
}

impl ClassStats {
    fn empty() -> Self {
        ClassStats { support: 0, predicted: 0, correct: 0, precision: None, recall: None, f1: None }
    }

    /// Fills the rates once all lines are counted.
    fn finish(&mut self) {
        self.precision = ratio(self.correct, self.predicted);
        self.recall = ratio(self.correct, self.support);
        self.f1 = match (self.precision, self.recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };
    }
}

/// Formats an optional rate, `n/a` for null.
pub(super) struct Rate(pub(super) Option<f64>);

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v:.3}"),
            None => f.write_str("n/a"),
        }
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "n                  {} ({} in scope, {} oos)", self.n, self.in_scope, self.oos)?;
        writeln!(f, "intent accuracy    {:.3}", self.intent_accuracy)?;
        writeln!(f, "oos precision      {}  recall {}", Rate(self.oos_precision), Rate(self.oos_recall))?;
        writeln!(f, "decision accuracy  {}  ({} lines)", Rate(self.decision_accuracy), self.decision_lines)?;
        writeln!(
            f,
            "slot F1            {}  (P {}, R {}; {} lines)",
            Rate(self.slot_f1),
            Rate(self.slot_precision),
            Rate(self.slot_recall),
            self.slot_lines
        )?;
        writeln!(f, "latency ms         p50 {:.1}  p99 {:.1}", self.latency_ms_p50, self.latency_ms_p99)?;
        writeln!(f, "calibration error  {:.3}  (ECE, intent confidence)", self.ece)?;

        // Worst first by F1, then by how many lines the weakness costs.
        let mut worst: Vec<(&String, &ClassStats)> = self.per_intent.iter().filter(|(_, s)| s.support > 0).collect();
        worst.sort_by(|(an, a), (bn, b)| {
            a.f1.unwrap_or(0.0)
                .total_cmp(&b.f1.unwrap_or(0.0))
                .then_with(|| b.support.cmp(&a.support))
                .then_with(|| an.cmp(bn))
        });
        writeln!(f, "worst intents (F1, precision, recall, support):")?;
        for (name, s) in worst.iter().take(SUMMARY_ROWS) {
            writeln!(f, "  {name:<28} {}  {}  {}  {}", Rate(s.f1), Rate(s.precision), Rate(s.recall), s.support)?;
        }
        writeln!(f, "top confusions (gold -> predicted: count):")?;
        if self.confusions.is_empty() {
            writeln!(f, "  none")?;
        }
        for c in self.confusions.iter().take(SUMMARY_ROWS) {
            writeln!(f, "  {} -> {}: {}", c.gold, c.predicted, c.count)?;
        }
        Ok(())
    }
}

/// What changed between two reports of the same test set (`kefu eval
/// --compare BEFORE AFTER`): the headline figures side by side, the intents
/// whose F1 moved, and the lines fixed and broken. Printed as text, or
/// written as JSON with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Lines of each report, before and after: when they differ, the reports
    /// may not cover the same set.
    pub lines: [usize; 2],
    /// Out-of-scope lines of each report.
    pub oos_lines: [usize; 2],
    pub figures: Vec<FigureChange>,
    /// Intents whose F1 changed, the largest change first.
    pub moved: Vec<IntentChange>,
    /// Wrong before, right after (matched by text and gold intent).
    pub fixed: Vec<LineError>,
    /// Right before, wrong after.
    pub broken: Vec<LineError>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FigureChange {
    pub name: &'static str,
    pub before: Option<f64>,
    pub after: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IntentChange {
    pub intent: String,
    pub f1_before: f64,
    pub f1_after: f64,
}

impl Comparison {
    pub fn new(a: &EvalReport, b: &EvalReport) -> Comparison {
        let figures = [
            ("intent accuracy", Some(a.intent_accuracy), Some(b.intent_accuracy)),
            ("oos precision", a.oos_precision, b.oos_precision),
            ("oos recall", a.oos_recall, b.oos_recall),
            ("decision accuracy", a.decision_accuracy, b.decision_accuracy),
            ("slot F1", a.slot_f1, b.slot_f1),
            ("ECE", Some(a.ece), Some(b.ece)),
        ]
        .into_iter()
        .map(|(name, before, after)| FigureChange { name, before, after })
        .collect();
        let mut moved: Vec<IntentChange> = a
            .per_intent
            .iter()
            .filter_map(|(name, s)| {
                let (f1_before, f1_after) = (s.f1?, b.per_intent.get(name)?.f1?);
                (f1_before != f1_after).then(|| IntentChange { intent: name.clone(), f1_before, f1_after })
            })
            .collect();
        let change = |m: &IntentChange| (m.f1_after - m.f1_before).abs();
        moved.sort_by(|x, y| change(y).total_cmp(&change(x)).then(x.intent.cmp(&y.intent)));
        Comparison {
            lines: [a.n, b.n],
            oos_lines: [a.oos, b.oos],
            figures,
            moved,
            fixed: Self::only_in(a, b),
            broken: Self::only_in(b, a),
        }
    }

    /// Errors of `of` that `other` does not have, matched by text and gold intent.
    fn only_in(of: &EvalReport, other: &EvalReport) -> Vec<LineError> {
        let known: std::collections::HashSet<(&str, &str)> =
            other.errors.iter().map(|e| (e.text.as_str(), e.gold.as_str())).collect();
        of.errors.iter().filter(|e| !known.contains(&(e.text.as_str(), e.gold.as_str()))).cloned().collect()
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [before, after] = self.lines;
        if before != after || self.oos_lines[0] != self.oos_lines[1] {
            writeln!(f, "warning: the reports cover different test sets ({before} and {after} lines)")?;
        }
        writeln!(f, "{:<20}{:>9}{:>9}{:>9}", "", "before", "after", "change")?;
        for FigureChange { name, before, after } in &self.figures {
            let change = match (before, after) {
                (Some(x), Some(y)) => format!("{:+.4}", y - x),
                _ => "n/a".into(),
            };
            writeln!(f, "{name:<20}{:>9}{:>9}{change:>9}", Rate(*before).to_string(), Rate(*after).to_string())?;
        }
        writeln!(f, "intents whose F1 moved most:")?;
        if self.moved.is_empty() {
            writeln!(f, "  none")?;
        }
        for m in self.moved.iter().take(SUMMARY_ROWS) {
            writeln!(f, "  {:<28} {:.3} -> {:.3}", m.intent, m.f1_before, m.f1_after)?;
        }
        for (label, lines) in [("fixed", &self.fixed), ("broken", &self.broken)] {
            writeln!(f, "{label}: {} lines", lines.len())?;
            for e in lines.iter().take(TOP_CONFUSIONS) {
                writeln!(f, "  {:?}: gold {}, {} {} ({:.2})", e.text, e.gold, e.decision, e.predicted, e.confidence)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(intent: &str) -> LabelledLine {
        LabelledLine {
            text: format!("text for {intent}"),
            intent: intent.to_owned(),
            decision: None,
            slots: None,
            now: None,
        }
    }

    fn with_decision(intent: &str, decision: &str) -> LabelledLine {
        LabelledLine { decision: Some(decision.to_owned()), ..line(intent) }
    }

    fn with_slots(intent: &str, slots: Value) -> LabelledLine {
        let Value::Object(map) = slots else { panic!("slots must be an object") };
        LabelledLine { slots: Some(map), ..line(intent) }
    }

    fn pred(intent: &str) -> Prediction {
        Prediction {
            intent: intent.to_owned(),
            decision: Action::Answer,
            lead: false,
            slots: Map::new(),
            latency_ms: 0.0,
            confidence: 0.9,
        }
    }

    fn pred_decision(decision: &str, lead: bool) -> Prediction {
        Prediction { decision: decision.parse().unwrap(), lead, ..pred("x") }
    }

    fn pred_slots(slots: Value) -> Prediction {
        let Value::Object(map) = slots else { panic!("slots must be an object") };
        Prediction { slots: map, ..pred("x") }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn length_mismatch_and_empty_are_errors() {
        let err = score(&[line("a")], &[]).unwrap_err();
        assert_eq!(err.to_string(), "1 labelled lines but 0 predictions");
        assert!(matches!(score(&[], &[]), Err(EvalError::NothingToScore)));
    }

    #[test]
    fn intent_accuracy_counts_in_scope_only_and_oos_rates() {
        let lines = [line("a"), line("a"), line("b"), line("oos"), line("oos")];
        let preds = [pred("a"), pred("oos"), pred("b"), pred("oos"), pred("a")];
        let r = score(&lines, &preds).unwrap();
        assert_eq!((r.n, r.in_scope, r.oos), (5, 3, 2));
        assert!(close(r.intent_accuracy, 2.0 / 3.0));
        assert!(close(r.oos_precision.unwrap(), 0.5));
        assert!(close(r.oos_recall.unwrap(), 0.5));

        let a = &r.per_intent["a"];
        assert_eq!((a.support, a.predicted, a.correct), (2, 2, 1));
        assert!(close(a.precision.unwrap(), 0.5) && close(a.f1.unwrap(), 0.5));
        assert_eq!(r.per_intent["oos"].support, 2);
        assert_eq!(r.confusions.len(), 2);
    }

    #[test]
    fn oos_rates_null_without_gold_oos_and_zero_precision_when_never_predicted() {
        let r = score(&[line("a"), line("b")], &[pred("a"), pred("oos")]).unwrap();
        assert_eq!((r.oos_precision, r.oos_recall), (None, None));
        assert!(close(r.intent_accuracy, 0.5));

        let r = score(&[line("a"), line("oos")], &[pred("a"), pred("a")]).unwrap();
        assert_eq!(r.oos_precision, Some(0.0));
        assert_eq!(r.oos_recall, Some(0.0));
    }

    #[test]
    fn all_oos_test_has_zero_intent_accuracy() {
        let r = score(&[line("oos")], &[pred("oos")]).unwrap();
        assert_eq!(r.in_scope, 0);
        assert_eq!(r.intent_accuracy, 0.0);
        assert_eq!(r.oos_recall, Some(1.0));
    }

    #[test]
    fn decision_rules() {
        let cases = [
            ("not_answer", pred_decision("clarify", false), true),
            ("not_answer", pred_decision("handoff", true), true),
            ("not_answer", pred_decision("answer", false), false),
            ("lead", pred_decision("answer", true), true),
            ("lead", pred_decision("answer", false), false),
            ("lead", pred_decision("handoff", true), false),
            ("answer", pred_decision("answer", true), true),
            ("clarify", pred_decision("clarify", false), true),
            ("handoff", pred_decision("clarify", false), false),
        ];
        for (gold, p, want) in cases {
            let r = score(&[with_decision("x", gold)], std::slice::from_ref(&p)).unwrap();
            let want = if want { 1.0 } else { 0.0 };
            assert_eq!(r.decision_accuracy, Some(want), "gold {gold} vs {p:?}");
        }
    }

    #[test]
    fn decision_accuracy_over_decision_lines_only() {
        let lines = [with_decision("x", "handoff"), line("x"), with_decision("x", "lead")];
        let preds = [pred_decision("handoff", false), pred_decision("clarify", false), pred_decision("answer", false)];
        let r = score(&lines, &preds).unwrap();
        assert_eq!(r.decision_lines, 2);
        assert_eq!(r.decision_accuracy, Some(0.5));
        assert_eq!(r.per_decision["lead"].correct, 0);
        assert_eq!(r.per_decision["handoff"].accuracy, 1.0);

        let r = score(&[line("x")], &[pred("x")]).unwrap();
        assert_eq!(r.decision_accuracy, None);
    }

    #[test]
    fn slot_f1_micro_over_triples_with_exact_json_values() {
        let time = json!({"start": "2026-06-14", "end": "2026-06-14"});
        let lines = [
            with_slots("x", json!({"time": time, "product": "dress"})),
            with_slots("x", json!({"order_id": "12345"})),
            line("x"),
        ];
        let preds = [
            // time right, product wrong value
            pred_slots(json!({"time": time, "product": "skirt"})),
            // order id right, plus a spurious phone
            pred_slots(json!({"order_id": "12345", "phone": "13812345678"})),
            // not slot-labelled: ignored entirely
            pred_slots(json!({"product": "tv"})),
        ];
        let r = score(&lines, &preds).unwrap();
        // tp 2, predicted 4, gold 3 -> P .5, R 2/3, F1 4/7
        assert_eq!(r.slot_lines, 2);
        assert!(close(r.slot_precision.unwrap(), 0.5));
        assert!(close(r.slot_recall.unwrap(), 2.0 / 3.0));
        assert!(close(r.slot_f1.unwrap(), 4.0 / 7.0));
        let product = &r.per_slot["product"];
        assert_eq!((product.support, product.predicted, product.correct), (1, 1, 0));
        assert_eq!(r.per_slot["phone"].recall, None);
    }

    #[test]
    fn time_slot_compared_as_whole_json_value() {
        let lines = [with_slots("x", json!({"time": {"start": "2026-06-14", "end": "2026-06-14"}}))];
        let preds = [pred_slots(json!({"time": {"start": "2026-06-14", "end": "2026-06-15"}}))];
        assert_eq!(score(&lines, &preds).unwrap().slot_f1, Some(0.0));
    }

    #[test]
    fn empty_slots_make_extractions_false_positives() {
        let lines = [with_slots("x", json!({})), with_slots("x", json!({"product": "tv"}))];
        let preds = [pred_slots(json!({"product": "tv"})), pred_slots(json!({"product": "tv"}))];
        let r = score(&lines, &preds).unwrap();
        assert!(close(r.slot_precision.unwrap(), 0.5));
        assert_eq!(r.slot_recall, Some(1.0));
        assert!(close(r.slot_f1.unwrap(), 2.0 / 3.0));
    }

    #[test]
    fn slot_f1_null_without_slot_lines_and_one_when_nothing_expected_or_found() {
        let r = score(&[line("x")], &[pred_slots(json!({"product": "tv"}))]).unwrap();
        assert_eq!((r.slot_f1, r.slot_precision, r.slot_recall), (None, None, None));

        let r = score(&[with_slots("x", json!({}))], &[pred_slots(json!({"order_id": null}))]).unwrap();
        assert_eq!(r.slot_f1, Some(1.0));
        assert_eq!((r.slot_precision, r.slot_recall), (None, None));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&sorted, 50.0), 50.0);
        assert_eq!(nearest_rank(&sorted, 99.0), 99.0);
        assert_eq!(nearest_rank(&[7.0], 99.0), 7.0);
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0, 4.0], 99.0), 4.0);
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0], 0.0), 1.0);
        assert_eq!(nearest_rank(&[], 50.0), 0.0);
    }

    #[test]
    fn latency_fields_use_unsorted_predictions() {
        let lines = [line("a"), line("a"), line("a")];
        let preds = [30.0, 10.0, 20.0].map(|ms| Prediction { latency_ms: ms, ..pred("a") });
        let r = score(&lines, &preds).unwrap();
        assert_eq!((r.latency_ms_p50, r.latency_ms_p99), (20.0, 30.0));
        assert_eq!((r.latency_ms_mean, r.latency_ms_max), (20.0, 30.0));
    }

    #[test]
    fn json_has_contract_keys_first_and_nulls() {
        let r = score(&[line("a")], &[pred("b")]).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        for key in ["oos_precision", "oos_recall", "decision_accuracy", "slot_f1"] {
            assert!(v[key].is_null(), "{key}");
        }
        let text = serde_json::to_string(&r).unwrap();
        let keys = [
            "\"n\"",
            "\"intent_accuracy\"",
            "\"oos_precision\"",
            "\"oos_recall\"",
            "\"decision_accuracy\"",
            "\"slot_f1\"",
            "\"latency_ms_p50\"",
            "\"latency_ms_p99\"",
            "\"in_scope\"",
        ];
        let positions: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        let back: EvalReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn confusions_sorted_and_summary_lists_worst() {
        let lines = [line("a"), line("a"), line("a"), line("b"), line("c"), line("c")];
        let preds = [pred("b"), pred("b"), pred("a"), pred("b"), pred("a"), pred("c")];
        let r = score(&lines, &preds).unwrap();
        assert_eq!(
            r.confusions,
            vec![
                Confusion { gold: "a".into(), predicted: "b".into(), count: 2 },
                Confusion { gold: "c".into(), predicted: "a".into(), count: 1 },
            ]
        );
        let text = r.to_string();
        assert!(text.starts_with("n                  6 (6 in scope, 0 oos)\n"), "{text}");
        assert!(text.contains("oos precision      n/a  recall n/a"), "{text}");
        assert!(text.contains("  a -> b: 2\n"), "{text}");
        let worst = text.split("worst intents").nth(1).unwrap();
        // a: P .5 R 1/3 F1 .4 is worse than b (F1 .5) and c (F1 .667)
        assert!(worst.lines().nth(1).unwrap().trim_start().starts_with('a'), "{text}");
    }

    #[test]
    fn calibration_error_is_the_weighted_gap_per_bin() {
        let lines = [line("a"), line("a"), line("b"), line("b")];
        let confident = |intent: &str, confidence| Prediction { confidence, ..pred(intent) };
        // Bin 0.9-1.0: two lines at 0.95, one right: gap 0.45. Bin 0.2-0.3: two at 0.25, both right: gap 0.75.
        let preds = [confident("a", 0.95), confident("x", 0.95), confident("b", 0.25), confident("b", 0.25)];
        let report = score(&lines, &preds).unwrap();
        assert!((report.ece - (0.5 * 0.45 + 0.5 * 0.75)).abs() < 1e-6, "{}", report.ece);
        assert_eq!(report.reliability.len(), 10);
        let top = &report.reliability[9];
        assert_eq!((top.lines, top.accuracy), (2, Some(0.5)));
        assert_eq!(report.reliability[5].confidence, None, "an empty bin has no mean");
        let perfect = score(&lines[..1], &[confident("a", 1.0)]).unwrap();
        assert!(perfect.ece.abs() < 1e-6, "confidence 1.0 lands in the last bin");
    }

    #[test]
    fn errors_list_wrong_intents_and_wrong_decisions_in_file_order() {
        let lines = [line("a"), with_decision("b", "handoff"), line("c")];
        let preds = [pred("x"), pred("b"), pred("c")];
        let report = score(&lines, &preds).unwrap();
        let wrong: Vec<(&str, &str, &str)> =
            report.errors.iter().map(|e| (e.gold.as_str(), e.predicted.as_str(), e.decision.as_str())).collect();
        assert_eq!(wrong, [("a", "x", "answer"), ("b", "b", "answer")]);
        assert_eq!(report.errors[1].gold_decision.as_deref(), Some("handoff"));
        assert!((report.errors[0].confidence - 0.9).abs() < 1e-6);
    }

    #[test]
    fn comparison_shows_changed_figures_and_fixed_and_broken_lines() {
        let lines = [line("a"), line("b"), line("c")];
        let before = score(&lines, &[pred("x"), pred("b"), pred("c")]).unwrap();
        let after = score(&lines, &[pred("a"), pred("b"), pred("y")]).unwrap();
        let comparison = Comparison::new(&before, &after);
        let text = comparison.to_string();
        assert!(text.contains("intent accuracy         0.667    0.667  +0.0000"), "{text}");
        assert!(text.contains("fixed: 1 lines\n  \"text for a\": gold a"), "{text}");
        assert!(text.contains("broken: 1 lines\n  \"text for c\": gold c, answer y"), "{text}");
        let json = serde_json::to_value(&comparison).unwrap();
        assert_eq!(json["figures"][0]["name"], "intent accuracy");
        assert_eq!(
            (json["fixed"][0]["gold"].as_str(), json["broken"][0]["predicted"].as_str()),
            (Some("a"), Some("y"))
        );
        // A report read back from its JSON keeps its lines.
        let reread: EvalReport = serde_json::from_str(&serde_json::to_string(&after).unwrap()).unwrap();
        assert_eq!((reread.errors, reread.reliability.len()), (after.errors, 10));
    }
}
