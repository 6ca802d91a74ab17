//! A real `kefu serve` read by independent clients of the ecosystem it
//! joins: the official Prometheus Python client's parser scrapes `/metrics`
//! while requests are made, and a client posting exactly what Rasa's
//! RasaNLUHttpInterpreter posts checks `/model/parse` against Rasa's
//! published ParseResult schema (tests/fixtures/rasa).

mod common;

use common::{run_client, Server};
use serde_json::{json, Value};

const BOT_KEY: &str = "ecosystem-bot-key-0123456789";
const ADMIN_KEY: &str = "ecosystem-admin-key-0123456789";

/// The value of the sample `name` whose labels include `labels`, summed over the rest (0 when absent).
fn sample(scrape: &Value, name: &str, labels: &[(&str, &str)]) -> f64 {
    let Some(samples) = scrape[name].as_array() else { return 0.0 };
    samples.iter().filter(|s| labels.iter().all(|(k, v)| s[0][*k] == *v)).map(|s| s[1].as_f64().unwrap()).sum()
}

async fn answer(server: &Server, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/answer", server.base))
        .bearer_auth(BOT_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn prometheus_and_rasa_clients_read_kefu() {
    let Some(python) = common::client_python() else { return };
    if !common::model_installed() {
        return;
    }
    let keys = format!("bot:{BOT_KEY},admin:{ADMIN_KEY}");
    let server = Server::start(&[("KEFU_API_KEYS", &keys)]).await;
    let metrics_url = format!("{}/metrics", server.base);
    let scrape = || run_client(&python, "prometheus_scrape.py", &[&metrics_url], &server);

    // Metrics: the counters move by exactly the requests made.
    let before = scrape();
    let mut handoffs = 0;
    for text in ["退货地址在哪", "你们几点上班", "我要投诉，马上转人工", "运费谁出", "我的快递到哪了"]
    {
        let turn = answer(&server, json!({"text": text, "customer_id": "c1001", "channel": "web"})).await;
        handoffs += usize::from(turn["decision"] == "handoff");
    }
    assert!(handoffs >= 1);
    let after = scrape();
    let moved = |name: &str, labels: &[(&str, &str)]| sample(&after, name, labels) - sample(&before, name, labels);
    let answer_route = [("method", "POST"), ("route", "/v1/answer"), ("status", "200")];
    assert_eq!(moved("kefu_http_requests_total", &answer_route), 5.0);
    let timed = [("method", "POST"), ("route", "/v1/answer")];
    assert_eq!(moved("kefu_http_request_duration_seconds_count", &timed), 5.0);
    assert_eq!(moved("kefu_turns_total", &[("channel", "web")]), 5.0);
    assert_eq!(moved("kefu_handoffs_total", &[]), handoffs as f64);
    assert!(moved("kefu_turn_stage_duration_seconds_count", &[("stage", "embed")]) >= 5.0);
    // With a customer id, each of the customer's record sources is timed.
    for source in ["crm", "orders", "after_sales", "history"] {
        assert_eq!(moved("kefu_turn_stage_duration_seconds_count", &[("stage", source)]), 5.0, "{source}");
    }
    assert!(moved("kefu_encoder_batch_texts_count", &[]) >= 1.0);
    assert!(sample(&after, "kefu_tickets_open", &[]) >= handoffs as f64);
    assert_eq!(sample(&after, "kefu_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert_eq!(sample(&after, "kefu_model_info", &[]), 1.0, "one model version served");
    let labels = after.to_string();
    assert!(!labels.contains("c1001") && !labels.contains("退货"), "no customer or text in labels");

    // Rasa: every answer is a ParseResult by Rasa's schema, entities at character offsets.
    let schema = common::repo().join("tests/fixtures/rasa/parse-result.yml");
    let text = "订单号１２３４５昨天买的连衣裙，退货地址在哪";
    let args =
        [server.base.as_str(), BOT_KEY, schema.to_str().unwrap(), text, "我要投诉，马上转人工", "明天北京会下雨吗"];
    let answers = run_client(&python, "rasa_nlu_client.py", &args, &server);
    let first = &answers[0];
    assert_eq!(first["message_id"], "sender-0");
    let chars: Vec<char> = text.chars().collect();
    let mut read: Vec<(String, String, String)> = first["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let (start, end) = (e["start"].as_u64().unwrap() as usize, e["end"].as_u64().unwrap() as usize);
            (
                e["entity"].as_str().unwrap().into(),
                chars[start..end].iter().collect(),
                e["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    read.sort();
    assert_eq!(read[0], ("order_id".into(), "１２３４５".into(), "12345".into()), "{first}");
    assert_eq!(read[1].0, "product", "{first}");
    assert_eq!((read[1].1.as_str(), read[1].2.as_str()), ("连衣裙", "dress"));
    assert_eq!((read[2].0.as_str(), read[2].1.as_str()), ("time", "昨天"), "{first}");
    assert_eq!(answers[1]["decision"], "handoff", "{}", answers[1]);
    assert_eq!(answers[2]["intent"]["name"], "nlu_fallback", "out of scope reads as Rasa's fallback: {}", answers[2]);
    // Nothing was stored: /model/parse is NLU only.
    let after_rasa = scrape();
    assert_eq!(sample(&after_rasa, "kefu_turns_total", &[]), sample(&after, "kefu_turns_total", &[]));
    let parse_route = [("method", "POST"), ("route", "/model/parse"), ("status", "200")];
    assert_eq!(sample(&after_rasa, "kefu_http_requests_total", &parse_route), 3.0);
}
