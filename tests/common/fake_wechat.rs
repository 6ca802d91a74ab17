//! WeChat's API as a loopback fake, for tests in and out of the crate:
//! access tokens, and customer-service sends it records, or fails with the
//! error codes queued in `failures`, or all ("system busy") while `failing`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

#[derive(Default)]
pub struct FakeWechat {
    pub failing: AtomicBool,
    pub failures: Mutex<VecDeque<i64>>,
    pub tokens: AtomicUsize,
    /// The `touser` of every send tried, refused ones too.
    pub attempts: Mutex<Vec<String>>,
    /// The bodies of the sends taken.
    pub sends: Mutex<Vec<Value>>,
}

impl FakeWechat {
    /// Starts the fake on a free loopback port; its base URL.
    pub async fn start() -> (String, Arc<FakeWechat>) {
        let fake = Arc::new(FakeWechat::default());
        let app = axum::Router::new()
            .route("/cgi-bin/token", axum::routing::get(token))
            .route("/cgi-bin/message/custom/send", axum::routing::post(send))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, fake)
    }

    /// The texts sent to `openid`, in order.
    pub fn sent_to(&self, openid: &str) -> Vec<String> {
        let sends = self.sends.lock().unwrap();
        sends.iter().filter(|s| s["touser"] == openid).map(|s| s["text"]["content"].as_str().unwrap().into()).collect()
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

async fn token(State(fake): State<Arc<FakeWechat>>) -> Json<Value> {
    let n = fake.tokens.fetch_add(1, Ordering::SeqCst);
    Json(json!({"access_token": format!("ACCESS{n}"), "expires_in": 7200}))
}

async fn send(State(fake): State<Arc<FakeWechat>>, Json(body): Json<Value>) -> Json<Value> {
    fake.attempts.lock().unwrap().push(body["touser"].as_str().unwrap_or_default().to_string());
    let queued = fake.failures.lock().unwrap().pop_front();
    match queued.or_else(|| fake.failing.load(Ordering::SeqCst).then_some(-1)) {
        Some(code) => Json(json!({"errcode": code, "errmsg": "fake failure"})),
        None => {
            fake.sends.lock().unwrap().push(body);
            Json(json!({"errcode": 0, "errmsg": "ok"}))
        }
    }
}
