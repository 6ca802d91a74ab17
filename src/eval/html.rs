//! The `kefu eval --html` report: one self-contained page (no script, nothing
//! fetched) for a data scientist to read a run: the headline figures, a
//! reliability diagram of the calibrated confidence, per-intent precision and
//! recall, the confusion matrix and every wrong line.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::metrics::{EvalReport, Rate, ReliabilityBin};

/// Above this many intents the matrix keeps only those with an error: the
/// others would be rows and columns of zeros around a full diagonal.
const FULL_MATRIX_INTENTS: usize = 40;

const STYLE: &str = "
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1d2733}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2.2rem}
table{border-collapse:collapse}td,th{padding:.2rem .55rem;text-align:right;border-bottom:1px solid #e3e7ec}
th{font-weight:600;background:#f4f6f8}td.text,th.text{text-align:left}
.figures td:first-child{text-align:left;color:#52606d}
.matrix{font-size:11px}.matrix td,.matrix th{padding:1px 3px;border:1px solid #eef1f4;min-width:1.4em;text-align:center}
.matrix th.gold{text-align:right;white-space:nowrap}
.matrix th.predicted{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;text-align:left}
.matrix td.diagonal{outline:1px solid #9fb3c8}
.scroll{overflow:auto;max-height:48rem}
svg text{font:11px system-ui,sans-serif;fill:#52606d}
.note{color:#52606d}
";

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page for `report`; `title` names the run (the test file, say).
pub fn render(report: &EvalReport, title: &str) -> String {
    let mut page = String::new();
    let title = escape(title);
    // Writing into a String cannot fail.
    let _ = write!(
        page,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>kefu eval: {title}</title>\
         <style>{STYLE}</style></head><body><h1>kefu eval: {title}</h1>"
    );
    figures(&mut page, report);
    reliability(&mut page, report);
    per_intent(&mut page, report);
    matrix(&mut page, report);
    errors(&mut page, report);
    page.push_str("</body></html>\n");
    page
}

fn figures(page: &mut String, r: &EvalReport) {
    let rows = [
        ("lines", format!("{} ({} in scope, {} out of scope)", r.n, r.in_scope, r.oos)),
        ("intent accuracy (in scope)", format!("{:.3}", r.intent_accuracy)),
        ("out-of-scope precision / recall", format!("{} / {}", Rate(r.oos_precision), Rate(r.oos_recall))),
        ("decision accuracy", format!("{} ({} lines)", Rate(r.decision_accuracy), r.decision_lines)),
        ("slot F1", format!("{} ({} lines)", Rate(r.slot_f1), r.slot_lines)),
        ("expected calibration error", format!("{:.3}", r.ece)),
        ("latency ms p50 / p99", format!("{:.1} / {:.1}", r.latency_ms_p50, r.latency_ms_p99)),
    ];
    page.push_str("<table class=\"figures\">");
    for (name, value) in rows {
        let _ = write!(page, "<tr><td>{name}</td><td>{value}</td></tr>");
    }
    page.push_str("</table>");
}

/// Accuracy against mean confidence per bin, bar width by bin, the diagonal
/// as perfect calibration; each bar's line count beneath it.
fn reliability(page: &mut String, r: &EvalReport) {
    const SIZE: f64 = 300.0;
    const MARGIN: f64 = 40.0;
    let _ = write!(
        page,
        "<h2>Reliability of the confidence</h2><p class=\"note\">Bars: share of right intents among the lines \
         whose confidence falls in the bin; dots: their mean confidence; the diagonal is perfect calibration. \
         Expected calibration error {:.3}.</p>",
        r.ece
    );
    let _ = write!(
        page,
        "<svg id=\"reliability\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"reliability diagram\">",
        w = SIZE + 2.0 * MARGIN,
        h = SIZE + MARGIN + 56.0
    );
    let x = |v: f64| MARGIN + v * SIZE;
    let y = |v: f64| MARGIN + (1.0 - v) * SIZE;
    let _ = write!(
        page,
        "<rect x=\"{MARGIN}\" y=\"{MARGIN}\" width=\"{SIZE}\" height=\"{SIZE}\" fill=\"#f8fafc\" stroke=\"#cbd2d9\"/>\
         <line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#9aa5b1\" stroke-dasharray=\"4 3\"/>",
        x(0.0),
        y(0.0),
        x(1.0),
        y(1.0)
    );
    for bin in &r.reliability {
        bar(page, bin, x, y);
    }
    for tick in [0.0, 0.5, 1.0] {
        let _ = write!(
            page,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{tick}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{tick}</text>",
            x(tick),
            y(0.0) + 30.0,
            x(0.0) - 4.0,
            y(tick) + 4.0
        );
    }
    let _ = write!(
        page,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">confidence</text>\
         <text x=\"12\" y=\"{}\" transform=\"rotate(-90 12 {})\" text-anchor=\"middle\">accuracy</text></svg>",
        x(0.5),
        y(0.0) + 44.0,
        y(0.5),
        y(0.5)
    );
}

fn bar(page: &mut String, bin: &ReliabilityBin, x: impl Fn(f64) -> f64, y: impl Fn(f64) -> f64) {
    let (Some(accuracy), Some(confidence)) = (bin.accuracy, bin.confidence) else { return };
    let (left, right) = (x(bin.low) + 1.0, x(bin.high) - 1.0);
    let _ = write!(
        page,
        "<rect class=\"bin\" x=\"{left:.1}\" y=\"{top:.1}\" width=\"{width:.1}\" height=\"{height:.1}\" fill=\"#3e7cb1\">\
         <title>{low:.1}–{high:.1}: {lines} lines, accuracy {accuracy:.3}, mean confidence {confidence:.3}</title></rect>\
         <circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3\" fill=\"#d64545\"/>\
         <text x=\"{cx:.1}\" y=\"{below:.1}\" text-anchor=\"middle\">{lines}</text>",
        top = y(accuracy),
        width = right - left,
        height = y(0.0) - y(accuracy),
        low = bin.low,
        high = bin.high,
        lines = bin.lines,
        cx = x(confidence),
        cy = y(confidence),
        below = y(0.0) + 14.0,
    );
}

fn per_intent(page: &mut String, r: &EvalReport) {
    let mut rows: Vec<_> = r.per_intent.iter().collect();
    // Weakest first, as a reader goes looking for them.
    rows.sort_by(|(an, a), (bn, b)| {
        a.f1.unwrap_or(0.0).total_cmp(&b.f1.unwrap_or(0.0)).then(b.support.cmp(&a.support)).then(an.cmp(bn))
    });
    page.push_str(
        "<h2>Per intent</h2><div class=\"scroll\"><table id=\"per-intent\"><tr><th class=\"text\">intent</th>\
         <th>support</th><th>predicted</th><th>precision</th><th>recall</th><th>F1</th></tr>",
    );
    for (name, s) in rows {
        let _ = write!(
            page,
            "<tr><td class=\"text\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            s.support,
            s.predicted,
            Rate(s.precision),
            Rate(s.recall),
            Rate(s.f1)
        );
    }
    page.push_str("</table></div>");
}

/// Gold intents as rows, predicted as columns: the diagonal from each
/// intent's right lines, the rest from the wrong lines (all of them, unlike
/// the report's list of the most frequent pairs).
fn matrix(page: &mut String, r: &EvalReport) {
    let mut cells: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for e in r.errors.iter().filter(|e| e.gold != e.predicted) {
        *cells.entry((e.gold.as_str(), e.predicted.as_str())).or_default() += 1;
    }
    let mut intents: BTreeSet<&str> = r.per_intent.keys().map(String::as_str).collect();
    let shown_all = intents.len() <= FULL_MATRIX_INTENTS;
    if !shown_all {
        intents = cells.keys().flat_map(|&(gold, predicted)| [gold, predicted]).collect();
    }
    let _ = write!(
        page,
        "<h2>Confusion matrix</h2><p class=\"note\">Rows: the labelled intent; columns: the predicted one. {}</p>",
        if shown_all {
            "Every intent is shown.".to_owned()
        } else {
            format!(
                "Only the {} intents involved in a mistake are shown; the other {} were always right.",
                intents.len(),
                r.per_intent.len() - intents.len()
            )
        }
    );
    if intents.is_empty() {
        page.push_str("<p>No mistakes.</p>");
        return;
    }
    page.push_str("<div class=\"scroll\"><table class=\"matrix\" id=\"confusion\"><tr><th></th>");
    for predicted in &intents {
        let _ = write!(page, "<th class=\"predicted\">{}</th>", escape(predicted));
    }
    page.push_str("</tr>");
    for gold in &intents {
        let support = r.per_intent.get(*gold).map_or(0, |s| s.support);
        let _ = write!(page, "<tr><th class=\"gold\">{}</th>", escape(gold));
        for predicted in &intents {
            let count = if gold == predicted {
                r.per_intent.get(*gold).map_or(0, |s| s.correct)
            } else {
                cells.get(&(*gold, *predicted)).copied().unwrap_or(0)
            };
            // Shade by the share of the row's lines: red off the diagonal, blue on it.
            let share = if support > 0 { count as f64 / support as f64 } else { 0.0 };
            let (class, colour) =
                if gold == predicted { (" class=\"diagonal\"", "62,124,177") } else { ("", "214,69,69") };
            let text = if count > 0 { count.to_string() } else { String::new() };
            let alpha = if count > 0 { 0.08 + 0.8 * share.min(1.0) } else { 0.0 };
            let _ = write!(
                page,
                "<td{class} style=\"background:rgba({colour},{alpha:.2})\" title=\"{g} → {p}: {count}\">{text}</td>",
                g = escape(gold),
                p = escape(predicted),
            );
        }
        page.push_str("</tr>");
    }
    page.push_str("</table></div>");
}

fn errors(page: &mut String, r: &EvalReport) {
    let _ = write!(
        page,
        "<h2>Wrong lines ({})</h2><div class=\"scroll\"><table id=\"errors\"><tr><th class=\"text\">text</th>\
         <th class=\"text\">gold</th><th class=\"text\">predicted</th><th>confidence</th><th class=\"text\">decision</th>\
         <th class=\"text\">expected decision</th></tr>",
        r.errors.len()
    );
    for e in &r.errors {
        let _ = write!(
            page,
            "<tr><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td><td>{:.3}</td>\
             <td class=\"text\">{}</td><td class=\"text\">{}</td></tr>",
            escape(&e.text),
            escape(&e.gold),
            escape(&e.predicted),
            e.confidence,
            escape(&e.decision),
            escape(e.gold_decision.as_deref().unwrap_or("")),
        );
    }
    page.push_str("</table></div>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{score, LabelledLine, Prediction};
    use crate::policy::Action;

    fn report(pairs: &[(&str, &str)]) -> EvalReport {
        let lines: Vec<LabelledLine> = pairs
            .iter()
            .enumerate()
            .map(|(i, (gold, _))| LabelledLine {
                text: format!("line {i} <b>&</b>"),
                intent: (*gold).to_owned(),
                decision: None,
                slots: None,
                now: None,
            })
            .collect();
        let predictions: Vec<Prediction> = pairs
            .iter()
            .map(|(gold, predicted)| Prediction {
                intent: (*predicted).to_owned(),
                decision: Action::Answer,
                lead: false,
                slots: serde_json::Map::new(),
                latency_ms: 1.0,
                confidence: if gold == predicted { 0.9 } else { 0.6 },
            })
            .collect();
        score(&lines, &predictions).unwrap()
    }

    fn cell(page: &str, gold: &str, predicted: &str) -> String {
        let key = format!("title=\"{gold} → {predicted}: ");
        let start = page.find(&key).unwrap_or_else(|| panic!("no cell {gold} → {predicted}")) + key.len();
        page[start..].split('"').next().unwrap().to_owned()
    }

    #[test]
    fn the_matrix_counts_every_line_once() {
        let r = report(&[("hours", "hours"), ("hours", "address"), ("address", "address"), ("oos", "hours")]);
        let page = render(&r, "dev <set>");
        assert_eq!(cell(&page, "hours", "hours"), "1");
        assert_eq!(cell(&page, "hours", "address"), "1");
        assert_eq!(cell(&page, "oos", "hours"), "1");
        assert_eq!(cell(&page, "address", "hours"), "0");
        assert!(page.contains("<title>kefu eval: dev &lt;set&gt;</title>"));
        // Texts are escaped, never markup.
        assert!(page.contains("line 1 &lt;b&gt;&amp;&lt;/b&gt;"));
        assert!(!page.contains("<b>&</b>"));
        assert!(page.contains("Wrong lines (2)"));
    }

    #[test]
    fn large_matrices_keep_only_intents_with_mistakes() {
        let mut pairs: Vec<(String, String)> = (0..50).map(|i| (format!("i{i:02}"), format!("i{i:02}"))).collect();
        pairs.push(("i03".into(), "i07".into()));
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(g, p)| (g.as_str(), p.as_str())).collect();
        let page = render(&report(&pairs), "big");
        assert_eq!(cell(&page, "i03", "i07"), "1");
        assert_eq!(cell(&page, "i07", "i07"), "1");
        assert!(!page.contains("title=\"i10 → "), "an always-right intent has no row");
        assert!(page.contains("Only the 2 intents involved in a mistake are shown; the other 48 were always right."));
    }

    #[test]
    fn the_reliability_diagram_has_a_bar_per_filled_bin() {
        let r = report(&[("a", "a"), ("a", "b"), ("b", "b")]);
        let page = render(&r, "t");
        let filled = r.reliability.iter().filter(|b| b.lines > 0).count();
        assert_eq!(filled, 2);
        assert_eq!(page.matches("<rect class=\"bin\"").count(), filled);
        assert!(page.contains("0.6–0.7: 1 lines, accuracy 0.000"));
    }
}
