//! Answers that use the customer's own data: which enterprise record an
//! answer needs, how the record is found from the slots and the customer,
//! the customer's records gathered once per turn, the `ticket_status` answer
//! from the customer's tickets, and what a hand-off ticket carries. A system
//! that fails or times out never fails the turn: the caller falls back to
//! the intent's general answer.

use chrono::{TimeDelta, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use crate::connectors::fields as template;
use crate::connectors::{ConnectorError, Connectors, Ctx, Customer, Order, RepairRecord};
use crate::corpus::FieldValues;
use crate::corpus::{DataAnswer, DataKind, Lang, Replies, ReplyKey};
use crate::nlu::slots::Slots;
use crate::profile::{CustomerHistory, PastTurn, Profile, TicketSummary, HISTORY_DAYS};
use crate::tickets::{ticket_id_in, Status};

/// What the customer's data makes of a data answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// The data answer, rendered.
    Answer(String),
    /// The customer has several matching orders: ask which (clarify).
    WhichOrder(Vec<String>),
    /// No matching order for a known customer: ask for the order number (clarify).
    AskOrderNumber,
    /// The order number the customer gave is not theirs or does not exist:
    /// say so, rather than asking for the number again (clarify).
    OrderNotFound(String),
    /// Nothing to look up, or the system failed: use the intent's general answer.
    General,
}

/// Whose data a turn may see.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub customer_id: Option<&'a str>,
    pub slots: &'a Slots,
    pub tz: Tz,
}

fn logged(err: ConnectorError, ctx: &Ctx<'_>, what: &str) -> Resolution {
    tracing::warn!(trace_id = ctx.trace_id, error = %err, "{what} lookup failed; answering without data");
    Resolution::General
}

/// Orders matching the slots: the one named by number (only the customer's own
/// when the customer is known), else the customer's orders filtered by product
/// and purchase date; `None` when there is nothing specific to look up.
async fn matching_orders(
    connectors: &Connectors,
    subject: &Subject<'_>,
    ctx: &Ctx<'_>,
) -> Result<Option<Vec<Order>>, ConnectorError> {
    let slots = subject.slots;
    if let Some(id) = &slots.order_id {
        let order = connectors.orders.order(ctx, id).await?;
        let own = order.filter(|o| subject.customer_id.is_none_or(|c| o.customer_id == c));
        return Ok(Some(own.into_iter().collect()));
    }
    let Some(customer) = subject.customer_id else {
        // A specific purchase from an unknown customer needs its number; a
        // general how-to question is answered in general.
        let specific = slots.product.is_some() || slots.time.is_some();
        return Ok(specific.then(Vec::new));
    };
    let orders = connectors.orders.orders_of(ctx, customer).await?;
    let matching = orders
        .into_iter()
        .filter(|o| slots.product.as_ref().is_none_or(|p| &o.product == p))
        .filter(|o| {
            slots.time.as_ref().is_none_or(|t| {
                let day = o.placed_at.with_timezone(&subject.tz).date_naive();
                t.start <= day && day <= t.end
            })
        })
        .collect();
    Ok(Some(matching))
}

/// Of several orders, the one still on its way when it is the only one:
/// questions about "my order" are nearly always about the open one.
fn prefer_open(orders: Vec<Order>) -> Vec<Order> {
    let is_open = |o: &Order| matches!(o.status.as_str(), "paid" | "shipped");
    if orders.len() > 1 && orders.iter().filter(|o| is_open(o)).count() == 1 {
        orders.into_iter().filter(is_open).collect()
    } else {
        orders
    }
}

/// Looks up the record a data answer needs and renders it.
pub async fn resolve(
    connectors: &Connectors,
    answer: &DataAnswer,
    lang: Lang,
    subject: &Subject<'_>,
    ctx: &Ctx<'_>,
) -> Resolution {
    let template = answer.template(lang);
    let mut fields = FieldValues::default();
    match answer.kind {
        DataKind::Order => match matching_orders(connectors, subject, ctx).await {
            Err(e) => return logged(e, ctx, "order"),
            Ok(None) => return Resolution::General,
            Ok(Some(orders)) => match prefer_open(orders).as_slice() {
                [] => {
                    return match &subject.slots.order_id {
                        Some(id) => Resolution::OrderNotFound(id.clone()),
                        None => Resolution::AskOrderNumber,
                    }
                }
                [order] => fields.extend(template::fields_of_order(order, subject.tz, lang)),
                several => {
                    let listed = several
                        .iter()
                        .take(3)
                        .map(|o| {
                            let placed = template::local_date(o.placed_at, subject.tz, lang);
                            match lang {
                                Lang::Zh => format!("{} {}（{placed}）", o.id, o.product_name),
                                Lang::En => format!("{} {} ({placed})", o.id, o.product_name),
                            }
                        })
                        .collect();
                    return Resolution::WhichOrder(listed);
                }
            },
        },
        DataKind::Stock => {
            let Some(product) = &subject.slots.product else { return Resolution::General };
            match connectors.inventory.stock(ctx, product).await {
                Err(e) => return logged(e, ctx, "stock"),
                Ok(rows) if rows.is_empty() => return Resolution::General,
                Ok(rows) => fields.extend(template::fields_of_stock(&rows, lang)),
            }
        }
        DataKind::Refund => {
            let Some(customer) = subject.customer_id else { return Resolution::General };
            match connectors.refunds.refunds_of(ctx, customer).await {
                Err(e) => return logged(e, ctx, "refund"),
                Ok(refunds) => {
                    let wanted = subject.slots.order_id.as_ref();
                    let Some(refund) = refunds.iter().find(|r| wanted.is_none_or(|id| &r.order_id == id)) else {
                        return Resolution::General;
                    };
                    fields.extend(template::fields_of_refund(refund, subject.tz, lang));
                }
            }
        }
        DataKind::Repair => {
            let Some(customer) = subject.customer_id else { return Resolution::General };
            match connectors.after_sales.repairs_of(ctx, customer).await {
                Err(e) => return logged(e, ctx, "repair"),
                Ok(repairs) => {
                    let wanted = subject.slots.product.as_ref();
                    let Some(repair) = repairs.iter().find(|r| wanted.is_none_or(|p| &r.product == p)) else {
                        return Resolution::General;
                    };
                    fields.extend(template::fields_of_repair(repair, &repairs, ctx.now, subject.tz, lang));
                }
            }
        }
    }
    if let Some(customer) = subject.customer_id {
        match connectors.crm.customer(ctx, customer).await {
            Ok(Some(c)) => fields.extend(template::fields_of_customer(&c)),
            Ok(None) => {}
            Err(e) => tracing::warn!(trace_id = ctx.trace_id, error = %e, "CRM lookup failed"),
        }
    }
    if !template.missing(&fields).is_empty() {
        return Resolution::General;
    }
    Resolution::Answer(template.render(&fields))
}

/// A lookup's value, or nothing (logged, and the system named) when it failed.
fn available<T: Default>(
    system: &str,
    result: Result<T, ConnectorError>,
    unavailable: &mut Vec<String>,
    ctx: &Ctx<'_>,
) -> T {
    kept(system, Some(result), unavailable, ctx).unwrap_or_default()
}

/// A lookup's value; `None` when the source is not configured (`result` is
/// `None`) or failed (logged with the trace id, and the source named).
fn kept<T, E: std::fmt::Display>(
    system: &str,
    result: Option<Result<T, E>>,
    unavailable: &mut Vec<String>,
    ctx: &Ctx<'_>,
) -> Option<T> {
    match result? {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::warn!(trace_id = ctx.trace_id, error = %e, system, "customer lookup failed");
            unavailable.push(system.to_string());
            None
        }
    }
}

/// What the enterprise systems and kefu's own history hold about one
/// customer, gathered once per turn. `None`: the source is not configured or failed.
#[derive(Debug, Clone, Default)]
pub struct CustomerRecords {
    pub customer_id: String,
    /// None also for a customer the CRM does not know.
    pub customer: Option<Customer>,
    /// Newest first.
    pub orders: Option<Vec<Order>>,
    /// Newest first.
    pub repairs: Option<Vec<RepairRecord>>,
    /// Turns of the last [`HISTORY_DAYS`] days, newest first.
    pub past_turns: Option<Vec<PastTurn>>,
    /// Sources that failed.
    pub unavailable: Vec<String>,
}

/// Asks the CRM, the order and after-sales systems and the history about a
/// customer, all at once. Failures are logged and named, never returned.
pub async fn gather(
    connectors: Option<&Connectors>,
    history: Option<&dyn CustomerHistory>,
    customer_id: &str,
    ctx: &Ctx<'_>,
) -> CustomerRecords {
    let since = ctx.now - TimeDelta::days(HISTORY_DAYS);
    // Each source is a stage of its own in the turn histogram, so a slow
    // enterprise system shows by name.
    let (customer, orders, repairs, past_turns) = tokio::join!(
        timed("crm", connectors.map(|c| c.crm.customer(ctx, customer_id))),
        timed("orders", connectors.map(|c| c.orders.orders_of(ctx, customer_id))),
        timed("after_sales", connectors.map(|c| c.after_sales.repairs_of(ctx, customer_id))),
        timed("history", history.map(|h| h.past_turns(customer_id, since))),
    );
    let mut unavailable = Vec::new();
    CustomerRecords {
        customer_id: customer_id.to_string(),
        customer: kept("crm", customer, &mut unavailable, ctx).flatten(),
        orders: kept("orders", orders, &mut unavailable, ctx),
        repairs: kept("after_sales", repairs, &mut unavailable, ctx),
        past_turns: kept("history", past_turns, &mut unavailable, ctx),
        unavailable,
    }
}

/// Awaits `lookup` when there is one, timing it as the turn stage `source`.
async fn timed<T>(source: &'static str, lookup: Option<impl std::future::Future<Output = T>>) -> Option<T> {
    let started = std::time::Instant::now();
    let found = lookup?.await;
    crate::telemetry::stage(source, started);
    Some(found)
}

/// What an agent needs on a hand-off ticket: the customer's profile with its
/// tags, the CRM record, recent orders, repair history (with the count of
/// repairs of the named product in the last 90 days) and refunds. Sources
/// that failed are left out and named.
pub async fn handoff_context(
    connectors: Option<&Connectors>,
    records: &CustomerRecords,
    profile: Option<&Profile>,
    subject: &Subject<'_>,
    ctx: &Ctx<'_>,
) -> Value {
    let mut unavailable = records.unavailable.clone();
    let refunds = match connectors {
        Some(c) => available("refunds", c.refunds.refunds_of(ctx, &records.customer_id).await, &mut unavailable, ctx),
        None => Vec::new(),
    };
    let orders = records.orders.as_deref().unwrap_or_default();
    let repairs = records.repairs.as_deref().unwrap_or_default();
    json!({
        "profile": profile,
        "customer": records.customer,
        "orders": orders.iter().take(5).collect::<Vec<_>>(),
        "repairs": repairs,
        "repairs_last_90_days": template::repairs_in_90_days(repairs, subject.slots.product.as_deref(), ctx.now),
        "refunds": refunds,
        "unavailable": unavailable,
        "gathered_at": Utc::now(),
    })
}

/// Most tickets a `ticket_status` answer lists.
const TICKETS_LISTED: usize = 3;

/// An intent title cut to its first phrase: 产品故障报修（不制冷…） -> 产品故障报修.
pub fn short_title(title: &str) -> &str {
    title.split(['（', '(', '/', '：', ':', ',']).next().unwrap_or(title).trim()
}

/// What of an agent's note the customer should read: the assignment
/// bookkeeping the store adds ("assigned to agent-7: ...") is dropped.
fn customer_note<'a>(note: &'a str, assignee: Option<&str>) -> Option<&'a str> {
    let note = note.trim();
    let bookkeeping = assignee.map(|a| format!("assigned to {a}"));
    let note = match bookkeeping.as_deref().and_then(|prefix| note.strip_prefix(prefix)) {
        Some(rest) => rest.trim_start_matches(':').trim(),
        None => note,
    };
    (!note.is_empty()).then_some(note)
}

/// How a `ticket_status` answer is worded: the deployment's replies, the
/// customer's language and zone, and an intent's short title in that language.
pub struct TicketWording<'a> {
    pub replies: &'a Replies,
    pub lang: Lang,
    pub tz: Tz,
    pub title_of: &'a (dyn Fn(&str) -> Option<String> + Sync),
}

/// One ticket in a sentence: status, who has it, and the latest note with its time.
fn ticket_line(t: &TicketSummary, wording: &TicketWording<'_>) -> String {
    let lang = wording.lang;
    let title = (wording.title_of)(&t.intent).map(|title| match lang {
        Lang::Zh => format!("（{title}）"),
        Lang::En => format!(" ({title})"),
    });
    let title = title.unwrap_or_default();
    let status = t.status.words(lang);
    let note = t.latest_note.as_deref().and_then(|n| customer_note(n, t.assignee.as_deref()));
    let when =
        template::local_time(t.latest_note_at.filter(|_| note.is_some()).unwrap_or(t.updated_at), wording.tz, lang);
    match lang {
        Lang::Zh => {
            let who = match (&t.assignee, t.status) {
                (Some(a), _) => format!("，由客服 {a} 跟进"),
                (None, Status::New) => "，客服会尽快接手".to_string(),
                (None, _) => String::new(),
            };
            let news = note.map_or_else(|| format!("（更新于 {when}）"), |n| format!("。最新进展（{when}）：{n}"));
            format!("工单 {}{title}：{status}{who}{news}", t.id)
        }
        Lang::En => {
            let who = match (&t.assignee, t.status) {
                (Some(a), _) => format!(", handled by {a}"),
                (None, Status::New) => ", an agent will pick it up soon".to_string(),
                (None, _) => String::new(),
            };
            let news = note.map_or_else(|| format!(" (updated {when})"), |n| format!(". Latest update ({when}): {n}"));
            format!("Ticket {}{title}: {status}{who}{news}", t.id)
        }
    }
}

/// The `ticket_status` answer for these tickets (newest first), listing at most three.
pub fn ticket_status_text(tickets: &[TicketSummary], wording: &TicketWording<'_>) -> String {
    let lines: Vec<String> = tickets.iter().take(TICKETS_LISTED).map(|t| ticket_line(t, wording)).collect();
    let more = tickets.len().saturating_sub(TICKETS_LISTED);
    let (replies, lang) = (wording.replies, wording.lang);
    match lines.as_slice() {
        [one] => replies.render(ReplyKey::TicketFound, lang, &[("ticket", one)]),
        _ => {
            let listed: Vec<String> = lines.iter().enumerate().map(|(i, l)| format!("{}. {l}", i + 1)).collect();
            let more = if more > 0 {
                replies.render(ReplyKey::TicketMore, lang, &[("more", &more.to_string())])
            } else {
                String::new()
            };
            replies.render(
                ReplyKey::TicketList,
                lang,
                &[("count", &tickets.len().to_string()), ("tickets", &listed.join("\n")), ("more", &more)],
            )
        }
    }
}

/// Answers a `ticket_status` question from the tickets: the one named by id
/// (only the customer's own when the customer is known), else the
/// customer's open ones. `None` keeps the intent's `general` answer (nothing
/// to look up, or the history failed); no ticket found says so before it.
pub async fn ticket_status(
    history: &dyn CustomerHistory,
    text: &str,
    customer_id: Option<&str>,
    wording: &TicketWording<'_>,
    general: &str,
    ctx: &Ctx<'_>,
) -> Option<String> {
    let failed = |e: crate::profile::HistoryError| {
        tracing::warn!(trace_id = ctx.trace_id, error = %e, "ticket lookup failed; answering in general");
        None
    };
    let (replies, lang) = (wording.replies, wording.lang);
    if let Some(id) = ticket_id_in(text) {
        let ticket = match history.ticket_summary(&id).await {
            Ok(t) => t.filter(|t| customer_id.is_none_or(|c| t.customer_id.as_deref() == Some(c))),
            Err(e) => return failed(e),
        };
        return Some(match ticket {
            Some(t) => ticket_status_text(&[t], wording),
            None => replies.render(ReplyKey::TicketNotFound, lang, &[("id", &id), ("answer", general)]),
        });
    }
    let customer = customer_id?;
    match history.current_tickets(customer).await {
        Err(e) => failed(e),
        Ok(tickets) if tickets.is_empty() => Some(replies.render(ReplyKey::TicketNone, lang, &[("answer", general)])),
        Ok(tickets) => Some(ticket_status_text(&tickets, wording)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewTicket, NewTurn};
    use chrono::DateTime;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn summary(id: &str, status: &str, assignee: Option<&str>, note: Option<&str>) -> TicketSummary {
        TicketSummary {
            id: id.into(),
            customer_id: Some("c1".into()),
            status: status.parse().unwrap(),
            priority: crate::tickets::Priority::High,
            intent: "repair_request".into(),
            queue: "after_sales".into(),
            assignee: assignee.map(str::to_string),
            latest_note: note.map(str::to_string),
            latest_note_at: note.map(|_| at("2026-06-15T02:20:00Z")),
            created_at: at("2026-06-15T01:00:00Z"),
            updated_at: at("2026-06-15T02:20:00Z"),
        }
    }

    fn titles(id: &str) -> Option<String> {
        (id == "repair_request").then(|| "产品故障报修".to_string())
    }

    fn english_titles(id: &str) -> Option<String> {
        (id == "repair_request").then(|| "Report a fault".to_string())
    }

    fn untitled(_: &str) -> Option<String> {
        None
    }

    fn wording<'a>(
        replies: &'a Replies,
        lang: Lang,
        title_of: &'a (dyn Fn(&str) -> Option<String> + Sync),
    ) -> TicketWording<'a> {
        TicketWording { replies, lang, tz: chrono_tz::Asia::Shanghai, title_of }
    }

    #[test]
    fn titles_and_notes_read_naturally() {
        assert_eq!(short_title("产品故障报修（不制冷、坏了、不能开机）"), "产品故障报修");
        assert_eq!(short_title("物流查询：快递到哪了"), "物流查询");
        assert_eq!(short_title("Report a fault / request a repair"), "Report a fault");
        assert_eq!(customer_note("assigned to agent-7: 已受理", Some("agent-7")), Some("已受理"));
        assert_eq!(customer_note("assigned to agent-7", Some("agent-7")), None);
        assert_eq!(customer_note("已派给维修师傅", Some("agent-7")), Some("已派给维修师傅"));
    }

    #[test]
    fn one_ticket_in_chinese_and_english() {
        let replies = Replies::default();
        let t = summary("T3F9A0B12C4D5", "in_progress", Some("agent-7"), Some("已派给维修师傅，预计明天上门"));
        let zh = ticket_status_text(std::slice::from_ref(&t), &wording(&replies, Lang::Zh, &titles));
        assert_eq!(
            zh,
            "帮你查到了：工单 T3F9A0B12C4D5（产品故障报修）：处理中，由客服 agent-7 跟进。最新进展（6月15日 10:20）：已派给维修师傅，预计明天上门。"
        );
        let en = ticket_status_text(&[t], &wording(&replies, Lang::En, &english_titles));
        assert_eq!(en, "Here is what I found. Ticket T3F9A0B12C4D5 (Report a fault): in progress, handled by agent-7. Latest update (Jun 15, 10:20): 已派给维修师傅，预计明天上门.");
        let fresh = summary("T000000000001", "new", None, None);
        let zh = ticket_status_text(&[fresh], &wording(&replies, Lang::Zh, &untitled));
        assert_eq!(zh, "帮你查到了：工单 T000000000001：新建待处理，客服会尽快接手（更新于 6月15日 10:20）。");
    }

    #[test]
    fn several_tickets_are_listed_up_to_three() {
        let replies = Replies::default();
        let tickets: Vec<TicketSummary> =
            (1..=4).map(|i| summary(&format!("T00000000000{i}"), "assigned", Some("agent-2"), None)).collect();
        let zh = ticket_status_text(&tickets, &wording(&replies, Lang::Zh, &titles));
        assert!(zh.starts_with("你有 4 个未完成的工单：\n1. 工单 T000000000001"), "{zh}");
        assert!(zh.contains("3. 工单 T000000000003") && !zh.contains("T000000000004"), "{zh}");
        assert!(zh.ends_with("\n另有 1 个未列出。"), "{zh}");
        let en = ticket_status_text(&tickets[..2], &wording(&replies, Lang::En, &english_titles));
        assert!(en.starts_with("You have 2 open tickets:\n1. Ticket T000000000001 (Report a fault): assigned to an agent, handled by agent-2"), "{en}");
    }

    fn turn(trace: &str, customer: &str) -> NewTurn {
        NewTurn {
            trace_id: trace.into(),
            session_id: None,
            customer_id: Some(customer.into()),
            channel: "web".into(),
            text: "冰箱又坏了".into(),
            intent: "repair_request".into(),
            confidence: 0.9,
            decision: crate::policy::Action::Handoff,
            answer: None,
            slots: json!({}),
            lead: false,
            latency_ms: 1.0,
            options: Vec::new(),
            at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn ticket_status_answers_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::sqlite_store(dir.path()).await;
        let ctx = Ctx { now: Utc::now(), trace_id: "t" };
        let replies = Replies::default();
        let ask = |text: &'static str, customer: Option<&'static str>| {
            let store = store.clone();
            let replies = &replies;
            async move {
                ticket_status(&store, text, customer, &wording(replies, Lang::detect(text), &untitled), "GENERAL", &ctx)
                    .await
            }
        };
        // Nothing open: say so, then the general answer; anonymous and no id: the general answer.
        assert_eq!(ask("我的工单怎么样了", Some("c1")).await.as_deref(), Some("目前没有查到你未完成的工单。GENERAL"));
        assert_eq!(ask("我的工单怎么样了", None).await, None);

        let ticket = NewTicket {
            id: "TABCDEF012345".into(),
            priority: crate::tickets::Priority::High,
            queue: "after_sales".into(),
            reason: "agent_intent".into(),
            due_at: Utc::now(),
            context: json!({}),
        };
        store.record_turn(&turn("a", "c1"), Some(&ticket)).await.unwrap();
        store
            .move_ticket(
                "TABCDEF012345",
                crate::tickets::Status::Assigned,
                Some("agent-7"),
                Some("已派给维修师傅，预计明天上门"),
                "test",
                Utc::now(),
            )
            .await
            .unwrap();
        let answer = ask("我的工单怎么样了", Some("c1")).await.unwrap();
        assert!(
            answer.contains("TABCDEF012345")
                && answer.contains("已分配给客服")
                && answer.contains("已派给维修师傅，预计明天上门"),
            "{answer}"
        );
        // By id: anyone holding the id, but not another known customer.
        assert!(ask("工单 TABCDEF012345 进度", None).await.unwrap().contains("agent-7"));
        assert!(ask("工单 TABCDEF012345 进度", Some("c2")).await.unwrap().starts_with("没有查到工单 TABCDEF012345"));
        assert!(ask("what about ticket TABCDEF012346", Some("c1"))
            .await
            .unwrap()
            .starts_with("I couldn't find ticket TABCDEF012346"));
    }
}
