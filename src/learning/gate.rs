//! The eval gate: a candidate version replaces the current one only when no
//! gated metric drops by more than a tolerance. Pure: numbers in, decision out.

use serde::{Deserialize, Serialize};

/// One gated metric measured on the current version (baseline) and the candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// e.g. `dev/intent_accuracy` or `held_out_corrections/accuracy`.
    pub metric: String,
    /// `None` when the metric is undefined for that version (e.g. no out-of-scope lines).
    pub baseline: Option<f64>,
    pub candidate: Option<f64>,
}

/// The verdict on one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub metric: String,
    pub baseline: Option<f64>,
    pub candidate: Option<f64>,
    /// `baseline - candidate`, when both are defined.
    pub drop: Option<f64>,
    pub passed: bool,
    /// Why a metric without two figures passed or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The gate's decision with its reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateDecision {
    pub promote: bool,
    pub tolerance: f64,
    pub checks: Vec<Check>,
    /// One line for people: which metrics failed, or why nothing could be compared.
    pub reason: String,
}

/// Largest drop compared as "no more than the tolerance" despite float rounding.
const EPSILON: f64 = 1e-9;

/// Promotes only when every metric measured on both versions drops by at most
/// `tolerance`, and at least one metric could be compared at all.
///
/// A metric the baseline had but the candidate lost (or any NaN) fails; a
/// metric only the candidate has passes, since there is nothing to regress from.
pub fn decide(measured: &[Measured], tolerance: f64) -> GateDecision {
    let checks: Vec<Check> = measured.iter().map(|m| check(m, tolerance)).collect();
    let compared = checks.iter().filter(|c| c.drop.is_some()).count();
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| match c.drop {
            Some(d) => format!("{} dropped by {d:.4}", c.metric),
            None => format!("{} ({})", c.metric, c.note.as_deref().unwrap_or("not measurable")),
        })
        .collect();
    let (promote, reason) = if !failed.is_empty() {
        (false, format!("rejected: {} (tolerance {tolerance})", failed.join("; ")))
    } else if compared == 0 {
        (false, "rejected: no metric could be compared between the two versions".to_string())
    } else {
        (true, format!("promoted: no gated metric dropped by more than {tolerance} ({compared} compared)"))
    };
    GateDecision { promote, tolerance, checks, reason }
}

fn check(m: &Measured, tolerance: f64) -> Check {
    let base = Check {
        metric: m.metric.clone(),
        baseline: m.baseline,
        candidate: m.candidate,
        drop: None,
        passed: false,
        note: None,
    };
    match (m.baseline, m.candidate) {
        (Some(b), Some(c)) if b.is_finite() && c.is_finite() => {
            let drop = b - c;
            Check { drop: Some(drop), passed: drop <= tolerance + EPSILON, ..base }
        }
        (Some(_), Some(_)) => Check { note: Some("not a finite number".into()), ..base },
        (Some(_), None) => Check { note: Some("the candidate cannot be measured on it".into()), ..base },
        (None, Some(_)) => Check { passed: true, note: Some("new metric; nothing to regress from".into()), ..base },
        (None, None) => Check { passed: true, note: Some("undefined for both versions".into()), ..base },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(metric: &str, baseline: Option<f64>, candidate: Option<f64>) -> Measured {
        Measured { metric: metric.into(), baseline, candidate }
    }

    #[test]
    fn promotes_when_nothing_drops_beyond_the_tolerance() {
        let d = decide(
            &[m("dev/intent_accuracy", Some(0.95), Some(0.96)), m("dev/oos_recall", Some(0.90), Some(0.895))],
            0.01,
        );
        assert!(d.promote, "{}", d.reason);
        assert!(d.checks.iter().all(|c| c.passed));
        assert!((d.checks[1].drop.unwrap() - 0.005).abs() < 1e-12);
    }

    #[test]
    fn a_drop_of_exactly_the_tolerance_passes_and_more_fails() {
        assert!(decide(&[m("a", Some(0.95), Some(0.94))], 0.01).promote);
        let d = decide(&[m("a", Some(0.95), Some(0.94)), m("b", Some(0.90), Some(0.85))], 0.01);
        assert!(!d.promote);
        assert!(d.checks[0].passed && !d.checks[1].passed);
        assert!(d.reason.contains("b dropped by 0.0500"), "{}", d.reason);
    }

    #[test]
    fn zero_tolerance_rejects_any_drop() {
        assert!(!decide(&[m("a", Some(0.95), Some(0.9499))], 0.0).promote);
        assert!(decide(&[m("a", Some(0.95), Some(0.95))], 0.0).promote);
    }

    #[test]
    fn undefined_metrics() {
        // Held-out corrections absent on both sides: not compared, not blocking.
        let d = decide(
            &[m("dev/intent_accuracy", Some(0.9), Some(0.9)), m("held_out_corrections/accuracy", None, None)],
            0.01,
        );
        assert!(d.promote, "{}", d.reason);
        // A metric the candidate lost fails; a NaN fails.
        assert!(!decide(&[m("a", Some(0.9), Some(0.9)), m("b", Some(0.5), None)], 0.01).promote);
        assert!(!decide(&[m("a", Some(0.9), Some(f64::NAN))], 0.01).promote);
        // A new metric passes.
        assert!(decide(&[m("a", Some(0.9), Some(0.9)), m("b", None, Some(0.1))], 0.01).promote);
    }

    #[test]
    fn nothing_comparable_is_rejected() {
        let d = decide(&[m("a", None, None)], 0.01);
        assert!(!d.promote);
        assert!(d.reason.contains("no metric"), "{}", d.reason);
        assert!(!decide(&[], 0.01).promote);
    }
}
