//! The second example deployment (corpus_examples/saas) served by the real
//! binary and model: hand-off, complaint, an ask for a person, ticket status
//! and a clarifying question all work from that corpus's own intent ids,
//! roles, queues and replies, with none of the demo's.

mod common;

use common::{model_installed, post, Server};
use serde_json::json;

const SAAS: (&str, &str) = ("KEFU_CORPUS_DIR", "corpus_examples/saas");

#[tokio::test(flavor = "multi_thread")]
async fn the_saas_deployment_hands_off_and_answers_by_its_own_roles() {
    if !model_installed() {
        return;
    }
    let server = Server::start(&[SAAS]).await;
    let ask = |text: &'static str, customer: &'static str| {
        let base = server.base.clone();
        async move {
            let (status, body) = post(
                &base,
                "/v1/answer",
                json!({"text": text, "customer_id": customer, "now": "2026-06-15T10:00:00+08:00"}),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let complaint = ask("你们技术支持一直敷衍我，我要正式投诉", "acme-1").await;
    assert_eq!(
        (complaint["decision"].as_str(), complaint["intent"].as_str()),
        (Some("handoff"), Some("escalation")),
        "{complaint}"
    );
    assert_eq!(
        (complaint["handoff"]["reason"].as_str(), complaint["handoff"]["priority"].as_str()),
        (Some("complaint"), Some("high"))
    );

    let human = ask("please put me through to someone on your team", "acme-2").await;
    assert_eq!(
        (human["decision"].as_str(), human["handoff"]["reason"].as_str()),
        (Some("handoff"), Some("human_requested")),
        "{human}"
    );
    assert_eq!(human["intent"], "talk_to_agent");

    let bug = ask("表格保存的时候一直弹出错误", "acme-3").await;
    assert_eq!(
        (bug["intent"].as_str(), bug["handoff"]["queue"].as_str()),
        (Some("defect_report"), Some("engineering")),
        "{bug}"
    );
    let ticket = bug["handoff"]["ticket_id"].as_str().unwrap();
    let (status, _) = post(
        &server.base,
        &format!("/v1/tickets/{ticket}/assign"),
        json!({"agent": "wang", "note": "已复现，正在修复"}),
    )
    .await;
    assert_eq!(status, 200);
    // While the agent works on it the bot stays silent; once the work is done it answers again.
    let silent = ask("我之前报的那个问题处理得怎么样了", "acme-3").await;
    assert_eq!(silent["handoff"]["reason"], "agent_active", "{silent}");
    for status in ["in_progress", "resolved"] {
        let (code, _) = post(&server.base, &format!("/v1/tickets/{ticket}/status"), json!({"status": status})).await;
        assert_eq!(code, 200);
    }
    let status_answer = ask("我之前报的那个问题处理得怎么样了", "acme-3").await;
    assert_eq!(status_answer["intent"], "case_followup", "{status_answer}");
    let text = status_answer["answer"].as_str().unwrap();
    assert!(
        text.starts_with("查到了：工单 ") && text.contains(ticket) && text.contains("已复现，正在修复"),
        "{status_answer}"
    );

    let plain = ask("怎么配置 SAML 单点登录", "acme-4").await;
    assert_eq!((plain["decision"].as_str(), plain["intent"].as_str()), (Some("answer"), Some("sso_setup")), "{plain}");
    let oos = ask("明天北京天气怎么样", "acme-5").await;
    assert_eq!((oos["decision"].as_str(), oos["intent"].as_str()), (Some("clarify"), Some("oos")), "{oos}");
    assert!(oos["answer"].as_str().unwrap().contains("登录和单点登录"), "{oos}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_saas_deployment_asks_which_intent_in_its_own_words() {
    if !model_installed() {
        return;
    }
    // Every scored turn below this confidence is a clarifying question.
    let server = Server::start(&[SAAS, ("KEFU_MIN_ANSWER_CONFIDENCE", "1.0")]).await;
    let (_, asked) = post(&server.base, "/v1/answer", json!({"text": "发票和退款的事", "session_id": "s1"})).await;
    assert_eq!(asked["decision"], "clarify", "{asked}");
    assert!(asked["answer"].as_str().unwrap().starts_with("想确认一下，你指的是哪一项？\n1. "), "{asked}");
    let second = asked["options"][1]["intent"].as_str().unwrap().to_string();
    let (_, picked) = post(&server.base, "/v1/answer", json!({"text": "第二个", "session_id": "s1"})).await;
    assert_eq!(picked["intent"].as_str(), Some(second.as_str()), "{picked}");
}
