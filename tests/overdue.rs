//! The real server pushes an overdue hand-off ticket to the SLA webhook once.
//! The server's clock cannot be faked, so the deadline is set to 0 minutes and
//! sweeps to every second; the fake-clock cases live in src/overdue.rs.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use common::{get, model_installed, post, Server};
use serde_json::{json, Value};

/// Bodies the webhook received; the first POST gets a 500 to exercise the retry.
#[derive(Clone, Default)]
struct Hook(Arc<Mutex<Vec<Value>>>);

async fn receive(State(hook): State<Hook>, Json(body): Json<Value>) -> StatusCode {
    let mut seen = hook.0.lock().unwrap();
    seen.push(body);
    if seen.len() == 1 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

#[tokio::test]
async fn overdue_ticket_reaches_the_webhook_once() {
    assert!(model_installed(), "model missing");
    let hook = Hook::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sla?token=s3cret", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/sla", axum::routing::post(receive)).with_state(hook.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let server = Server::start(&[
        ("KEFU_TICKET_SLA_MINUTES", "0"),
        ("KEFU_SLA_WEBHOOK_URL", url.as_str()),
        ("KEFU_SLA_CHECK_INTERVAL_SECS", "1"),
        ("KEFU_SLA_WEBHOOK_BACKOFF_MS", "10"),
    ])
    .await;
    let (status, answer) =
        post(&server.base, "/v1/answer", json!({"text": "给我转人工客服", "customer_id": "c1002"})).await;
    assert_eq!(status, 200, "{answer}");
    let ticket_id = answer["handoff"]["ticket_id"].as_str().expect("a hand-off ticket").to_string();

    let started = Instant::now();
    let delivered = loop {
        let bodies = hook.0.lock().unwrap().clone();
        if bodies.len() >= 2 {
            break bodies;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no delivery; log:\n{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let notice = &delivered[1];
    assert_eq!(notice["event"], "ticket.overdue");
    assert_eq!(notice["ticket_id"], ticket_id.as_str());
    assert_eq!(notice["customer_id"], "c1002");
    assert_eq!(notice["link"], format!("/v1/tickets/{ticket_id}"));
    assert_eq!(delivered[0], delivered[1], "the retry repeats the same notice");

    // A few more sweeps push nothing new, while the list still shows the ticket overdue.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(hook.0.lock().unwrap().len(), 2, "pushed once");
    let (_, list) = get(&server.base, "/v1/tickets?overdue=true").await;
    assert!(list["tickets"].as_array().unwrap().iter().any(|t| t["id"] == ticket_id.as_str()), "{list}");
    let log = server.log_text();
    assert!(log.contains("overdue ticket pushed"), "{log}");
    assert!(!log.contains("s3cret"), "the webhook's token leaked into the log:\n{log}");
}
