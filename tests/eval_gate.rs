//! The eval gate: the shipped engine on the project's own dev sets, through
//! the real `kefu eval` command, must hold the accuracy the issues promise.

mod common;

use common::{model_installed, read_json, run_kefu};

fn eval(test: &str) -> serde_json::Value {
    assert!(model_installed(), "model missing");
    let out = tempfile::tempdir().unwrap();
    let report = out.path().join("report.json");
    let run = run_kefu(&["eval", "--test", test, "--json", report.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "kefu eval failed:\n{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    println!("{test}:\n{stdout}");
    read_json(&report)
}

#[test]
fn dev_set_intent_and_decision_accuracy() {
    let r = eval("eval/dev.jsonl");
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
    assert!(intent >= 0.95, "intent accuracy {intent}");
    assert!(decision >= 0.93, "decision accuracy {decision}");
}

#[test]
fn slot_set_f1() {
    let r = eval("eval/slots.jsonl");
    let f1 = r["slot_f1"].as_f64().unwrap();
    assert!(f1 >= 0.95, "slot F1 {f1}");
}
