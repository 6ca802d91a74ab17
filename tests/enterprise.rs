//! Answers with the customer's own data over real HTTP: the seeded demo
//! enterprise database, multi-turn order questions, hand-off context, and
//! enterprise systems that time out or fail. (Personal data in logs and the
//! database: tests/privacy.rs.)

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use common::{get, model_installed, post, Server};
use serde_json::{json, Value};

const NOW: &str = "2026-06-15T10:00:00+08:00";

async fn ask(base: &str, body: Value) -> Value {
    let (status, r) = post(base, "/v1/answer", body.clone()).await;
    assert_eq!(status, 200, "{body}: {r}");
    r
}

#[tokio::test]
async fn demo_data_answers_end_to_end() {
    assert!(model_installed(), "model missing");
    let server = Server::start(&[]).await;
    let base = server.base.as_str();

    // The central example: yesterday's dress, change of address.
    let r = ask(base, json!({"text": "我昨天买的裙子能改地址吗", "customer_id": "c1001", "now": NOW})).await;
    assert_eq!((r["decision"].as_str(), r["intent"].as_str()), (Some("answer"), Some("change_address")), "{r}");
    let answer = r["answer"].as_str().unwrap();
    assert!(answer.contains("12345") && answer.contains("APP「我的订单」"), "{answer}");
    assert_eq!(r["slots"]["product"], "dress");
    assert_eq!(r["slots"]["time"], json!({"start": "2026-06-14", "end": "2026-06-14"}));

    let r = ask(base, json!({"text": "你们的手机有现货吗", "now": NOW})).await;
    assert_eq!(r["intent"], "stock_availability", "{r}");
    assert!(r["answer"].as_str().unwrap().contains("杭州仓"), "{r}");

    let r = ask(base, json!({"text": "我的退款到账了吗", "customer_id": "c1001", "now": NOW})).await;
    assert_eq!(r["intent"], "refund_status", "{r}");
    let answer = r["answer"].as_str().unwrap();
    assert!(answer.contains("1234") && answer.contains("6月14日"), "{answer}");
    // Asked in English, the same record is told in English (status and date words).
    let r = ask(base, json!({"text": "has my refund arrived yet?", "customer_id": "c1001", "now": NOW})).await;
    assert_eq!(r["intent"], "refund_status", "{r}");
    let answer = r["answer"].as_str().unwrap();
    assert!(answer.contains("1234") && answer.contains("Jun 14") && answer.contains("arrived"), "{answer}");
    assert!(!answer.contains("已到账") && !answer.contains("月"), "{answer}");

    let r = ask(base, json!({"text": "快递到哪了", "customer_id": "c1002", "now": NOW})).await;
    assert_eq!((r["decision"].as_str(), r["intent"].as_str()), (Some("answer"), Some("order_tracking")), "{r}");
    assert!(r["answer"].as_str().unwrap().contains("23456"), "{r}");

    let r = ask(base, json!({"text": "耳机显示已经签收了 但我根本没收到", "customer_id": "c1001", "now": NOW})).await;
    assert_eq!((r["decision"].as_str(), r["intent"].as_str()), (Some("answer"), Some("not_received")), "{r}");
    assert!(r["answer"].as_str().unwrap().contains("12301"), "{r}");

    let r = ask(base, json!({"text": "冰箱维修的进度怎么样了 师傅啥时候来", "customer_id": "c1001", "now": NOW})).await;
    assert_eq!((r["decision"].as_str(), r["intent"].as_str()), (Some("answer"), Some("repair_progress")), "{r}");
    assert!(r["answer"].as_str().unwrap().contains("维修单"), "{r}");

    // A fault hands off, and the ticket carries the repair history.
    let r = ask(base, json!({"text": "冰箱坏了", "customer_id": "c1001", "now": NOW})).await;
    assert_eq!(r["decision"], "handoff", "{r}");
    let ticket_id = r["handoff"]["ticket_id"].as_str().unwrap();
    let (_, ticket) = get(base, &format!("/v1/tickets/{ticket_id}")).await;
    assert_eq!(ticket["context"]["repairs_last_90_days"], 2, "{ticket}");
    assert!(
        ticket["context"]["repairs"].as_array().unwrap().iter().all(|r| r["product"] == "refrigerator"),
        "{ticket}"
    );
    assert_eq!(ticket["context"]["customer"]["phone"], "138****5678", "{ticket}");

    // No matching order: ask for the number, then continue when it comes.
    let session = json!("s-cancel");
    let r =
        ask(base, json!({"text": "上个月买的沙发能取消吗", "customer_id": "c1002", "session_id": session, "now": NOW}))
            .await;
    assert_eq!((r["decision"].as_str(), r["intent"].as_str()), (Some("clarify"), Some("cancel_order")), "{r}");
    let r = ask(base, json!({"text": "23456", "customer_id": "c1002", "session_id": session, "now": NOW})).await;
    assert_eq!((r["decision"].as_str(), r["intent"].as_str()), (Some("answer"), Some("cancel_order")), "{r}");
    assert!(r["answer"].as_str().unwrap().contains("23456"), "{r}");

    // A number that is not found is named in the reply, not asked for again.
    let session = json!("s-not-found");
    ask(base, json!({"text": "上个月买的沙发能取消吗", "customer_id": "c1002", "session_id": session, "now": NOW}))
        .await;
    let r = ask(base, json!({"text": "99999", "customer_id": "c1002", "session_id": session, "now": NOW})).await;
    assert_eq!((r["decision"].as_str(), r["intent"].as_str()), (Some("clarify"), Some("cancel_order")), "{r}");
    let reply = r["answer"].as_str().unwrap();
    assert!(reply.contains("没有查到订单 99999") && !reply.contains("发一下订单号"), "{r}");

    // Anonymous: a specific purchase needs its number; a how-to question is answered in general.
    let session = json!("s-anon");
    let r = ask(base, json!({"text": "我昨天买的裙子能改地址吗", "session_id": session, "now": NOW})).await;
    assert_eq!((r["decision"].as_str(), r["intent"].as_str()), (Some("clarify"), Some("change_address")), "{r}");
    let r = ask(base, json!({"text": "订单号12345", "session_id": session, "now": NOW})).await;
    assert_eq!((r["decision"].as_str(), r["intent"].as_str()), (Some("answer"), Some("change_address")), "{r}");
    assert!(r["answer"].as_str().unwrap().contains("12345"), "{r}");
    let r = ask(base, json!({"text": "收货地址怎么修改", "now": NOW})).await;
    assert_eq!((r["decision"].as_str(), r["intent"].as_str()), (Some("answer"), Some("change_address")), "{r}");

    // Slots carry over within a session.
    let session = json!("s-carry");
    ask(base, json!({"text": "订单 12345 到哪了", "customer_id": "c1001", "session_id": session, "now": NOW})).await;
    let r = ask(base, json!({"text": "那能改地址吗", "customer_id": "c1001", "session_id": session, "now": NOW})).await;
    assert_eq!(r["slots"]["order_id"], "12345", "{r}");
    assert!(r["answer"].as_str().unwrap().contains("12345"), "{r}");

    // Two unhelpful turns in a row go to a person.
    let session = json!("s-lost");
    let r = ask(base, json!({"text": "帮我写一首关于春天的诗", "session_id": session, "now": NOW})).await;
    assert_eq!(r["decision"], "clarify", "{r}");
    let r = ask(base, json!({"text": "今天股票行情怎么样", "session_id": session, "now": NOW})).await;
    assert_eq!((r["decision"].as_str(), r["handoff"]["reason"].as_str()), (Some("handoff"), Some("unresolved")), "{r}");
}

/// Enterprise systems that answer slowly (past the timeout) or with errors.
async fn failing_systems(slow: bool) -> (String, tokio::task::JoinHandle<()>) {
    let app = Router::new().fallback(move || async move {
        if slow {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom")
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (url, tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }))
}

async fn degrades_gracefully(slow: bool) {
    assert!(model_installed(), "model missing");
    let (url, _systems) = failing_systems(slow).await;
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("kefu.toml");
    let mut text = String::new();
    for system in ["orders", "inventory", "refunds", "after_sales", "crm"] {
        text.push_str(&format!(
            "[enterprise_http.{system}]\nbase_url = \"{url}\"\ntimeout_ms = 300\nretries = 1\nbackoff_ms = 10\n\n"
        ));
    }
    std::fs::write(&config, text).unwrap();
    let server = Server::start(&[("KEFU_CONFIG", config.to_str().unwrap())]).await;
    let base = server.base.as_str();

    let started = Instant::now();
    let r = ask(base, json!({"text": "我的退款到账了吗", "customer_id": "c1001", "now": NOW})).await;
    assert_eq!((r["decision"].as_str(), r["intent"].as_str()), (Some("answer"), Some("refund_status")), "{r}");
    assert!(!r["answer"].as_str().unwrap().is_empty());
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let trace_id = r["trace_id"].as_str().unwrap().to_string();

    let r = ask(base, json!({"text": "冰箱坏了", "customer_id": "c1001", "now": NOW})).await;
    assert_eq!(r["decision"], "handoff", "{r}");
    let (status, ticket) = get(base, &format!("/v1/tickets/{}", r["handoff"]["ticket_id"].as_str().unwrap())).await;
    assert_eq!(status, 200);
    assert!(ticket["context"]["unavailable"].as_array().unwrap().len() >= 3, "{ticket}");

    let log = server.log_text();
    assert!(
        log.lines().any(|l| l.contains(&trace_id) && l.contains("lookup failed")),
        "failure not logged with trace id:\n{log}"
    );
}

#[tokio::test]
async fn enterprise_timeouts_still_answer() {
    degrades_gracefully(true).await;
}

#[tokio::test]
async fn enterprise_errors_still_answer() {
    degrades_gracefully(false).await;
}
