//! Analytics against the real server: answers, clarifies and hand-offs in two
//! channels (with paraphrases of one question), feedback and a correction;
//! then `/v1/stats`, `/v1/optimise`, the CSV export and `kefu stats` must
//! agree with what the server answered.

mod common;

use std::collections::BTreeMap;

use common::{get, model_installed, post, run_kefu, Server};
use serde_json::{json, Value};

const NOW: &str = "2026-06-15T10:00:00+08:00";

/// Paraphrases of "where do I send a return?"; the first is asked twice.
const RETURN_QUESTIONS: [&str; 4] = ["退货地址在哪", "退货地址在哪", "退货寄到哪个地址", "退货的地址是哪里"];

struct Sent {
    trace_id: String,
    channel: &'static str,
    decision: String,
    intent: String,
    reason: Option<String>,
}

async fn ask(base: &str, text: &str, channel: &'static str) -> Sent {
    let (status, r) = post(base, "/v1/answer", json!({"text": text, "channel": channel, "now": NOW})).await;
    assert_eq!(status, 200, "{text}: {r}");
    Sent {
        trace_id: r["trace_id"].as_str().unwrap().to_string(),
        channel,
        decision: r["decision"].as_str().unwrap().to_string(),
        intent: r["intent"].as_str().unwrap().to_string(),
        reason: r["handoff"]["reason"].as_str().map(str::to_string),
    }
}

fn count(sent: &[Sent], channel: Option<&str>, decision: Option<&str>) -> u64 {
    sent.iter().filter(|s| channel.is_none_or(|c| s.channel == c) && decision.is_none_or(|d| s.decision == d)).count()
        as u64
}

#[tokio::test]
async fn stats_optimise_queue_and_export_agree_with_the_answers() {
    assert!(model_installed(), "model missing");
    let server = Server::start(&[]).await;
    let base = server.base.as_str();

    let mut sent = Vec::new();
    for text in RETURN_QUESTIONS {
        sent.push(ask(base, text, "web").await);
    }
    sent.push(ask(base, "家里冰箱突然不制冷了", "web").await);
    for text in
        ["我要投诉你们的送货员 态度恶劣", "帮我写一首关于春天的诗", "这个沙发多少钱 有没有优惠", "别跟我扯了 转人工"]
    {
        sent.push(ask(base, text, "app").await);
    }
    for s in &sent[..4] {
        assert_eq!(
            (s.decision.as_str(), s.intent.as_str()),
            ("answer", "return_address"),
            "the paraphrases must be answered alike for this test"
        );
    }
    assert!(
        sent.iter().any(|s| s.decision == "clarify") && sent.iter().any(|s| s.decision == "handoff"),
        "a mix of decisions"
    );

    // Feedback: one return answer not useful (twice), one useful; the price answer not useful, then corrected.
    let (not_useful, useful, price) = (&sent[2], &sent[0], &sent[7]);
    for (trace, ok, comment) in [
        (&not_useful.trace_id, false, Some("地址写得不清楚")),
        (&not_useful.trace_id, false, None),
        (&useful.trace_id, true, None),
        (&price.trace_id, false, Some("没回答价格")),
    ] {
        let (status, body) =
            post(base, "/v1/feedback", json!({"trace_id": trace, "useful": ok, "comment": comment})).await;
        assert_eq!(status, 201, "{body}");
    }
    let corrected_to = if price.intent == "stock_availability" { "price_inquiry" } else { "stock_availability" };
    let (status, body) =
        post(base, "/v1/corrections", json!({"trace_id": price.trace_id, "intent": corrected_to})).await;
    assert_eq!(status, 201, "{body}");

    // The report.
    let (status, stats) = get(base, "/v1/stats").await;
    assert_eq!(status, 200, "{stats}");
    let n = sent.len() as u64;
    assert_eq!(stats["turns"], n, "{stats}");
    for (key, rate, decision) in [
        ("answered", "auto_answer_rate", "answer"),
        ("clarified", "clarify_rate", "clarify"),
        ("handed_off", "handoff_rate", "handoff"),
    ] {
        let expected = count(&sent, None, Some(decision));
        assert_eq!(stats[key], expected, "{key}: {stats}");
        assert!((stats[rate].as_f64().unwrap() - expected as f64 / n as f64).abs() < 1e-9, "{rate}: {stats}");
    }
    let channels: BTreeMap<&str, &Value> =
        stats["channels"].as_array().unwrap().iter().map(|c| (c["channel"].as_str().unwrap(), c)).collect();
    assert_eq!(channels.keys().copied().collect::<Vec<_>>(), ["app", "web"]);
    for (channel, c) in &channels {
        assert_eq!(c["turns"], count(&sent, Some(channel), None), "{channel}: {c}");
        assert_eq!(c["answered"], count(&sent, Some(channel), Some("answer")), "{channel}: {c}");
        assert_eq!(c["handed_off"], count(&sent, Some(channel), Some("handoff")), "{channel}: {c}");
        assert!(c["latency_ms_p50"].as_f64().unwrap() > 0.0, "{c}");
    }
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for reason in sent.iter().filter_map(|s| s.reason.clone()) {
        *reasons.entry(reason).or_default() += 1;
    }
    let reported: BTreeMap<String, u64> = stats["handoff_by_reason"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["reason"].as_str().unwrap().to_string(), r["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(reported, reasons, "{stats}");
    let latency = &stats["latency_ms"];
    assert!(
        latency["p50"].as_f64().unwrap() <= latency["p90"].as_f64().unwrap()
            && latency["p90"].as_f64().unwrap() <= latency["p99"].as_f64().unwrap(),
        "{latency}"
    );

    // The paraphrases form one group, the most asked.
    let top = &stats["top_questions"][0];
    assert_eq!(
        (top["count"].as_u64(), top["intent"].as_str(), top["representative"].as_str()),
        (Some(4), Some("return_address"), Some("退货地址在哪")),
        "{stats}"
    );
    let examples: Vec<&str> = top["examples"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert_eq!(examples.len(), 3, "{top}");
    assert!(RETURN_QUESTIONS.iter().skip(1).all(|q| examples.contains(q)), "{top}");
    let grouped: u64 = stats["top_questions"].as_array().unwrap().iter().map(|g| g["count"].as_u64().unwrap()).sum();
    assert_eq!(grouped, n, "every turn is in one group: {stats}");

    // Answers marked not useful, and corrections per intent.
    let not_useful_rows: BTreeMap<&str, &Value> =
        stats["not_useful"].as_array().unwrap().iter().map(|r| (r["intent"].as_str().unwrap(), r)).collect();
    let returns = not_useful_rows["return_address"];
    assert_eq!((returns["not_useful"].as_u64(), returns["rated"].as_u64()), (Some(2), Some(3)), "{returns}");
    assert_eq!(returns["comments"], json!(["地址写得不清楚"]));
    assert!(returns["answer"].as_str().unwrap().contains("杭州"), "{returns}");
    assert_eq!(not_useful_rows[price.intent.as_str()]["not_useful"], 1);
    assert_eq!(stats["corrections_total"], 1);
    let corrections: BTreeMap<&str, (u64, u64)> = stats["corrections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["intent"].as_str().unwrap(),
                (c["corrected_to"].as_u64().unwrap(), c["corrected_from"].as_u64().unwrap()),
            )
        })
        .collect();
    assert_eq!(corrections, BTreeMap::from([(corrected_to, (1, 0)), (price.intent.as_str(), (0, 1))]), "{stats}");

    // One channel only.
    let (status, app) = get(base, "/v1/stats?channel=app").await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(
        (app["turns"].as_u64(), app["channel"].as_str()),
        (Some(count(&sent, Some("app"), None)), Some("app")),
        "{app}"
    );
    assert_eq!(app["channels"].as_array().unwrap().len(), 1);

    // The "to optimise" queue: the return answer, not the corrected price answer.
    let (status, queue) = get(base, "/v1/optimise").await;
    assert_eq!(status, 200, "{queue}");
    assert_eq!((queue["turns"].as_u64(), queue["reports"].as_u64()), (Some(1), Some(2)), "{queue}");
    let intent = &queue["intents"][0];
    assert_eq!(intent["intent"], "return_address", "{queue}");
    let item = &intent["items"][0];
    assert_eq!(
        (item["trace_id"].as_str(), item["text"].as_str(), item["reports"].as_u64()),
        (Some(not_useful.trace_id.as_str()), Some("退货寄到哪个地址"), Some(2)),
        "{item}"
    );
    assert_eq!(item["comments"], json!(["地址写得不清楚"]));
    let (_, filtered) = get(base, "/v1/optimise?intent=invoice").await;
    assert_eq!(filtered["turns"], 0, "{filtered}");

    // The CSV export holds the same totals.
    let response = reqwest::get(format!("{base}/v1/stats/export?format=csv")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let body = response.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), kefu::analytics::CSV_HEADER);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a well-formed CSV row")).collect();
    let cell = |section: &str, key: &str, channel: &str, column: usize| -> String {
        rows.iter()
            .find(|r| &r[0] == section && &r[1] == key && &r[2] == channel)
            .map(|r| r[column].to_string())
            .unwrap_or_else(|| panic!("no {section},{key},{channel} in\n{body}"))
    };
    assert_eq!(cell("totals", "turns", "", 4), n.to_string());
    assert_eq!(cell("totals", "handed_off", "", 4), stats["handed_off"].to_string());
    assert_eq!(cell("channel", "turns", "web", 4), count(&sent, Some("web"), None).to_string());
    assert_eq!(cell("top_question", "1", "", 7), "退货地址在哪");
    let channel_turns: u64 =
        rows.iter().filter(|r| &r[0] == "channel" && &r[1] == "turns").map(|r| r[4].parse::<u64>().unwrap()).sum();
    assert_eq!(channel_turns, n);

    // The CLI reads the same database and reports the same figures.
    let url = format!("sqlite://{}", server.db_path().display());
    let out = server.dir.path().join("stats.json");
    let run = run_kefu(&["--database-url", &url, "stats", "--out", out.to_str().unwrap()]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains(&format!("{n} turns")),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let cli = common::read_json(&out);
    for key in ["turns", "answered", "clarified", "handed_off", "corrections_total"] {
        assert_eq!(cli[key], stats[key], "{key}");
    }
    assert_eq!(cli["top_questions"][0], stats["top_questions"][0]);
}

#[tokio::test]
async fn bad_analytics_queries_get_a_400() {
    assert!(model_installed(), "model missing");
    let server = Server::start(&[]).await;
    for path in [
        "/v1/stats?from=last%20week",
        "/v1/stats?from=2026-06-15&to=2026-06-01",
        "/v1/stats?top=0",
        "/v1/stats?top=many",
        "/v1/stats?channel=a%20b",
        "/v1/stats?format=csv",
        "/v1/stats/export?format=xml",
        "/v1/optimise?to=tomorrow",
    ] {
        let (status, body) = get(&server.base, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string(), "{path}: {body}");
    }
    // An empty database gives zeros and nulls, not errors.
    let (status, stats) = get(&server.base, "/v1/stats?from=2026-06-01&to=2026-06-07").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!((stats["turns"].as_u64(), stats["auto_answer_rate"].is_null()), (Some(0), true), "{stats}");
    let (status, json_export) = get(&server.base, "/v1/stats/export?format=json&from=2026-06-01&to=2026-06-07").await;
    assert_eq!((status, &json_export["turns"]), (200, &json!(0)));
    let (status, queue) = get(&server.base, "/v1/optimise").await;
    assert_eq!((status, queue["turns"].as_u64()), (200, Some(0)));
}
