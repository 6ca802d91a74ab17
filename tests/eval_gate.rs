//! The eval gate: the shipped engine on the project's own dev sets, through
//! the real `kefu eval` command, must hold the accuracy the issues promise.

mod common;

use common::{model_installed, read_json, run_kefu};

/// The JSON report of `kefu eval --test test`, and its HTML page.
fn eval(test: &str) -> (serde_json::Value, String) {
    assert!(model_installed(), "model missing");
    let out = tempfile::tempdir().unwrap();
    let report = out.path().join("report.json");
    let page = out.path().join("report.html");
    let run = run_kefu(&["eval", "--test", test, "--json", report.to_str().unwrap(), "--html", page.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "kefu eval failed:\n{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    println!("{test}:\n{stdout}");
    (read_json(&report), std::fs::read_to_string(page).unwrap())
}

#[test]
fn dev_set_intent_and_decision_accuracy() {
    let (r, page) = eval("eval/dev.jsonl");
    for key in [
        "n",
        "intent_accuracy",
        "oos_precision",
        "oos_recall",
        "decision_accuracy",
        "slot_f1",
        "latency_ms_p50",
        "latency_ms_p99",
    ] {
        assert!(r.get(key).is_some(), "report lacks {key}");
    }
    let intent = r["intent_accuracy"].as_f64().unwrap();
    let decision = r["decision_accuracy"].as_f64().unwrap();
    let oos_recall = r["oos_recall"].as_f64().unwrap();
    // Regression floors under today's figures (0.930, 0.934 and 0.735 with
    // kefu's background out-of-scope set and learned exasperation), not the targets.
    assert!(intent >= 0.92, "intent accuracy {intent}");
    assert!(decision >= 0.91, "decision accuracy {decision}");
    assert!(oos_recall >= 0.65, "out-of-scope recall {oos_recall}");

    // The page shows the same run: a bar per filled confidence bin, a
    // matrix cell per intent pair, a row per wrong line.
    let filled = r["reliability"].as_array().unwrap().iter().filter(|b| b["lines"].as_u64() > Some(0)).count();
    assert!(filled > 0);
    assert_eq!(page.matches("<rect class=\"bin\"").count(), filled);
    let intents = r["per_intent"].as_object().unwrap().len();
    assert_eq!(page.matches("class=\"gold\"").count(), intents, "the dev set's matrix shows every intent");
    let errors = r["errors"].as_array().unwrap();
    assert!(page.contains(&format!("Wrong lines ({})", errors.len())));
    let plain = errors.iter().filter_map(|e| e["text"].as_str()).find(|t| !t.contains(['&', '<', '>', '"', '\'']));
    let plain = plain.expect("a wrong line without markup characters");
    assert!(page.contains(plain), "the wrong line {plain:?} is listed");
}

#[test]
fn slot_set_f1() {
    let (r, _) = eval("eval/slots.jsonl");
    let f1 = r["slot_f1"].as_f64().unwrap();
    assert!(f1 >= 0.95, "slot F1 {f1}");
}

/// Asks for a person are handed off, and questions about the agents
/// ("人工客服几点下班") are answered: the ask-for-a-person phrases of a
/// confidently placed intent's own exemplars do not force a hand-off.
#[test]
fn asks_for_a_person_and_questions_about_agents() {
    let (r, _) = eval("tests/fixtures/agents.jsonl");
    let handoffs = &r["per_decision"]["handoff"];
    let answers = &r["per_decision"]["answer"];
    println!("{handoffs}\n{answers}");
    assert_eq!(handoffs["accuracy"].as_f64(), Some(1.0), "every ask for a person is handed off");
    assert!(answers["accuracy"].as_f64().unwrap() >= 0.8, "questions about agents are answered: {answers}");
}
