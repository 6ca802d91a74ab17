//! Customer profiles over real HTTP on the seeded demo systems: tags and
//! agent hints in /v1/answer, priority and profile on hand-off tickets, and
//! `ticket_status` answered from the customer's own tickets.

mod common;

use common::{get, model_installed, post, Server};
use serde_json::{json, Value};

const NOW: &str = "2026-06-15T10:00:00+08:00";

async fn ask(base: &str, body: Value) -> Value {
    let (status, r) = post(base, "/v1/answer", body.clone()).await;
    assert_eq!(status, 200, "{body}: {r}");
    r
}

fn tags(profile: &Value) -> Vec<&str> {
    profile["tags"].as_array().expect("tags").iter().filter_map(Value::as_str).collect()
}

fn hints(r: &Value) -> Vec<&str> {
    r["agent_hints"].as_array().expect("agent_hints").iter().filter_map(Value::as_str).collect()
}

#[tokio::test]
async fn profiles_tags_hints_priority_and_ticket_status() {
    assert!(model_installed(), "model missing");
    let server = Server::start(&[]).await;
    let base = server.base.as_str();

    // c1001: a VIP whose refrigerator was repaired twice in 90 days.
    let r = ask(base, json!({"text": "退货地址在哪", "customer_id": "c1001", "now": NOW})).await;
    let profile = &r["profile"];
    assert_eq!(tags(profile), ["vip", "frequent_after_sales"], "{r}");
    assert_eq!((profile["name"].as_str(), profile["phone"].as_str()), (Some("张*"), Some("138****5678")), "{profile}");
    assert!(profile["spend_12m_cny"].as_f64().unwrap() > 10_000.0, "{profile}");
    assert_eq!(profile["after_sales_contacts_90d"], 2, "{profile}");
    assert_eq!(profile["last_repair"]["product"], "refrigerator", "{profile}");
    assert!(!profile["recent_orders"].as_array().unwrap().is_empty(), "{profile}");
    let zh = hints(&r);
    assert!(zh.iter().any(|h| h.contains("专属客服")), "{zh:?}");
    assert!(zh.contains(&"上次的冰箱近 90 天已维修过 2 次，这次是同样的问题吗？"), "{zh:?}");
    // The earlier turn is now a past question; hints follow the turn's language.
    let r = ask(base, json!({"text": "where do I send my returns", "customer_id": "c1001", "now": NOW})).await;
    assert_eq!(r["profile"]["past_questions"][0]["text"], "退货地址在哪", "{r}");
    let en = hints(&r);
    assert!(
        en.iter().any(|h| h.contains("dedicated agent"))
            && en.iter().any(|h| h.contains("refrigerator was repaired 2 times")),
        "{en:?}"
    );

    // c1002: new customer, no tags and no hints; anonymous: no profile.
    let r = ask(base, json!({"text": "快递到哪了", "customer_id": "c1002", "now": NOW})).await;
    assert!(tags(&r["profile"]).is_empty(), "{r}");
    assert!(hints(&r).is_empty(), "{r}");
    let r = ask(base, json!({"text": "快递到哪了", "now": NOW})).await;
    assert!(r["profile"].is_null() && hints(&r).is_empty(), "{r}");

    // No open ticket: say so, then the general answer.
    let r = ask(base, json!({"text": "帮我看看我那个工单", "customer_id": "c1002", "now": NOW})).await;
    assert_eq!((r["decision"].as_str(), r["intent"].as_str()), (Some("answer"), Some("ticket_status")), "{r}");
    assert!(r["answer"].as_str().unwrap().starts_with("目前没有查到你未完成的工单"), "{r}");

    // A repeat fault of a VIP: raised twice, to urgent; the ticket holds the profile and the records.
    let r =
        ask(base, json!({"text": "冰箱又坏了，制冷不行", "customer_id": "c1001", "channel": "app", "now": NOW})).await;
    assert_eq!(r["decision"], "handoff", "{r}");
    assert_eq!(
        (r["handoff"]["priority"].as_str(), r["handoff"]["queue"].as_str()),
        (Some("urgent"), Some("after_sales")),
        "{r}"
    );
    let ticket_id = r["handoff"]["ticket_id"].as_str().unwrap().to_string();
    let (status, ticket) = get(base, &format!("/v1/tickets/{ticket_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(ticket["priority"], "urgent", "{ticket}");
    let context = &ticket["context"];
    assert_eq!(tags(&context["profile"]), ["vip", "frequent_after_sales"], "{context}");
    assert_eq!(context["profile"]["phone"], "138****5678", "{context}");
    assert!(context["orders"].as_array().unwrap().iter().any(|o| o["id"] == "11520"), "{context}");
    assert_eq!(context["repairs"].as_array().unwrap().len(), 2, "{context}");
    assert_eq!(context["repairs_last_90_days"], 2, "{context}");
    let conversation = ticket["conversation"].as_array().unwrap();
    assert!(conversation.iter().any(|t| t["text"] == "冰箱又坏了，制冷不行"), "{ticket}");
    let (_, urgent) = get(base, "/v1/tickets?priority=urgent").await;
    assert!(urgent["tickets"].as_array().unwrap().iter().any(|t| t["id"] == ticket_id.as_str()), "{urgent}");

    // A complaint from the new customer: raised once.
    let r = ask(base, json!({"text": "我要投诉你们的送货员 态度恶劣", "customer_id": "c1002", "now": NOW})).await;
    assert_eq!((r["decision"].as_str(), r["handoff"]["priority"].as_str()), (Some("handoff"), Some("high")), "{r}");

    // ticket_status answers from the customer's open ticket as an agent works it.
    let r = ask(base, json!({"text": "帮我看看我那个工单", "customer_id": "c1001", "now": NOW})).await;
    assert_eq!(r["intent"], "ticket_status", "{r}");
    let answer = r["answer"].as_str().unwrap();
    assert!(answer.contains(&ticket_id) && answer.contains("新建待处理"), "{answer}");
    let note = "已派给维修师傅，预计明天上门";
    let (status, _) =
        post(base, &format!("/v1/tickets/{ticket_id}/assign"), json!({"agent": "agent-7", "note": "已受理"})).await;
    assert_eq!(status, 200);
    let (status, _) =
        post(base, &format!("/v1/tickets/{ticket_id}/status"), json!({"status": "in_progress", "note": note})).await;
    assert_eq!(status, 200);
    // While agent-7 works on it, the customer's messages go to them, not to the bot.
    let r = ask(base, json!({"text": "帮我看看我那个工单", "customer_id": "c1001", "now": NOW})).await;
    assert_eq!(
        (r["handoff"]["reason"].as_str(), r["handoff"]["ticket_id"].as_str()),
        (Some("agent_active"), Some(ticket_id.as_str())),
        "{r}"
    );

    // Named by id, even without a customer id.
    let r = ask(base, json!({"text": format!("工单号 {ticket_id} 现在什么状态"), "now": NOW})).await;
    assert_eq!(r["intent"], "ticket_status", "{r}");
    let answer = r["answer"].as_str().unwrap();
    assert!(answer.contains("处理中") && answer.contains("agent-7") && answer.contains(note), "{r}");

    // Resolved, the ticket still shows for a week, in either language, with the latest note.
    assert_eq!(post(base, &format!("/v1/tickets/{ticket_id}/status"), json!({"status": "resolved"})).await.0, 200);
    let r = ask(base, json!({"text": "帮我看看我那个工单", "customer_id": "c1001", "now": NOW})).await;
    let answer = r["answer"].as_str().unwrap();
    assert!(answer.contains(&ticket_id) && answer.contains("已解决") && answer.contains(note), "{answer}");
    let r = ask(base, json!({"text": "what's the status of my ticket", "customer_id": "c1001", "now": NOW})).await;
    let answer = r["answer"].as_str().unwrap();
    assert!(answer.contains(&ticket_id) && answer.contains("resolved") && answer.contains(note), "{answer}");

    // Closed tickets drop out.
    assert_eq!(post(base, &format!("/v1/tickets/{ticket_id}/status"), json!({"status": "closed"})).await.0, 200);
    let r = ask(base, json!({"text": "帮我看看我那个工单", "customer_id": "c1001", "now": NOW})).await;
    assert!(r["answer"].as_str().unwrap().starts_with("目前没有查到你未完成的工单"), "{r}");
}
