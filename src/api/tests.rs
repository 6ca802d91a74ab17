//! The router in-process (`app(state).oneshot`) on the second example
//! deployment (corpus_examples/saas), with the hashed n-gram encoder: roles,
//! queues and replies come from that corpus alone, and every conversation
//! rule runs in seconds without the downloaded model.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::{app, ApiSettings, AppState};
use crate::corpus::Corpus;
use crate::encoder::hashed::HashedNgramEncoder;
use crate::encoder::{BatchOptions, EncoderHandle};
use crate::engine::{Engine, EngineSettings};
use crate::nlu::slots::Catalogue;
use crate::policy::PolicySettings;
use crate::store::Store;

struct Harness {
    state: Arc<AppState>,
    _dir: tempfile::TempDir,
}

/// The SaaS deployment served from a fresh store; `min_answer_confidence` above 1 makes every scored turn a clarify.
async fn saas(min_answer_confidence: f32) -> Harness {
    serve("corpus_examples/saas", min_answer_confidence, false).await
}

/// The corpus folder `corpus` (relative to the repository) served from a fresh store,
/// with the seeded demo enterprise systems when `enterprise`.
async fn serve(corpus: &str, min_answer_confidence: f32, enterprise: bool) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let corpus_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(corpus);
    let catalogue_path = corpus_dir.join("catalogue.toml");
    let catalogue =
        if catalogue_path.exists() { Catalogue::load(&catalogue_path).unwrap() } else { Catalogue::empty() };
    let corpus = Corpus::load(&corpus_dir).unwrap();
    let store = Store::open(&format!("sqlite://{}/kefu.db", dir.path().display())).await.unwrap();
    let encoder = EncoderHandle::spawn(Box::new(HashedNgramEncoder::new(256)), BatchOptions::default());
    let settings = EngineSettings {
        policy: PolicySettings { min_answer_confidence, ..PolicySettings::default() },
        ..EngineSettings::default()
    };
    let cache = dir.path().join("cache");
    let engine =
        tokio::task::spawn_blocking(move || Engine::build(corpus, &catalogue, encoder, settings, &cache, false))
            .await
            .unwrap()
            .unwrap();
    let mut engine = engine.with_history(Arc::new(store.clone()));
    if enterprise {
        let url = format!("sqlite://{}/demo.db", dir.path().display());
        engine = engine.with_connectors(crate::connectors::demo::demo_connectors(&url).await.unwrap());
    }
    let state = AppState::new(store, ApiSettings::default());
    state.live.set(Arc::new(engine));
    Harness { state, _dir: dir }
}

impl Harness {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let request = Request::builder().method(method).uri(uri).header("content-type", "application/json");
        let request = request.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string()))).unwrap();
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn ask(&self, text: &str, customer: &str, session: &str) -> Value {
        let (status, body) = self
            .call("POST", "/v1/answer", Some(json!({"text": text, "customer_id": customer, "session_id": session})))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

#[tokio::test]
async fn roles_and_queues_come_from_the_deployment() {
    let h = saas(0.5).await;
    let complaint = h.ask("我要投诉你们的客服", "u1", "s1").await;
    assert_eq!(
        (complaint["decision"].as_str(), complaint["intent"].as_str()),
        (Some("handoff"), Some("escalation")),
        "{complaint}"
    );
    assert_eq!(complaint["handoff"]["reason"], "complaint");
    assert_eq!(
        (complaint["handoff"]["priority"].as_str(), complaint["handoff"]["queue"].as_str()),
        (Some("high"), Some("support"))
    );

    let human = h.ask("转人工", "u2", "s2").await;
    assert_eq!(
        (human["intent"].as_str(), human["handoff"]["reason"].as_str()),
        (Some("talk_to_agent"), Some("human_requested")),
        "{human}"
    );

    let bug = h.ask("App 一打开就闪退", "u3", "s3").await;
    assert_eq!(
        (bug["intent"].as_str(), bug["handoff"]["reason"].as_str()),
        (Some("defect_report"), Some("agent_intent")),
        "{bug}"
    );
    assert_eq!(bug["handoff"]["queue"], "engineering");
    let (_, ticket) =
        h.call("GET", &format!("/v1/tickets/{}", bug["handoff"]["ticket_id"].as_str().unwrap()), None).await;
    assert_eq!((ticket["queue"].as_str(), ticket["status"].as_str()), (Some("engineering"), Some("new")));

    let lead = h.ask("企业版多少钱", "u4", "s4").await;
    assert_eq!((lead["decision"].as_str(), lead["lead"].as_bool()), (Some("answer"), Some(true)), "{lead}");

    // A ticket opened by hand without an intent is about the human-request intent, in its queue.
    let (status, manual) = h.call("POST", "/v1/tickets", Some(json!({"customer_id": "u5", "note": "called in"}))).await;
    assert_eq!(
        (status, manual["intent"].as_str(), manual["queue"].as_str()),
        (StatusCode::CREATED, Some("talk_to_agent"), Some("support")),
        "{manual}"
    );
    let (status, err) =
        h.call("POST", "/v1/tickets", Some(json!({"intent": "sso_setup", "queue": "after_sales"}))).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_queue")), "{err}");
}

#[tokio::test]
async fn ticket_status_in_the_deployments_words() {
    let h = saas(0.5).await;
    let bug = h.ask("同步一直失败", "u7", "s7").await;
    let ticket_id = bug["handoff"]["ticket_id"].as_str().unwrap().to_string();
    let (status, _) = h
        .call("POST", &format!("/v1/tickets/{ticket_id}/assign"), Some(json!({"agent": "li", "note": "在查日志"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let follow = h.ask("我的工单怎么样了", "u7", "s8").await;
    let answer = follow["answer"].as_str().unwrap();
    assert!(
        answer.starts_with("查到了：工单 ") && answer.contains(&ticket_id) && answer.contains("在查日志"),
        "{follow}"
    );
    let (status, err) =
        h.call("POST", &format!("/v1/tickets/{ticket_id}/status"), Some(json!({"status": "done"}))).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_status")));
    let (status, err) =
        h.call("POST", &format!("/v1/tickets/{ticket_id}/status"), Some(json!({"status": "closed"}))).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("invalid_transition")));
}

#[tokio::test]
async fn clarifying_questions_numbered_picks_and_the_unhelpful_streak() {
    let h = saas(1.01).await;
    let asked = h.ask("怎么导出数据", "u1", "s1").await;
    assert_eq!(asked["decision"], "clarify", "{asked}");
    assert!(asked["answer"].as_str().unwrap().starts_with("想确认一下，你指的是哪一项？\n1. "), "{asked}");
    let first = asked["options"][0]["intent"].as_str().unwrap().to_string();
    let picked = h.ask("1", "u1", "s1").await;
    assert_eq!(
        (picked["intent"].as_str(), picked["confidence"].as_f64()),
        (Some(first.as_str()), Some(1.0)),
        "{picked}"
    );

    // Two clarifying questions in a row go to a person, in the deployment's words.
    h.ask("发票的事", "u2", "s2").await;
    let again = h.ask("还是发票", "u2", "s2").await;
    assert_eq!(
        (again["decision"].as_str(), again["handoff"]["reason"].as_str()),
        (Some("handoff"), Some("unresolved")),
        "{again}"
    );
    assert_eq!(again["answer"], "好的，已转给云表客服同事，工作时间内一般 10 分钟内回复你。");
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let h = saas(0.5).await;
    for (body, code) in [
        (json!({"text": ""}), "empty_text"),
        (json!({"text": 1}), "invalid_json"),
        (json!({"text": "hi", "scenario": "shop"}), "unknown_scenario"),
    ] {
        let (status, err) = h.call("POST", "/v1/answer", Some(body)).await;
        assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some(code)));
    }
    let (status, err) = h.call("GET", "/v1/tickets?priority=asap", None).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_priority")));
    let (status, _) = h.call("GET", "/v1/nowhere", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_order_question_continues_when_the_order_number_comes() {
    // The demo shop with its seeded systems; every confident enough intent is answered.
    let h = serve("corpus", 0.0, true).await;
    let now = "2026-06-15T10:00:00+08:00";
    let ask = async |text: &str| {
        h.call("POST", "/v1/answer", Some(json!({"text": text, "session_id": "s1", "now": now}))).await.1
    };
    let asked = ask("昨天买的 收货地址填错了").await;
    assert_eq!(
        (asked["decision"].as_str(), asked["intent"].as_str()),
        (Some("clarify"), Some("change_address")),
        "{asked}"
    );
    let answered = ask("订单号12345").await;
    assert_eq!(
        (answered["decision"].as_str(), answered["intent"].as_str()),
        (Some("answer"), Some("change_address")),
        "{answered}"
    );
    assert!(answered["answer"].as_str().unwrap().starts_with("你的订单编号是 12345"), "{answered}");
}
