//! Acknowledged means stored: a server killed with SIGKILL in the middle of a
//! burst of writes keeps every turn and ticket it answered 200 for.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{get, post, Server};
use serde_json::json;

const CLIENTS: usize = 8;

/// Messages with hand-offs mixed in, so tickets are written too.
const MESSAGES: [&str; 6] =
    ["快递到哪了", "我要投诉你们的客服", "转人工", "退货地址是哪里", "冰箱坏了不制冷", "你们几点上班"];

/// The trace id of a turn the server acknowledged, and its hand-off ticket id.
type Acknowledged = (String, Option<String>);

#[tokio::test]
async fn sigkill_during_a_burst_loses_no_acknowledged_turn_or_ticket() {
    if !common::model_installed() {
        return;
    }
    let mut server = Server::start(&[]).await;
    let acknowledged: Arc<Mutex<Vec<Acknowledged>>> = Arc::default();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let mut burst = Vec::new();
    for c in 0..CLIENTS {
        let (client, base, acknowledged) = (client.clone(), server.base.clone(), acknowledged.clone());
        burst.push(tokio::spawn(async move {
            for n in 0.. {
                let body = json!({"text": MESSAGES[(c + n) % MESSAGES.len()], "session_id": format!("burst-{c}"), "customer_id": "c1001", "channel": "app"});
                let Ok(response) = client.post(format!("{base}/v1/answer")).json(&body).send().await else { break };
                if response.status() != 200 {
                    continue;
                }
                let Ok(answer) = response.json::<serde_json::Value>().await else { break };
                let ticket = answer["handoff"]["ticket_id"].as_str().map(str::to_string);
                acknowledged.lock().unwrap().push((answer["trace_id"].as_str().unwrap().to_string(), ticket));
            }
        }));
    }
    // Let the burst get going, then kill the server mid-write.
    while acknowledged.lock().unwrap().len() < 40 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    for client in burst {
        client.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let tickets: Vec<&String> = acknowledged.iter().filter_map(|(_, t)| t.as_ref()).collect();
    assert!(!tickets.is_empty(), "the burst opened no ticket");

    server.restart().await;
    for (trace_id, _) in &acknowledged {
        let (status, body) = post(&server.base, "/v1/feedback", json!({"trace_id": trace_id, "useful": true})).await;
        assert_eq!(status, 201, "acknowledged turn {trace_id} was lost: {body}");
    }
    for ticket in &tickets {
        let (status, body) = get(&server.base, &format!("/v1/tickets/{ticket}")).await;
        assert_eq!(status, 200, "acknowledged ticket {ticket} was lost: {body}");
        assert!(!body["conversation"].as_array().unwrap().is_empty(), "{body}");
    }
    eprintln!("after SIGKILL: {} acknowledged turns and {} tickets all present", acknowledged.len(), tickets.len());
}
