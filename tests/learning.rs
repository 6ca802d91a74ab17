//! The learning loop end to end, on the real server: a correction takes
//! effect on the next request and survives a restart; a retrain is gated
//! (poisoned corrections are rejected), a good one is promoted and swapped in
//! while a load runs without a single failed request; rollback is one command.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{get, model_installed, post, repo, Server};
use serde_json::{json, Value};

/// Questions of the dev set with their gold intent that the shipped engine
/// has got wrong (checked in the test: only the genuinely misclassified ones are used).
const HARD: [(&str, &str); 6] = [
    ("售后审核已经过了 包裹往哪边发", "return_address"),
    ("can the courier deliver to my office instead of home", "change_address"),
    ("what time is it in New York", "oos"),
    ("买手机送人 想在后壳上刻句话 收费吗", "customization"),
    ("my order shows delivered yesterday but nothing arrived", "not_received"),
    ("我的车险快到期了 你们这能买吗", "oos"),
];

/// Environment of a server whose database and versions live in `dir`, so a restart finds them again.
fn env_in(dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("KEFU_DATABASE_URL", format!("sqlite://{}/kefu.db", dir.display())),
        ("KEFU_ENTERPRISE_DATABASE_URL", format!("sqlite://{}/demo.db", dir.display())),
        ("KEFU_VERSIONS_DIR", dir.join("versions").display().to_string()),
        ("KEFU_VERSIONS_POLL_SECS", "1".to_string()),
    ]
}

async fn start(dir: &Path) -> Server {
    let env = env_in(dir);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start(&pairs).await
}

async fn ask(base: &str, text: &str) -> Value {
    let (status, body) = post(base, "/v1/answer", json!({"text": text})).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn served_version(base: &str) -> String {
    let (status, body) = get(base, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    body["version"].as_str().expect("readyz names the version").to_string()
}

#[tokio::test]
async fn a_correction_takes_effect_at_once_and_survives_a_restart() {
    assert!(model_installed(), "model missing");
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path()).await;

    // A question the engine genuinely gets wrong.
    let mut wrong = None;
    for (text, gold) in HARD {
        let answer = ask(&server.base, text).await;
        if answer["intent"] != gold {
            wrong = Some((text, gold, answer));
            break;
        }
    }
    let (text, gold, answer) = wrong.expect("the shipped engine misclassifies at least one of the hard questions");
    println!("{text:?}: answered {} ({}), gold {gold}", answer["intent"], answer["confidence"]);

    // An agent corrects that very turn.
    let (status, stored) = post(
        &server.base,
        "/v1/corrections",
        json!({"trace_id": answer["trace_id"], "intent": gold, "note": "系统没听懂"}),
    )
    .await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["taught"], true, "{stored}");

    // The next request gets it right, and so does the same question with other punctuation.
    let again = ask(&server.base, text).await;
    assert_eq!(again["intent"], gold, "{again}");
    let variant = if text.is_ascii() { format!("{text}?") } else { format!("{}？", text.replace(' ', "，")) };
    let near = ask(&server.base, &variant).await;
    assert_eq!(near["intent"], gold, "near-identical {variant:?}: {near}");
    // Other questions are untouched by it.
    assert_eq!(ask(&server.base, "退货地址在哪").await["intent"], "return_address");

    // Corrections of unknown intents are refused, and nothing is taught.
    let (status, body) = post(&server.base, "/v1/corrections", json!({"text": text, "intent": "no_such_intent"})).await;
    assert_eq!(status, 422, "{body}");

    // After a restart on the same database the correction still holds.
    server.kill();
    let server = start(dir.path()).await;
    let after = ask(&server.base, text).await;
    assert_eq!(after["intent"], gold, "after restart: {after}");
    let (_, version) = get(&server.base, "/v1/admin/version").await;
    assert_eq!(version["corrections_live"], 1, "{version}");
}

/// Posts `/v1/answer` from `clients` loops until `stop`; returns (answered, failed).
fn start_load(
    base: &str,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> (Arc<AtomicUsize>, Arc<AtomicUsize>, Vec<tokio::task::JoinHandle<()>>) {
    let answered = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let texts = [
        "我昨天买的裙子能改地址吗",
        "退货地址在哪",
        "发票怎么开",
        "冰箱又坏了 第三次了",
        "what are your opening hours",
        "转人工",
    ];
    let http = reqwest::Client::new();
    let tasks = (0..clients)
        .map(|client| {
            let (answered, failed, stop, http, url) =
                (answered.clone(), failed.clone(), stop.clone(), http.clone(), format!("{base}/v1/answer"));
            tokio::spawn(async move {
                let mut i = client;
                while !stop.load(Ordering::Relaxed) {
                    let body = json!({"text": texts[i % texts.len()], "customer_id": "c1001"});
                    match http.post(&url).json(&body).send().await {
                        Ok(r) if r.status().is_success() => answered.fetch_add(1, Ordering::Relaxed),
                        Ok(r) => {
                            eprintln!("load request failed: {} {}", r.status(), r.text().await.unwrap_or_default());
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => {
                            eprintln!("load request failed: {e}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    (answered, failed, tasks)
}

#[tokio::test]
async fn retrains_are_gated_swapped_in_under_load_and_rolled_back() {
    assert!(model_installed(), "model missing");
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    assert_eq!(served_version(&server.base).await, "base");

    // A good retrain: agents label a few questions correctly.
    for (text, gold) in HARD {
        let (status, body) = post(&server.base, "/v1/corrections", json!({"text": text, "intent": gold})).await;
        assert_eq!(status, 201, "{body}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed, clients) = start_load(&server.base, 4, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = answered.load(Ordering::Relaxed);
    let started = Instant::now();
    let (status, report) = post(&server.base, "/v1/admin/retrain", json!({})).await;
    let retrain_seconds = started.elapsed().as_secs_f64();
    // Keep the load on the new engine for a moment too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let (answered, failed) = (answered.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("good retrain: {retrain_seconds:.1}s; load answered {answered} requests ({} during the retrain), failed {failed}", answered - before);
    println!("{}", serde_json::to_string_pretty(&report["gate"]).unwrap());
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["status"], "promoted", "{}", report["gate"]["reason"]);
    assert_eq!(failed, 0, "requests failed during the swap");
    assert!(answered - before >= 20, "the load kept running through the retrain: {}", answered - before);
    let promoted = report["version"].as_str().unwrap().to_string();
    assert_eq!(served_version(&server.base).await, promoted);
    let (_, version) = get(&server.base, "/v1/admin/version").await;
    assert_eq!(version["version"], promoted.as_str());
    for (text, gold) in HARD {
        assert_eq!(ask(&server.base, text).await["intent"], gold, "{text}");
    }
    // The version is on disk with its model, corrections and report.
    let saved = dir.path().join("versions").join(&promoted);
    for part in ["report.json", "corrections.jsonl", "model/intent-model.json"] {
        assert!(saved.join(part).exists(), "{part}");
    }
    assert_eq!(std::fs::read_to_string(dir.path().join("versions/current")).unwrap().trim(), promoted);

    // A poisoned retrain: many common questions relabelled as greetings.
    let dev = std::fs::read_to_string(repo().join("eval/dev.jsonl")).unwrap();
    let poisoned: Vec<String> = dev
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["intent"] != "oos" && l["intent"] != "greeting")
        .step_by(10)
        .take(25)
        .map(|l| l["text"].as_str().unwrap().to_string())
        .collect();
    for text in &poisoned {
        let (status, body) = post(&server.base, "/v1/corrections", json!({"text": text, "intent": "greeting"})).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, rejected) = post(&server.base, "/v1/admin/retrain", json!({})).await;
    println!("poisoned retrain: {}", rejected["gate"]["reason"]);
    assert_eq!(status, 200, "{rejected}");
    assert_eq!(rejected["status"], "rejected", "{}", rejected["gate"]["reason"]);
    assert!(rejected["gate"]["checks"].as_array().unwrap().iter().any(|c| c["passed"] == false));
    assert_eq!(served_version(&server.base).await, promoted, "the server keeps the promoted version");
    let rejected_dir = dir.path().join("versions").join(rejected["version"].as_str().unwrap());
    assert!(rejected_dir.join("report.json").exists() && !rejected_dir.join("model").exists());
    let (_, listed) = get(&server.base, "/v1/admin/versions").await;
    let statuses: Vec<&str> =
        listed["versions"].as_array().unwrap().iter().map(|v| v["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["rejected", "promoted"], "{listed}");

    // Bad settings are a 4xx, not a retrain.
    let (status, body) = post(&server.base, "/v1/admin/retrain", json!({"tolerance": -1})).await;
    assert_eq!(status, 400, "{body}");

    // Rollback from the command line, on the server's database and versions
    // (it takes their learning lock): the server follows the pointer.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kefu"))
        .current_dir(repo())
        .envs(env_in(dir.path()))
        .args(["rollback", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rolled: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rolled, json!({"from": promoted, "to": "base"}));
    let waited = Instant::now();
    while served_version(&server.base).await != "base" {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the server did not follow the rollback; log:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Live corrections still hold on the rolled-back engine.
    assert_eq!(ask(&server.base, HARD[0].0).await["intent"], HARD[0].1);
    let (status, body) = post(&server.base, "/v1/admin/rollback", json!({})).await;
    assert_eq!(status, 409, "nothing left to roll back: {body}");
}
