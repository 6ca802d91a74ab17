//! The APIs of WeChat, WeCom 微信客服 and Douyin as one loopback fake, for
//! tests in and out of the crate: access tokens; sends (WeChat's
//! customer-service messages, WeCom's send_msg) it records, or fails with the
//! error codes queued in `failures`, or all ("system busy") while `failing`;
//! WeCom's sync_msg serving `kf_inbox` from a cursor; WeCom's transfers;
//! Douyin's private messages and comment replies; a gateway account's
//! callback URL; and Chatwoot's conversations (status, messages listed and
//! posted, toggle_status, which can be made to fail).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

#[derive(Default)]
pub struct FakePlatforms {
    pub failing: AtomicBool,
    pub failures: Mutex<VecDeque<i64>>,
    /// Sends to hold this long before answering, one each (a platform timing out).
    pub stalls: Mutex<VecDeque<std::time::Duration>>,
    pub tokens: AtomicUsize,
    /// The `touser` of every send tried, refused ones too.
    pub attempts: Mutex<Vec<String>>,
    /// The bodies of the sends taken.
    pub sends: Mutex<Vec<Value>>,
    /// Messages WeCom's sync_msg hands out, in order (the cursor is an index).
    pub kf_inbox: Mutex<Vec<Value>>,
    /// The bodies of WeCom's service_state/trans calls.
    pub transfers: Mutex<Vec<Value>>,
    /// What the gateway posted to `/gateway/callback`: timestamp, signature, body.
    pub callbacks: Mutex<Vec<(String, String, String)>>,
    /// Douyin's replies: path, the account's open_id, the access-token header and the body.
    pub douyin: Mutex<Vec<(String, String, String, Value)>>,
    /// Chatwoot conversations' statuses by conversation id (pending when unset).
    pub chatwoot_status: Mutex<HashMap<u64, String>>,
    /// Chatwoot API calls taken: conversation id, `messages` or `toggle_status`,
    /// the `api_access_token` header and the body.
    pub chatwoot: Mutex<Vec<(u64, String, String, Value)>>,
    /// Chatwoot `toggle_status` calls to answer HTTP 503 before taking one.
    pub chatwoot_toggle_failures: AtomicUsize,
}

impl FakePlatforms {
    /// Starts the fake on a free loopback port; its base URL.
    pub async fn start() -> (String, Arc<FakePlatforms>) {
        let fake = Arc::new(FakePlatforms::default());
        let app = axum::Router::new()
            .route("/cgi-bin/token", axum::routing::get(token))
            .route("/cgi-bin/message/custom/send", axum::routing::post(send))
            .route("/cgi-bin/gettoken", axum::routing::get(token))
            .route("/cgi-bin/kf/send_msg", axum::routing::post(send))
            .route("/cgi-bin/kf/sync_msg", axum::routing::post(sync_msg))
            .route("/cgi-bin/kf/service_state/trans", axum::routing::post(transfer))
            .route("/gateway/callback", axum::routing::post(callback))
            .route("/oauth/client_token/", axum::routing::post(douyin_token))
            .route("/im/send/msg/", axum::routing::post(douyin_reply))
            .route("/item/comment/reply/", axum::routing::post(douyin_reply))
            .route("/api/v1/accounts/{account}/conversations/{id}", axum::routing::get(chatwoot_conversation))
            .route(
                "/api/v1/accounts/{account}/conversations/{id}/{call}",
                axum::routing::post(chatwoot_call).get(chatwoot_messages),
            )
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, fake)
    }

    /// The texts sent to `user` (a menu's head text), in order.
    pub fn sent_to(&self, user: &str) -> Vec<String> {
        let sends = self.sends.lock().unwrap();
        let text =
            |s: &Value| s["text"]["content"].as_str().or(s["msgmenu"]["head_content"].as_str()).unwrap().to_string();
        sends.iter().filter(|s| s["touser"] == user).map(text).collect()
    }

    /// The Chatwoot calls made in conversation `id`: the call and its body.
    pub fn chatwoot_calls(&self, id: u64) -> Vec<(String, Value)> {
        let calls = self.chatwoot.lock().unwrap();
        calls.iter().filter(|c| c.0 == id).map(|c| (c.1.clone(), c.3.clone())).collect()
    }

    /// Queues a customer's text for WeCom's sync_msg.
    pub fn kf_customer_says(&self, msgid: &str, user: &str, text: &str) {
        let message = json!({"msgid": msgid, "open_kfid": "wk-test", "external_userid": user, "send_time": 1,
                             "origin": 3, "msgtype": "text", "text": {"content": text}});
        self.kf_inbox.lock().unwrap().push(message);
    }

    /// How many sends each customer received.
    pub fn sends_per_user(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for send in self.sends.lock().unwrap().iter() {
            *counts.entry(send["touser"].as_str().unwrap_or_default().to_string()).or_default() += 1;
        }
        counts
    }

    /// How many customers a send was tried to.
    pub fn attempted_users(&self) -> usize {
        let attempts = self.attempts.lock().unwrap();
        attempts.iter().collect::<std::collections::HashSet<_>>().len()
    }
}

async fn token(State(fake): State<Arc<FakePlatforms>>) -> Json<Value> {
    let n = fake.tokens.fetch_add(1, Ordering::SeqCst);
    Json(json!({"access_token": format!("ACCESS{n}"), "expires_in": 7200}))
}

async fn send(State(fake): State<Arc<FakePlatforms>>, Json(body): Json<Value>) -> Json<Value> {
    fake.attempts.lock().unwrap().push(body["touser"].as_str().unwrap_or_default().to_string());
    let stall = fake.stalls.lock().unwrap().pop_front();
    if let Some(stall) = stall {
        tokio::time::sleep(stall).await;
    }
    let queued = fake.failures.lock().unwrap().pop_front();
    match queued.or_else(|| fake.failing.load(Ordering::SeqCst).then_some(-1)) {
        Some(code) => Json(json!({"errcode": code, "errmsg": "fake failure"})),
        None => {
            fake.sends.lock().unwrap().push(body);
            Json(json!({"errcode": 0, "errmsg": "ok"}))
        }
    }
}

async fn sync_msg(State(fake): State<Arc<FakePlatforms>>, Json(body): Json<Value>) -> Json<Value> {
    let from: usize = body["cursor"].as_str().and_then(|c| c.parse().ok()).unwrap_or(0);
    let inbox = fake.kf_inbox.lock().unwrap();
    let page: Vec<Value> = inbox.iter().skip(from).take(2).cloned().collect();
    let next = from + page.len();
    Json(json!({"errcode": 0, "errmsg": "ok", "next_cursor": next.to_string(),
                "has_more": i64::from(next < inbox.len()), "msg_list": page}))
}

async fn transfer(State(fake): State<Arc<FakePlatforms>>, Json(body): Json<Value>) -> Json<Value> {
    fake.transfers.lock().unwrap().push(body);
    Json(json!({"errcode": 0, "errmsg": "ok"}))
}

async fn callback(
    State(fake): State<Arc<FakePlatforms>>,
    headers: axum::http::HeaderMap,
    body: String,
) -> &'static str {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    fake.callbacks.lock().unwrap().push((header("x-kefu-timestamp"), header("x-kefu-signature"), body));
    "ok"
}

async fn douyin_token(State(fake): State<Arc<FakePlatforms>>) -> Json<Value> {
    let n = fake.tokens.fetch_add(1, Ordering::SeqCst);
    Json(
        json!({"data": {"access_token": format!("DOUYIN{n}"), "expires_in": 7200, "error_code": 0}, "message": "success"}),
    )
}

async fn douyin_reply(
    State(fake): State<Arc<FakePlatforms>>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let open_id = uri.query().unwrap_or_default().trim_start_matches("open_id=").to_string();
    let token = headers.get("access-token").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    fake.douyin.lock().unwrap().push((uri.path().to_string(), open_id, token, body));
    Json(json!({"data": {"error_code": 0, "description": ""}}))
}

async fn chatwoot_conversation(
    State(fake): State<Arc<FakePlatforms>>,
    axum::extract::Path((_, id)): axum::extract::Path<(u64, u64)>,
) -> Json<Value> {
    let status = fake.chatwoot_status.lock().unwrap().get(&id).cloned().unwrap_or_else(|| "pending".into());
    Json(json!({"id": id, "status": status, "meta": {"assignee": null}}))
}

async fn chatwoot_call(
    State(fake): State<Arc<FakePlatforms>>,
    axum::extract::Path((_, id, call)): axum::extract::Path<(u64, u64, String)>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Result<Json<Value>, axum::http::StatusCode> {
    let token = headers.get("api_access_token").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    if call == "toggle_status" {
        let refuse =
            fake.chatwoot_toggle_failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if refuse.is_ok() {
            return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
        }
        let status = body["status"].as_str().unwrap_or_default().to_string();
        fake.chatwoot_status.lock().unwrap().insert(id, status);
    }
    let mut calls = fake.chatwoot.lock().unwrap();
    calls.push((id, call, token, body));
    Ok(Json(json!({"id": calls.len()})))
}

/// A conversation's messages, as Chatwoot lists them: `payload`, oldest first.
async fn chatwoot_messages(
    State(fake): State<Arc<FakePlatforms>>,
    axum::extract::Path((_, id, call)): axum::extract::Path<(u64, u64, String)>,
) -> Result<Json<Value>, axum::http::StatusCode> {
    if call != "messages" {
        return Err(axum::http::StatusCode::NOT_FOUND);
    }
    let calls = fake.chatwoot.lock().unwrap();
    let listed: Vec<Value> = calls
        .iter()
        .filter(|c| c.0 == id && c.1 == "messages")
        .map(|c| json!({"content": c.3["content"], "private": c.3["private"].as_bool().unwrap_or(false)}))
        .collect();
    Ok(Json(json!({"meta": {}, "payload": listed})))
}
