//! Conversations over HTTP: one history per customer across channels, a
//! clarifying question answered by its number, and unhelpful turns (clarify,
//! out of scope, answers marked not useful) that hand off on the second in a row.

mod common;

use common::{get, post, Server};
use serde_json::{json, Value};

async fn ask(base: &str, body: Value) -> Value {
    let (status, answer) = post(base, "/v1/answer", body).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

#[tokio::test]
async fn conversations() {
    if !common::model_installed() {
        return;
    }
    // One server for every scenario: each uses its own customer or session.
    let server = Server::start(&[]).await;
    let base = server.base.as_str();
    one_history_across_channels(base).await;
    a_clarifying_question_is_answered_by_number(base).await;
    two_unhelpful_turns_in_a_row_hand_off(base).await;
}

async fn one_history_across_channels(base: &str) {
    // The customer asks on WeChat ...
    let first = ask(
        base,
        json!({"text": "订单 23456 到哪了", "customer_id": "c1002", "session_id": "wx-1", "channel": "wechat"}),
    )
    .await;
    assert_eq!(
        (first["intent"].as_str(), first["slots"]["order_id"].as_str()),
        (Some("order_tracking"), Some("23456")),
        "{first}"
    );
    // ... and goes on in the app, in a new session: the order carries over.
    let second =
        ask(base, json!({"text": "那能改地址吗", "customer_id": "c1002", "session_id": "app-7", "channel": "app"}))
            .await;
    assert_eq!(second["intent"], "change_address", "{second}");
    assert_eq!(second["slots"]["order_id"], "23456", "{second}");
    let third =
        ask(base, json!({"text": "还是转人工吧", "customer_id": "c1002", "session_id": "app-7", "channel": "app"}))
            .await;
    assert_eq!(third["decision"], "handoff", "{third}");

    let (status, history) = get(base, "/v1/customers/c1002/conversation").await;
    assert_eq!(status, 200, "{history}");
    let lines = history["conversation"].as_array().unwrap();
    let customer_lines: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| l["role"] == "customer")
        .map(|l| (l["channel"].as_str().unwrap(), l["text"].as_str().unwrap()))
        .collect();
    assert_eq!(customer_lines, [("wechat", "订单 23456 到哪了"), ("app", "那能改地址吗"), ("app", "还是转人工吧")]);

    // The agent's ticket holds the same one history.
    let ticket_id = third["handoff"]["ticket_id"].as_str().unwrap();
    let (_, ticket) = get(base, &format!("/v1/tickets/{ticket_id}")).await;
    let channels: Vec<&str> = ticket["conversation"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["role"] == "customer")
        .map(|l| l["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["wechat", "app", "app"], "{ticket}");
}

async fn a_clarifying_question_is_answered_by_number(base: &str) {
    // Vague questions: at least one of them must get a numbered clarifying question.
    let vague = ["那个东西怎么弄", "这个怎么搞", "我想问问那个事", "东西的问题", "帮我弄一下"];
    let mut clarified = None;
    for (n, text) in vague.iter().enumerate() {
        let session = format!("vague-{n}");
        let answer = ask(base, json!({"text": text, "session_id": session})).await;
        if answer["decision"] == "clarify" && answer["options"].as_array().is_some_and(|o| o.len() >= 2) {
            clarified = Some((session, answer));
            break;
        }
    }
    let (session, question) = clarified.expect("none of the vague questions got a numbered clarifying question");
    let second = &question["options"][1];
    assert_eq!(second["number"], 2);
    assert!(
        question["answer"].as_str().unwrap().contains(&format!("2. {}", second["title"].as_str().unwrap())),
        "{question}"
    );

    let reply = ask(base, json!({"text": "2", "session_id": session})).await;
    assert_eq!(reply["intent"], second["intent"], "{reply}");
    assert_ne!(reply["decision"], "clarify", "{reply}");
    assert_eq!(reply["confidence"], 1.0, "the customer chose the intent: {reply}");
}

async fn two_unhelpful_turns_in_a_row_hand_off(base: &str) {
    // Out of scope twice in a row.
    let first = ask(base, json!({"text": "今天股票涨了吗", "session_id": "oos-1"})).await;
    assert_eq!((first["decision"].as_str(), first["intent"].as_str()), (Some("clarify"), Some("oos")), "{first}");
    let second = ask(base, json!({"text": "你会写诗吗", "session_id": "oos-1"})).await;
    assert_eq!(
        (second["decision"].as_str(), second["handoff"]["reason"].as_str()),
        (Some("handoff"), Some("unresolved")),
        "{second}"
    );

    // An answer marked not useful, then a clarify.
    let answered = ask(base, json!({"text": "退货地址是哪里", "session_id": "fb-1"})).await;
    assert_eq!(answered["decision"], "answer", "{answered}");
    let (status, _) =
        post(base, "/v1/feedback", json!({"trace_id": answered["trace_id"], "useful": false, "comment": "地址不对"}))
            .await;
    assert_eq!(status, 201);
    let next = ask(base, json!({"text": "今天股票涨了吗", "session_id": "fb-1"})).await;
    assert_eq!(
        (next["decision"].as_str(), next["handoff"]["reason"].as_str()),
        (Some("handoff"), Some("unresolved")),
        "{next}"
    );

    // Two answers marked not useful: the next turn goes to a person whatever it asks.
    for text in ["退货地址是哪里", "退货要寄到哪"] {
        let answered = ask(base, json!({"text": text, "session_id": "fb-2"})).await;
        assert_eq!(answered["decision"], "answer", "{answered}");
        post(base, "/v1/feedback", json!({"trace_id": answered["trace_id"], "useful": false})).await;
    }
    let third = ask(base, json!({"text": "退货地址到底是哪", "session_id": "fb-2"})).await;
    assert_eq!(third["decision"], "handoff", "{third}");
}
