//! The router in-process (`app(state).oneshot`) on the second example
//! deployment (corpus_examples/saas), with the hashed n-gram encoder: roles,
//! queues and replies come from that corpus alone, and every conversation
//! rule runs in seconds without the downloaded model.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::{app, Access, ApiSettings, AppState, RouteSpec};
use crate::access::Role;
use crate::corpus::Corpus;
use crate::encoder::hashed::HashedNgramEncoder;
use crate::encoder::{BatchOptions, EncoderHandle};
use crate::engine::{Engine, EngineSettings};
use crate::nlu::slots::Catalogue;
use crate::policy::PolicySettings;

mod channels;
mod ecosystem;
use channels::wechat_demo_account;

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
    serve_with(corpus, min_answer_confidence, enterprise, ApiSettings::default()).await
}

async fn serve_with(corpus: &str, min_answer_confidence: f32, enterprise: bool, settings: ApiSettings) -> Harness {
    let api_settings = settings;
    let dir = tempfile::tempdir().unwrap();
    let corpus_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(corpus);
    let catalogue_path = corpus_dir.join("catalogue.toml");
    let catalogue =
        if catalogue_path.exists() { Catalogue::load(&catalogue_path).unwrap() } else { Catalogue::empty() };
    let corpus = Corpus::load(&corpus_dir).unwrap();
    let store = crate::store::testing::sqlite_store(dir.path()).await;
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
    let state = AppState::new(store, api_settings);
    state.live.set(Arc::new(engine));
    Harness { state, _dir: dir }
}

impl Harness {
    /// A request from a loopback client without credentials (served as admin while no key exists).
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(None, method, uri, body).await
    }

    /// A request with `Authorization: Bearer <token>` when given, from 127.0.0.1.
    async fn call_as(&self, token: Option<&str>, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (status, _, body) = self.send(token, "127.0.0.1", method, uri, body).await;
        (status, body)
    }

    async fn send(
        &self,
        token: Option<&str>,
        client: &str,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let auth = token.map(|t| ("authorization", format!("Bearer {t}")));
        self.send_with(auth.as_slice(), client, method, uri, body).await
    }

    /// [`Harness::send`] with any headers. An event stream's body is not read (it never ends).
    async fn send_with(
        &self,
        headers: &[(&str, String)],
        client: &str,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut request = Request::builder().method(method).uri(uri).header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let client = std::net::SocketAddr::new(client.parse().unwrap(), 40000);
        let request = request
            .extension(axum::extract::ConnectInfo(client))
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        if headers.get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream")) {
            return (status, headers, Value::Null);
        }
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
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
    let (status, err) = h
        .call("POST", "/v1/tickets", Some(json!({"customer_id": "u6", "intent": "sso_setup", "queue": "after_sales"})))
        .await;
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
    // While the agent owns the conversation the bot is silent: the question goes to the agent.
    let follow = h.ask("我的工单怎么样了", "u7", "s8").await;
    assert_eq!((follow["decision"].as_str(), follow["answer"].as_str()), (Some("handoff"), None), "{follow}");
    assert_eq!(
        (follow["handoff"]["reason"].as_str(), follow["handoff"]["ticket_id"].as_str()),
        (Some("agent_active"), Some(ticket_id.as_str()))
    );
    let (status, err) =
        h.call("POST", &format!("/v1/tickets/{ticket_id}/status"), Some(json!({"status": "done"}))).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_status")));
    let (status, err) =
        h.call("POST", &format!("/v1/tickets/{ticket_id}/status"), Some(json!({"status": "closed"}))).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("invalid_transition")));
    // Resolved, the bot answers again, in the deployment's words, with the agent's public note.
    for status in ["in_progress", "resolved"] {
        let (code, _) =
            h.call("POST", &format!("/v1/tickets/{ticket_id}/status"), Some(json!({"status": status}))).await;
        assert_eq!(code, StatusCode::OK);
    }
    let follow = h.ask("我的工单怎么样了", "u7", "s9").await;
    let answer = follow["answer"].as_str().unwrap();
    assert!(
        answer.starts_with("查到了：工单 ") && answer.contains(&ticket_id) && answer.contains("在查日志"),
        "{follow}"
    );
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
async fn a_question_asked_a_third_time_goes_to_a_person() {
    let h = serve("corpus", 0.0, true).await;
    let ask = async |text: &str, session: &str| {
        h.call("POST", "/v1/answer", Some(json!({"text": text, "session_id": session}))).await.1
    };
    let first = ask("你们营业时间是几点到几点", "s1").await;
    assert_eq!(first["decision"], "answer", "{first}");
    let second = ask("几点关门", "s1").await;
    assert_eq!((second["decision"].as_str(), &second["intent"]), (Some("answer"), &first["intent"]), "{second}");
    let third = ask("到底几点下班啊", "s1").await;
    assert_eq!(
        (third["decision"].as_str(), third["handoff"]["reason"].as_str(), &third["intent"]),
        (Some("handoff"), Some("unresolved"), &first["intent"]),
        "{third}"
    );

    // Each message about another order is a new question.
    for order in ["12345", "12301", "11876"] {
        let asked = ask(&format!("订单{order}的快递到哪了"), "s2").await;
        assert_eq!(asked["decision"], "answer", "{asked}");
    }
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

const BOT_KEY: &str = "bot-secret-for-the-role-matrix";
const ADMIN_KEY: &str = "admin-secret-for-the-role-matrix";
const AGENT_PASSWORD: &str = "correct horse battery staple";

/// The demo shop with a bot and an admin key configured, and agent li's
/// account; metrics recorded, as `kefu serve` does by default.
async fn secured() -> Harness {
    crate::telemetry::install();
    let auth = crate::service::auth::AuthSettings {
        api_keys: vec![(Role::Bot, BOT_KEY.into()), (Role::Admin, ADMIN_KEY.into())],
        rate_per_second: 0.0,
        ..Default::default()
    };
    let settings = ApiSettings { auth, channels: wechat_demo_account("http://127.0.0.1:9"), ..ApiSettings::default() };
    let h = serve_with("corpus", 0.5, true, settings).await;
    crate::service::auth::add_agent(&h.state.store, "li", Role::Agent, AGENT_PASSWORD).await.unwrap();
    h
}

impl Harness {
    async fn login(&self, agent: &str, password: &str) -> String {
        let (status, body) =
            self.call("POST", "/v1/auth/login", Some(json!({"agent": agent, "password": password}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// A fresh ticket of customer c1001, assigned to li.
    async fn ticket_of_li(&self) -> String {
        let (status, body) = self
            .call_as(Some(ADMIN_KEY), "POST", "/v1/tickets", Some(json!({"customer_id": "c1001", "note": "致电客户"})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().unwrap().to_string();
        let (status, body) = self
            .call_as(Some(ADMIN_KEY), "POST", &format!("/v1/tickets/{id}/assign"), Some(json!({"agent": "li"})))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        id
    }

    /// A request to `spec`'s route that its callers should see succeed.
    async fn example(&self, spec: &RouteSpec) -> (String, Option<Value>) {
        let trace = || async {
            let (_, body) =
                self.call_as(Some(BOT_KEY), "POST", "/v1/answer", Some(json!({"text": "退货地址在哪"}))).await;
            body["trace_id"].as_str().unwrap().to_string()
        };
        let uri = if spec.path.contains("{account}") {
            // The accounts wechat_demo_account configures.
            let account = match spec.path {
                p if p.contains("wecom") => "kf",
                p if p.contains("gateway") => "app",
                p if p.contains("douyin") => "shop",
                p if p.contains("chatwoot") => "desk",
                _ => "demo",
            };
            spec.path.replace("{account}", account)
        } else if spec.path.contains("{id}") {
            let id =
                if spec.path.starts_with("/v1/customers") { "c1001".to_string() } else { self.ticket_of_li().await };
            spec.path.replace("{id}", &id)
        } else {
            spec.path.to_string()
        };
        let body = match (spec.method.as_str(), spec.path) {
            ("POST", "/v1/auth/login") => Some(json!({"agent": "li", "password": AGENT_PASSWORD})),
            ("POST", "/v1/answer") => Some(json!({"text": "你们几点上班", "customer_id": "c1001"})),
            ("POST", "/v1/feedback") => Some(json!({"trace_id": trace().await, "useful": false})),
            ("POST", "/v1/tickets") => Some(json!({"customer_id": "c1002"})),
            ("POST", "/v1/tickets/{id}/notes") => Some(json!({"note": "已回电"})),
            ("POST", "/v1/tickets/{id}/assign") => Some(json!({"agent": "li"})),
            ("POST", "/v1/tickets/{id}/status") => Some(json!({"status": "in_progress"})),
            ("POST", "/v1/tickets/{id}/reveal") => Some(json!({"fields": ["phone"]})),
            ("POST", "/v1/corrections") => Some(json!({"text": "包裹寄回哪里", "intent": "return_address"})),
            ("POST", "/v1/tickets/{id}/messages") => Some(json!({"text": "您好，我来跟进"})),
            ("POST", "/v1/widget/session") => Some(json!({})),
            ("POST", "/v1/widget/messages") => Some(json!({"text": "退货地址在哪"})),
            ("POST", "/model/parse") => Some(json!({"text": "退货地址在哪", "message_id": "m1"})),
            ("POST", "/v1/customers/{id}/identities") => {
                Some(json!({"channel": "wechat", "account": "demo", "external_id": "o-matrix"}))
            }
            _ => None,
        };
        (uri, body)
    }
}

/// Admin routes of the learning loop that answer `not_ready` in-process,
/// where no trainer is installed: past the access check all the same.
const NEEDS_TRAINER: &[&str] = &["/v1/admin/retrain", "/v1/admin/reload", "/v1/admin/rollback", "/v1/admin/versions"];

#[tokio::test]
async fn role_matrix_every_route_for_every_caller() {
    let h = secured().await;
    let agent_session = h.login("li", AGENT_PASSWORD).await;
    let callers: [(&str, Option<&str>, Option<Role>); 4] = [
        ("no key", None, None),
        ("bot", Some(BOT_KEY), Some(Role::Bot)),
        ("agent", Some(&agent_session), Some(Role::Agent)),
        ("admin", Some(ADMIN_KEY), Some(Role::Admin)),
    ];
    let specs = super::routes(&h.state).specs().to_vec();
    assert!(specs.len() >= 25, "{} routes", specs.len());
    let mut checked = 0;
    for spec in &specs {
        for (who, token, role) in &callers {
            if spec.path == "/v1/auth/logout" && *who == "agent" {
                continue; // would end the session the rest of the matrix uses
            }
            let (uri, body) = h.example(spec).await;
            let (status, answer) = h.call_as(*token, spec.method.as_str(), &uri, body).await;
            let expected = match (spec.access, role) {
                (Access::Public, _) => "2xx",
                // Only the platform's own signature opens a callback.
                (Access::Platform, _) => "platform",
                // Keys and sessions are not a web chat visitor's identity.
                (Access::Visitor, _) => "401",
                (Access::Role(_), None) => "401",
                (Access::Role(needed), Some(role)) if *role < needed => "403",
                (Access::Role(_), Some(_)) => "2xx",
            };
            let ok = match expected {
                "401" => status == StatusCode::UNAUTHORIZED,
                "403" => status == StatusCode::FORBIDDEN && answer["error"]["code"] == "forbidden",
                "platform" => status == StatusCode::FORBIDDEN && answer["error"]["code"] == "bad_signature",
                _ if NEEDS_TRAINER.contains(&spec.path) => answer["error"]["code"] == "not_ready",
                _ => status.is_success(),
            };
            assert!(ok, "{} {} as {who}: expected {expected}, got {status} {answer}", spec.method, spec.path);
            checked += 1;
        }
    }
    // With a visitor token the web chat's routes answer.
    let visitor = h.state.widgets.new_visitor_token();
    let header = [(crate::api::access::VISITOR_HEADER, visitor.clone())];
    let (_, _, turn) =
        h.send_with(&header, "127.0.0.1", "POST", "/v1/widget/messages", Some(json!({"text": "退货地址在哪"}))).await;
    for spec in specs.iter().filter(|s| s.access == Access::Visitor) {
        let body = match spec.path {
            "/v1/widget/feedback" => Some(json!({"trace_id": turn["trace_id"], "useful": true})),
            _ => h.example(spec).await.1,
        };
        let (status, _, answer) = h.send_with(&header, "127.0.0.1", spec.method.as_str(), spec.path, body).await;
        assert!(status.is_success(), "{} {} as a visitor: {status} {answer}", spec.method, spec.path);
        checked += 1;
    }
    println!("role matrix: {} routes x 4 callers and visitors, {checked} requests checked", specs.len());
}

#[tokio::test]
async fn every_route_is_in_the_openapi_document_and_back() {
    let h = saas(0.5).await;
    let document: Value = serde_json::from_str(super::OPENAPI).unwrap();
    assert_eq!(document["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
    let documented: std::collections::BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| ops.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), path.clone())))
        .collect();
    let served: std::collections::BTreeSet<(String, String)> =
        super::routes(&h.state).specs().iter().map(|s| (s.method.to_string(), s.path.to_string())).collect();
    assert_eq!(served, documented, "routes served and documented differ");
}

#[tokio::test]
async fn keys_sessions_and_cookies() {
    let h = secured().await;
    // A wrong key is 401, the right one passes, whatever the client address.
    let (status, body) = h.call_as(Some("nope-not-a-key-at-all"), "GET", "/v1/tickets", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    let (status, _, _) = h.send(Some(ADMIN_KEY), "203.0.113.9", "GET", "/v1/tickets", None).await;
    assert_eq!(status, StatusCode::OK);
    // An agent key made at run time works at once, and stops when revoked.
    let key = crate::service::auth::create_key(&h.state.store, Role::Agent, None).await.unwrap();
    assert_eq!(h.call_as(Some(&key.secret), "GET", "/v1/tickets", None).await.0, StatusCode::OK);
    crate::service::auth::revoke_key(&h.state.store, &key.record.id).await.unwrap();
    assert_eq!(h.call_as(Some(&key.secret), "GET", "/v1/tickets", None).await.0, StatusCode::UNAUTHORIZED);

    // Login sets an HttpOnly SameSite=Strict cookie; the cookie alone authenticates.
    let (status, headers, body) = h
        .send(None, "127.0.0.1", "POST", "/v1/auth/login", Some(json!({"agent": "li", "password": AGENT_PASSWORD})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cookie = headers["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Max-Age="),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let request = Request::get("/v1/auth/me").header("cookie", &pair).body(Body::empty()).unwrap();
    let response = app(h.state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let me: Value =
        serde_json::from_slice(&axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap()).unwrap();
    assert_eq!((me["actor"].as_str(), me["role"].as_str()), (Some("agent:li"), Some("agent")));
    // An agent may not reach admin routes; logout ends the session.
    let token = body["token"].as_str().unwrap();
    assert_eq!(h.call_as(Some(token), "GET", "/v1/audit", None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(h.call_as(Some(token), "POST", "/v1/auth/logout", None).await.0, StatusCode::OK);
    assert_eq!(h.call_as(Some(token), "GET", "/v1/tickets", None).await.0, StatusCode::UNAUTHORIZED);

    // Wrong passwords are throttled, with Retry-After.
    let mut last = (StatusCode::OK, axum::http::HeaderMap::new());
    for _ in 0..6 {
        let (status, headers, _) = h
            .send(
                None,
                "198.51.100.4",
                "POST",
                "/v1/auth/login",
                Some(json!({"agent": "li", "password": "guess-guess"})),
            )
            .await;
        last = (status, headers);
    }
    assert_eq!(last.0, StatusCode::TOO_MANY_REQUESTS);
    assert!(last.1.get("retry-after").is_some());
}

#[tokio::test]
async fn protected_mode_answers_loopback_only() {
    let h = saas(0.5).await;
    assert!(h.state.protected_mode().await.unwrap());
    let (status, _, body) = h.send(None, "127.0.0.1", "GET", "/v1/tickets", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = h.send(None, "::1", "GET", "/v1/tickets", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = h.send(None, "192.168.1.20", "POST", "/v1/answer", Some(json!({"text": "hi"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("protected_mode")));
    let (status, _, _) = h.send(None, "192.168.1.20", "GET", "/healthz", None).await;
    assert_eq!(status, StatusCode::OK, "health needs no key");
    // Through a reverse proxy on this machine the peer is loopback, the client is not.
    for proxied in [("x-forwarded-for", "203.0.113.7".to_string()), ("forwarded", "for=203.0.113.7".to_string())] {
        let (status, _, body) = h.send_with(&[proxied], "127.0.0.1", "GET", "/v1/tickets", None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("protected_mode")));
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_is_throttled_and_protected_apart() {
    let auth = crate::service::auth::AuthSettings { login_max_failures: 2, ..Default::default() };
    let trusted_proxies = "127.0.0.1".parse().unwrap();
    let h = serve_with("corpus", 0.5, true, ApiSettings { auth, trusted_proxies, ..ApiSettings::default() }).await;
    crate::service::auth::add_agent(&h.state.store, "li", Role::Agent, AGENT_PASSWORD).await.unwrap();
    let h = &h;
    let login = |client: &'static str, agent: &'static str, password: &'static str| {
        let headers = [("x-forwarded-for", client.to_string())];
        let body = json!({"agent": agent, "password": password});
        async move { h.send_with(&headers, "127.0.0.1", "POST", "/v1/auth/login", Some(body)).await.0 }
    };
    // One address guessing names and passwords is paused...
    for agent in ["admin", "root"] {
        assert_eq!(login("203.0.113.7", agent, "guess").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login("203.0.113.7", "li", AGENT_PASSWORD).await, StatusCode::TOO_MANY_REQUESTS);
    // ...while an agent at another address, through the same proxy, still logs in.
    assert_eq!(login("198.51.100.8", "li", AGENT_PASSWORD).await, StatusCode::OK);
    // Protected mode serves a local client through the local proxy, and no one else.
    let local = [("x-forwarded-for", "127.0.0.1".to_string())];
    let (status, _, body) = h.send_with(&local, "127.0.0.1", "GET", "/v1/tickets", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let remote = [("x-forwarded-for", "203.0.113.7".to_string())];
    let (status, _, body) = h.send_with(&remote, "127.0.0.1", "GET", "/v1/tickets", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("protected_mode")));
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after() {
    let auth = crate::service::auth::AuthSettings {
        api_keys: vec![(Role::Bot, BOT_KEY.into())],
        rate_per_second: 1.0,
        rate_burst: 3.0,
        ..Default::default()
    };
    let h = serve_with("corpus_examples/saas", 0.5, false, ApiSettings { auth, ..ApiSettings::default() }).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, headers, _) =
            h.send(Some(BOT_KEY), "127.0.0.1", "POST", "/v1/answer", Some(json!({"text": "hello"}))).await;
        statuses.push((status.as_u16(), headers.get("retry-after").is_some()));
    }
    assert_eq!(&statuses[..3], &[(200, false); 3]);
    assert_eq!(statuses[3], (429, true));
}

#[tokio::test]
async fn personal_data_is_masked_revealed_to_the_owner_and_audited() {
    let h = secured().await;
    let li = h.login("li", AGENT_PASSWORD).await;
    let id = h.ticket_of_li().await;
    let (status, ticket) = h.call_as(Some(&li), "GET", &format!("/v1/tickets/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let name = ticket["context"]["customer"]["name"].as_str().unwrap();
    let phone = ticket["context"]["customer"]["phone"].as_str().unwrap();
    assert!(name.chars().skip(1).all(|c| c == '*') && phone.contains("****"), "masked: {name} {phone}");
    let address = ticket["context"]["orders"][0]["address"].as_str().unwrap();
    assert!(address.ends_with("****"), "{address}");

    let (status, revealed) = h
        .call_as(Some(&li), "POST", &format!("/v1/tickets/{id}/reveal"), Some(json!({"fields": ["phone", "address"]})))
        .await;
    assert_eq!(status, StatusCode::OK, "{revealed}");
    let clear_phone = revealed["revealed"]["phone"].as_str().unwrap();
    assert!(clear_phone.len() == 11 && !clear_phone.contains('*'), "{revealed}");
    assert!(!revealed["revealed"]["addresses"][0]["address"].as_str().unwrap().contains('*'));
    assert!(revealed["revealed"].get("name").is_none(), "only what was asked");

    // Another agent, not working the ticket, may not.
    crate::service::auth::add_agent(&h.state.store, "wang", Role::Agent, AGENT_PASSWORD).await.unwrap();
    let wang = h.login("wang", AGENT_PASSWORD).await;
    let (status, body) = h.call_as(Some(&wang), "POST", &format!("/v1/tickets/{id}/reveal"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_assigned_to_you")));
    // Nor may wang take li's ticket.
    let (status, body) = h.call_as(Some(&wang), "POST", &format!("/v1/tickets/{id}/assign"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("already_assigned")));

    let (status, audit) = h.call_as(Some(ADMIN_KEY), "GET", &format!("/v1/audit?ticket_id={id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<(&str, &str, Option<&str>)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap(), e["detail"].as_str()))
        .collect();
    assert!(lines.contains(&("agent:li", "reveal", Some("phone,address"))), "{lines:?}");
    assert!(lines.contains(&("agent:li", "read_ticket", None)), "{lines:?}");
    // The ticket's history names who did what.
    let (_, ticket) = h.call_as(Some(&li), "GET", &format!("/v1/tickets/{id}"), None).await;
    let actors: Vec<&str> = ticket["history"].as_array().unwrap().iter().filter_map(|e| e["actor"].as_str()).collect();
    assert!(actors.iter().all(|a| a.starts_with("key:config-admin-")), "{actors:?}");
}

#[tokio::test]
async fn an_unknown_method_on_a_route_is_405() {
    let h = saas(0.5).await;
    let (status, body) = h.call("PUT", "/v1/answer", Some(json!({"text": "hi"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")));
    assert_eq!(h.call("HEAD", "/healthz", None).await.0, StatusCode::OK);
    assert_eq!(h.call("DELETE", "/v1/nowhere", None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_empty_ticket_is_refused() {
    let h = saas(0.5).await;
    let (status, body) = h.call("POST", "/v1/tickets", Some(json!({}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("missing_customer")));
    let (status, _) = h.call("GET", "/v1/tickets", None).await;
    assert_eq!(status, StatusCode::OK);
}

/// Arbitrary JSON: what a confused or hostile client may send.
fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::from),
        "[a-z_]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let keys = prop_oneof![
            "[a-z_]{1,12}",
            prop::sample::select(vec![
                "text",
                "trace_id",
                "useful",
                "customer_id",
                "session_id",
                "channel",
                "intent",
                "note",
                "status",
                "agent",
                "fields",
                "priority",
                "queue",
                "now",
                "scenario",
                "comment",
                "answer",
                "password",
            ])
            .prop_map(str::to_string),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(keys, inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Request bodies of every POST route, as arbitrary JSON and arbitrary bytes:
/// each gets an answer below 500, a JSON error when it is refused.
#[test]
fn request_bodies_never_fail_the_server() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let h = rt.block_on(serve("corpus", 0.5, true));
    let ticket = rt.block_on(async {
        let (_, t) = h.call("POST", "/v1/tickets", Some(json!({"customer_id": "c1001"}))).await;
        t["id"].as_str().unwrap().to_string()
    });
    let posts: Vec<String> = super::routes(&h.state)
        .specs()
        .iter()
        .filter(|s| s.method == axum::http::Method::POST && !s.path.starts_with("/v1/admin/"))
        .map(|s| s.path.replace("{id}", &ticket))
        .collect();
    let cases: u32 = std::env::var("KEFU_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let bodies = prop_oneof![
        3 => any_json().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ];
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    runner
        .run(&(prop::sample::select(posts.clone()), bodies), |(path, body)| {
            let request = Request::post(path.as_str())
                .header("content-type", "application/json")
                .extension(axum::extract::ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 1))))
                .body(Body::from(body.clone()))
                .unwrap();
            let response = rt.block_on(app(h.state.clone()).oneshot(request)).unwrap();
            let status = response.status();
            let bytes = rt.block_on(axum::body::to_bytes(response.into_body(), 1 << 20)).unwrap();
            prop_assert!(status.as_u16() < 500, "{path} {:?} -> {status} {:?}", String::from_utf8_lossy(&body), bytes);
            if !status.is_success() {
                let error: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                prop_assert!(error["error"]["code"].is_string(), "{path}: {status} without a JSON error");
            }
            Ok(())
        })
        .unwrap();
    println!("fuzz request bodies: {cases} requests over {} routes, 0 server errors", posts.len());
}

// --- The pilot: ownership, live streams and the web chat ---------------------

impl Harness {
    /// The first `n` events of a live stream at `uri`, resuming after `last_event_id` when given.
    async fn events(&self, token: &str, uri: &str, last_event_id: Option<i64>, n: usize) -> Vec<(i64, Value)> {
        use futures_util::StreamExt;
        let mut request = Request::builder().uri(uri).header("authorization", format!("Bearer {token}"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let client = std::net::SocketAddr::from(([127, 0, 0, 1], 40000));
        let request = request.extension(axum::extract::ConnectInfo(client)).body(Body::empty()).unwrap();
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body().into_data_stream();
        let (mut text, mut events) = (String::new(), Vec::new());
        while events.len() < n {
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), body.next()).await;
            text.push_str(&String::from_utf8_lossy(&chunk.expect("an event in time").unwrap().unwrap()));
            while let Some(end) = text.find("\n\n") {
                let frame: String = text.drain(..end + 2).collect();
                let field = |name: &str| frame.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
                if let (Some(id), Some(data)) = (field("id:"), field("data:")) {
                    events.push((id.parse().unwrap(), serde_json::from_str(data).unwrap()));
                }
            }
        }
        events
    }

    /// A ticket of `customer` opened by hand (an admin), unassigned.
    async fn open_ticket(&self, customer: &str) -> String {
        let (status, body) =
            self.call_as(Some(ADMIN_KEY), "POST", "/v1/tickets", Some(json!({"customer_id": customer}))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_string()
    }
}

#[tokio::test]
async fn an_agent_owns_the_conversation_until_it_goes_back_to_the_bot() {
    let h = secured().await;
    crate::service::auth::add_agent(&h.state.store, "wu", Role::Agent, AGENT_PASSWORD).await.unwrap();
    let (li, wu) = (h.login("li", AGENT_PASSWORD).await, h.login("wu", AGENT_PASSWORD).await);
    let id = h.open_ticket("c1002").await;
    let h = &h;
    let ask = |text: &'static str| async move {
        let body = json!({"text": text, "customer_id": "c1002"});
        h.call_as(Some(BOT_KEY), "POST", "/v1/answer", Some(body)).await.1
    };

    // The bot answers until an agent claims the ticket; a second claim is refused.
    assert_ne!(ask("退货地址在哪").await["handoff"]["reason"], "agent_active");
    let (status, claimed) = h.call_as(Some(&li), "POST", &format!("/v1/tickets/{id}/assign"), Some(json!({}))).await;
    assert_eq!((status, claimed["assignee"].as_str()), (StatusCode::OK, Some("li")), "{claimed}");
    let (status, refused) = h.call_as(Some(&wu), "POST", &format!("/v1/tickets/{id}/assign"), Some(json!({}))).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("already_assigned")));

    // Now the customer's message goes to li's ticket, not to the bot.
    let silent = ask("我的快递还没到").await;
    assert_eq!((silent["decision"].as_str(), silent["answer"].as_str()), (Some("handoff"), None), "{silent}");
    assert_eq!(silent["handoff"]["reason"], "agent_active");
    assert_eq!(silent["handoff"]["ticket_id"], id.as_str());
    let (_, ticket) = h.call_as(Some(&li), "GET", &format!("/v1/tickets/{id}"), None).await;
    let last = ticket["conversation"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["role"].as_str(), last["text"].as_str()), (Some("customer"), Some("我的快递还没到")), "{ticket}");

    // Only the owner replies; the reply goes out on the customer's channel and into the conversation.
    let reply = json!({"text": "您好，我来查一下物流"});
    let (status, body) = h.call_as(Some(&wu), "POST", &format!("/v1/tickets/{id}/messages"), Some(reply.clone())).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_assigned_to_you")));
    let (status, sent) = h.call_as(Some(&li), "POST", &format!("/v1/tickets/{id}/messages"), Some(reply)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    assert_eq!((sent["channel"].as_str(), sent["delivery"].as_str()), (Some("web"), Some("sent")));
    let (status, _) =
        h.call_as(Some(&li), "POST", &format!("/v1/tickets/{id}/messages"), Some(json!({"text": " "}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let replies = h.state.store.agent_messages_after(Some("c1002"), None, 0, 10).await.unwrap();
    assert_eq!(
        replies.iter().map(|m| (m.text.as_str(), m.agent.as_deref())).collect::<Vec<_>>(),
        [("您好，我来查一下物流", Some("li"))]
    );

    // A private note stays with the agents; a public one is what the customer reads.
    for (note, public) in [("内部：客户催了三次", false), ("已联系快递加急", true)] {
        let (status, _) = h
            .call_as(
                Some(&li),
                "POST",
                &format!("/v1/tickets/{id}/notes"),
                Some(json!({"note": note, "public": public})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }

    // Handed back, the bot answers again, and the ticket waits in its queue.
    let (status, released) = h.call_as(Some(&li), "POST", &format!("/v1/tickets/{id}/release"), None).await;
    assert_eq!(
        (status, released["status"].as_str(), &released["assignee"]),
        (StatusCode::OK, Some("new"), &Value::Null)
    );
    let progress = ask("我的工单处理得怎么样了").await;
    let answer = progress["answer"].as_str().unwrap_or_default();
    assert!(answer.contains(&id) && answer.contains("已联系快递加急") && !answer.contains("催了三次"), "{progress}");
}

#[tokio::test]
async fn the_live_feed_replays_every_change_after_a_cursor() {
    let h = secured().await;
    let li = h.login("li", AGENT_PASSWORD).await;
    let id = h.open_ticket("c1001").await;
    let cursor = h.state.store.latest_feed_seq().await.unwrap();
    h.call_as(Some(&li), "POST", &format!("/v1/tickets/{id}/assign"), Some(json!({}))).await;
    h.call_as(Some(&li), "POST", &format!("/v1/tickets/{id}/notes"), Some(json!({"note": "已回电", "public": false})))
        .await;
    h.call_as(Some(&li), "POST", &format!("/v1/tickets/{id}/messages"), Some(json!({"text": "您好"}))).await;

    // A client that was away since `cursor` gets the three changes, in order.
    let events = h.events(&li, "/v1/events", Some(cursor), 3).await;
    let kinds: Vec<&str> = events.iter().map(|(_, e)| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["changed", "note", "agent_message"]);
    assert!(events.iter().all(|(_, e)| e["ticket_id"] == id.as_str()));
    assert!(events.windows(2).all(|w| w[0].0 < w[1].0), "ids increase");
    // Resuming after the second one replays only the third, then follows live.
    let resumed = h.events(&li, "/v1/events", Some(events[1].0), 1).await;
    assert_eq!(resumed[0].0, events[2].0);
    let live = {
        let h = &h;
        let follow = h.events(&li, "/v1/events?after=0", Some(events[2].0), 1);
        let change = async {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            h.call_as(Some(&li), "POST", &format!("/v1/tickets/{id}/status"), Some(json!({"status": "in_progress"})))
                .await
        };
        tokio::join!(follow, change).0
    };
    assert_eq!(live[0].1["kind"], "changed", "a change made while listening arrives");
}

#[tokio::test]
async fn the_web_chat_checks_its_tokens_and_refuses_bad_input_clearly() {
    use crate::service::widget::mint_customer_token;
    let settings = ApiSettings {
        widget: super::WidgetSettings {
            customer_token_secret: Some("shop-secret".into()),
            allowed_origins: vec!["https://shop.example".into()],
        },
        ..ApiSettings::default()
    };
    let h = &serve_with("corpus", 0.5, true, settings).await;
    let session = |body: Value| async move { h.call("POST", "/v1/widget/session", Some(body)).await };
    let now = chrono::Utc::now().timestamp();

    let (status, anonymous) = session(json!({})).await;
    assert_eq!((status, anonymous["signed_in"].as_bool()), (StatusCode::OK, Some(false)), "{anonymous}");
    let visitor = anonymous["visitor"].as_str().unwrap().to_string();
    let (_, again) = session(json!({"visitor": visitor})).await;
    assert_eq!(again["visitor"], visitor.as_str(), "a returning visitor keeps their id");

    let good = mint_customer_token("shop-secret", "c1001", now + 600);
    let (status, signed) = session(json!({"visitor": visitor, "customer_token": good})).await;
    assert_eq!((status, signed["signed_in"].as_bool()), (StatusCode::OK, Some(true)), "{signed}");
    for (token, code) in [
        (mint_customer_token("guessed", "c1001", now + 600), "bad_customer_token"),
        (mint_customer_token("shop-secret", "c1001", now - 3600), "expired_customer_token"),
        ("not.a-token".to_string(), "bad_customer_token"),
    ] {
        let (status, body) = session(json!({"customer_token": token})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some(code)), "{body}");
    }

    let as_visitor = |token: String, body: Body| {
        Request::builder()
            .method("POST")
            .uri("/v1/widget/messages")
            .header("content-type", "application/json")
            .header("x-kefu-visitor", token)
            .extension(axum::extract::ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 40000))))
            .body(body)
            .unwrap()
    };
    let call = |request: Request<Body>| async {
        let response = app(h.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
    };
    let huge = json!({"text": "退".repeat(3000)}).to_string();
    let cases = [
        (visitor.clone(), huge, StatusCode::PAYLOAD_TOO_LARGE, "text_too_long"),
        (visitor.clone(), "{\"text\": ".to_string(), StatusCode::BAD_REQUEST, "invalid_json"),
        (visitor.clone(), json!({"text": "  "}).to_string(), StatusCode::BAD_REQUEST, "empty_text"),
        (
            format!("v1.{}.{}", "0".repeat(32), "f".repeat(32)),
            json!({"text": "你好"}).to_string(),
            StatusCode::UNAUTHORIZED,
            "bad_visitor",
        ),
    ];
    for (token, body, status, code) in cases {
        let (got, answer) = call(as_visitor(token, Body::from(body))).await;
        assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{answer}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }

    // A page of an allowed origin may call the chat from the browser; others may not.
    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/v1/widget/messages")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-kefu-visitor")
            .body(Body::empty())
            .unwrap()
    };
    let allowed = app(h.state.clone()).oneshot(preflight("https://shop.example")).await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://shop.example");
    let other = app(h.state.clone()).oneshot(preflight("https://evil.example")).await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // A visitor rates only their own answers.
    let (_, answered) =
        call(as_visitor(visitor.clone(), Body::from(json!({"text": "退货地址在哪"}).to_string()))).await;
    let (_, other) = session(json!({})).await;
    let rate = |token: &str| {
        let body = json!({"trace_id": answered["trace_id"], "useful": false}).to_string();
        let mut request = as_visitor(token.to_string(), Body::from(body));
        *request.uri_mut() = "/v1/widget/feedback".parse().unwrap();
        request
    };
    assert_eq!(call(rate(other["visitor"].as_str().unwrap())).await.0, StatusCode::NOT_FOUND);
    assert_eq!(call(rate(&visitor)).await.0, StatusCode::CREATED);
}
