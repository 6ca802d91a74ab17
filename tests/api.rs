//! The real server, on the shipped corpus and the default model, over real
//! HTTP: answer, lead, clarify, out-of-scope, hand-off with ticket, feedback
//! and corrections, bad input, and the contract smoke check.

mod common;

use common::{get, model_installed, post, repo, Server};
use serde_json::json;

const NOW: &str = "2026-06-15T10:00:00+08:00";

async fn ask(base: &str, text: &str) -> serde_json::Value {
    let (status, body) = post(base, "/v1/answer", json!({"text": text, "now": NOW})).await;
    assert_eq!(status, 200, "{text}: {body}");
    body
}

#[tokio::test]
async fn answers_hands_off_and_rejects_bad_input() {
    assert!(model_installed(), "model missing");
    let server = Server::start(&[]).await;
    let base = server.base.as_str();

    // Answer, Chinese and English, with the intent's concrete answer and candidates.
    let r = ask(base, "东西不想要了 退货寄到哪个地址").await;
    assert_eq!((r["decision"].as_str(), r["intent"].as_str()), (Some("answer"), Some("return_address")), "{r}");
    assert!(r["answer"].as_str().unwrap().contains("杭州"), "{r}");
    assert!(!r["candidates"].as_array().unwrap().is_empty());
    assert_eq!(r["candidates"][0]["intent"], "return_address");
    assert!(r["confidence"].as_f64().unwrap() > 0.5);
    let r = ask(base, "what time does your customer service open").await;
    assert_eq!(
        (r["decision"].as_str(), r["intent"].as_str(), r["lang"].as_str()),
        (Some("answer"), Some("business_hours"), Some("en")),
        "{r}"
    );

    // Lead: answered and routed to sales.
    let r = ask(base, "这个沙发多少钱 有没有优惠").await;
    assert_eq!(
        (r["decision"].as_str(), r["intent"].as_str(), r["lead"].as_bool()),
        (Some("answer"), Some("price_inquiry"), Some(true)),
        "{r}"
    );

    // Out of scope: not answered, intent "oos".
    let r = ask(base, "帮我写一首关于春天的诗").await;
    assert_eq!((r["decision"].as_str(), r["intent"].as_str()), (Some("clarify"), Some("oos")), "{r}");

    // Hand-offs: a fault, a complaint, anger and an explicit ask, each with a readable ticket.
    for (text, reason) in [
        ("家里冰箱突然不制冷了", "agent_intent"),
        ("我要投诉你们的送货员 态度恶劣", "complaint"),
        ("什么破服务，快递到底到哪了！！", "angry_customer"),
        ("别跟我扯了 转人工", "human_requested"),
    ] {
        let r = ask(base, text).await;
        assert_eq!(r["decision"], "handoff", "{text}: {r}");
        assert_eq!(r["handoff"]["reason"], reason, "{text}: {r}");
        let ticket_id = r["handoff"]["ticket_id"].as_str().unwrap();
        let (status, ticket) = get(base, &format!("/v1/tickets/{ticket_id}")).await;
        assert_eq!(status, 200);
        for key in ["id", "status", "priority", "queue", "reason", "customer_id", "intent", "conversation", "history"] {
            assert!(ticket.get(key).is_some(), "ticket lacks {key}: {ticket}");
        }
        let conversation = ticket["conversation"].as_array().unwrap();
        assert!(conversation.iter().any(|t| t["role"] == "customer" && t["text"] == text), "{ticket}");
    }
    // An agent picks a ticket up and works it; skipping steps is refused.
    let r = ask(base, "给我转人工客服").await;
    let ticket_id = r["handoff"]["ticket_id"].as_str().unwrap().to_string();
    let (status, t) = post(base, &format!("/v1/tickets/{ticket_id}/assign"), json!({"agent": "agent-7"})).await;
    assert_eq!((status, t["status"].as_str(), t["assignee"].as_str()), (200, Some("assigned"), Some("agent-7")), "{t}");
    let (status, t) = post(
        base,
        &format!("/v1/tickets/{ticket_id}/status"),
        json!({"status": "in_progress", "note": "calling back"}),
    )
    .await;
    assert_eq!((status, t["status"].as_str()), (200, Some("in_progress")), "{t}");
    assert_eq!(post(base, &format!("/v1/tickets/{ticket_id}/status"), json!({"status": "closed"})).await.0, 409);
    assert_eq!(post(base, &format!("/v1/tickets/{ticket_id}/status"), json!({"status": "done"})).await.0, 400);
    assert_eq!(post(base, "/v1/tickets/T-none/status", json!({"status": "resolved"})).await.0, 404);
    let (_, list) = get(base, "/v1/tickets?status=in_progress").await;
    assert!(list["tickets"].as_array().unwrap().iter().any(|t| t["id"] == ticket_id.as_str()), "{list}");
    let (status, t) = post(base, &format!("/v1/tickets/{ticket_id}/notes"), json!({"note": "客户要求下午回电"})).await;
    assert_eq!((status, t["status"].as_str()), (200, Some("in_progress")), "{t}");
    let notes: Vec<&str> = t["history"].as_array().unwrap().iter().filter_map(|e| e["note"].as_str()).collect();
    assert_eq!(&notes[1..], ["assigned to agent-7", "calling back", "客户要求下午回电"], "{t}");

    // Tickets opened by hand get the intent's queue and the filters find them.
    let (status, t) =
        post(base, "/v1/tickets", json!({"customer_id": "c1002", "channel": "douyin", "intent": "invoice", "priority": "high", "note": "电话里要专票"})).await;
    assert_eq!(
        (status, t["status"].as_str(), t["queue"].as_str(), t["priority"].as_str()),
        (201, Some("new"), Some("billing"), Some("high")),
        "{t}"
    );
    assert!(
        t["context"]["orders"].as_array().is_some_and(|o| !o.is_empty()),
        "a ticket opened by hand carries the customer's orders: {t}"
    );
    assert_eq!(t["context"]["profile"]["customer_id"], "c1002", "{t}");
    let (_, list) = get(base, "/v1/tickets?queue=billing&priority=high&status=new").await;
    assert!(list["tickets"].as_array().unwrap().iter().any(|x| x["id"] == t["id"]), "{list}");
    assert_eq!(post(base, "/v1/tickets", json!({"intent": "no_such_intent"})).await.0, 422);
    assert_eq!(post(base, "/v1/tickets", json!({"priority": "asap"})).await.0, 400);

    let (_, fault) = post(base, "/v1/answer", json!({"text": "空调不出冷风了 帮忙报修", "now": NOW})).await;
    assert_eq!(fault["handoff"]["queue"], "after_sales", "{fault}");
    let (status, list) = get(base, "/v1/tickets?queue=after_sales").await;
    assert_eq!(status, 200);
    assert!(!list["tickets"].as_array().unwrap().is_empty());

    // Feedback and corrections refer to known turns and intents.
    let trace = ask(base, "快递到哪了").await["trace_id"].as_str().unwrap().to_string();
    assert_eq!(post(base, "/v1/feedback", json!({"trace_id": trace, "useful": true})).await.0, 201);
    assert_eq!(post(base, "/v1/feedback", json!({"trace_id": "nope", "useful": false})).await.0, 404);
    assert_eq!(post(base, "/v1/corrections", json!({"trace_id": trace, "intent": "order_tracking"})).await.0, 201);
    assert_eq!(post(base, "/v1/corrections", json!({"trace_id": trace, "intent": "no_such_intent"})).await.0, 422);
    assert_eq!(post(base, "/v1/corrections", json!({"trace_id": "nope", "intent": "order_tracking"})).await.0, 404);

    // Bad input: JSON 4xx, and the server stays up.
    for (body, want) in [
        (json!({"text": ""}), 400),
        (json!({"text": "   "}), 400),
        (json!({"text": "a".repeat(5000)}), 413),
        (json!({"text": 5}), 400),
        (json!({"text": "hi", "now": "yesterday"}), 400),
        (json!({"text": "hi", "scenario": "no_such_scenario"}), 400),
        (json!({"text": "hi", "session_id": "has space"}), 400),
    ] {
        let (status, err) = post(base, "/v1/answer", body.clone()).await;
        assert_eq!(status, want, "{body}: {err}");
        assert!(err["error"]["code"].is_string() && err["error"]["message"].is_string(), "{err}");
    }
    let smoke =
        std::process::Command::new("bash").arg(repo().join("tests/contract-smoke.sh")).arg(base).output().unwrap();
    let out = String::from_utf8_lossy(&smoke.stdout);
    assert!(smoke.status.success(), "contract smoke failed:\n{out}{}", String::from_utf8_lossy(&smoke.stderr));
    assert_eq!(get(base, "/healthz").await.0, 200);
    assert_eq!(get(base, "/no/such/route").await.0, 404);
}

#[tokio::test]
async fn scenario_restricts_the_intents() {
    assert!(model_installed(), "model missing");
    let server = Server::start(&[]).await;
    let (status, r) =
        post(&server.base, "/v1/answer", json!({"text": "怎么导出报表", "scenario": "saas", "now": NOW})).await;
    assert_eq!(status, 200);
    assert_eq!(r["intent"], "feature_howto", "{r}");
    for c in r["candidates"].as_array().unwrap() {
        assert!(
            ["renewal", "feature_howto", "bug_report", "login_issue"].contains(&c["intent"].as_str().unwrap()),
            "{r}"
        );
    }
}

#[tokio::test]
async fn low_confidence_asks_which_intent_is_meant() {
    assert!(model_installed(), "model missing");
    // With the bar for answering set very high, in-scope questions get a clarifying question.
    let server = Server::start(&[("KEFU_MIN_ANSWER_CONFIDENCE", "0.999")]).await;
    let (status, r) = post(&server.base, "/v1/answer", json!({"text": "退货的事想问一下", "now": NOW})).await;
    assert_eq!(status, 200);
    assert_eq!(r["decision"], "clarify", "{r}");
    assert_ne!(r["intent"], "oos", "{r}");
    let answer = r["answer"].as_str().unwrap();
    assert!(answer.contains("1.") && answer.contains("2."), "{answer}");
}
