//! Rasa's `/model/parse` and the Prometheus `/metrics`, in process (the
//! independent clients of both run against a real server in tests/ecosystem.rs).

use axum::http::StatusCode;
use serde_json::json;

use super::{secured, BOT_KEY};

#[tokio::test]
async fn rasa_parse_answers_the_parse_result_shape_with_kefus_extras() {
    let h = secured().await;
    // Rasa's NLU client posts the token in the body; Rasa's own server takes `?token=`.
    let text = "订单号１２３４５昨天买的连衣裙，退货地址在哪";
    let body = json!({"token": BOT_KEY, "text": text, "message_id": "sender-1", "now": "2026-06-15T10:00:00+08:00"});
    let (status, parsed) = h.call_as(None, "POST", "/model/parse", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{parsed}");
    assert_eq!((parsed["text"].as_str(), parsed["message_id"].as_str()), (Some(text), Some("sender-1")));
    let intent = &parsed["intent"];
    assert_eq!(intent, &parsed["intent_ranking"][0], "the chosen intent ranks first: {parsed}");
    assert!(intent["name"].is_string() && intent["confidence"].as_f64().is_some_and(|c| (0.0..=1.0).contains(&c)));
    let names: Vec<&str> =
        parsed["intent_ranking"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(
        names.len(),
        names.iter().collect::<std::collections::HashSet<_>>().len(),
        "each intent once: {names:?}"
    );
    // Entities carry character offsets into the text as sent.
    let chars: Vec<char> = text.chars().collect();
    let entities = parsed["entities"].as_array().unwrap();
    let surface = |entity: &str| {
        let e = entities.iter().find(|e| e["entity"] == entity).unwrap_or_else(|| panic!("no {entity}: {parsed}"));
        assert_eq!(e["extractor"], "kefu");
        let (start, end) = (e["start"].as_u64().unwrap() as usize, e["end"].as_u64().unwrap() as usize);
        (chars[start..end].iter().collect::<String>(), e["value"].as_str().unwrap().to_string())
    };
    assert_eq!(surface("order_id"), ("１２３４５".to_string(), "12345".to_string()));
    assert_eq!(surface("time"), ("昨天".to_string(), "2026-06-14".to_string()));
    assert_eq!(surface("product"), ("连衣裙".to_string(), "dress".to_string()));
    assert!(parsed["decision"].is_string() && parsed.get("answer").is_some(), "{parsed}");

    // Out of scope reads as Rasa's fallback intent; a hand-off rides along.
    let (_, weather) = h
        .call_as(None, "POST", &format!("/model/parse?token={BOT_KEY}"), Some(json!({"text": "明天火星上下雨吗"})))
        .await;
    let ranked = weather["intent_ranking"].as_array().unwrap();
    assert!(ranked.iter().all(|i| i["name"] != "oos"), "kefu's own out-of-scope id never shows: {weather}");
    let (_, angry) =
        h.call_as(Some(BOT_KEY), "POST", "/model/parse", Some(json!({"text": "我要投诉，马上转人工"}))).await;
    assert_eq!(angry["decision"], "handoff", "{angry}");
    assert!(angry["handoff"]["reason"].is_string(), "{angry}");
    // No key, or a wrong one: refused as Rasa's server would.
    let (status, _) = h.call_as(None, "POST", "/model/parse", Some(json!({"text": "hi"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = h.call_as(None, "POST", "/model/parse", Some(json!({"text": "hi", "token": "nope"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, err) = h.call_as(Some(BOT_KEY), "POST", "/model/parse", Some(json!({"message_id": "x"}))).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_json")));
}

#[tokio::test]
async fn metrics_count_requests_and_turns_without_personal_data() {
    let h = secured().await;
    for text in ["退货地址在哪", "我要投诉，马上转人工"] {
        let body = json!({"text": text, "customer_id": "c1001", "channel": "web"});
        let (status, _) = h.call_as(Some(BOT_KEY), "POST", "/v1/answer", Some(body)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let request = axum::http::Request::get("/metrics").body(axum::body::Body::empty()).unwrap();
    let response = tower::ServiceExt::oneshot(crate::api::app(h.state.clone()), request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(axum::body::to_bytes(response.into_body(), 1 << 22).await.unwrap().to_vec()).unwrap();
    for needle in [
        r#"kefu_http_requests_total{method="POST",route="/v1/answer",status="200"}"#,
        "kefu_http_request_duration_seconds_bucket{",
        r#"kefu_handoffs_total{reason="#,
        r#"kefu_turn_stage_duration_seconds_count{stage="embed"}"#,
        "kefu_encoder_batch_texts_count",
        r#"kefu_tickets_open{queue="#,
        "kefu_build_info{version=",
        "kefu_model_info{version=",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(text.contains(r#"channel="web""#) && text.contains("kefu_turns_total{"), "{text}");
    for private in ["c1001", "退货", "13812345678"] {
        assert!(!text.contains(private), "{private} in the exposition");
    }
}
