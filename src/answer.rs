//! Answers that use the customer's own data: which enterprise record an
//! answer needs, how the record is found from the slots and the customer,
//! and what a hand-off ticket carries. A connector that fails or times out
//! never fails the turn: the caller falls back to the intent's general answer.

use chrono::Utc;
use chrono_tz::Tz;
use serde_json::{json, Value};

use crate::connectors::template::{self, FieldValues};
use crate::connectors::{ConnectorError, Connectors, Ctx, Order};
use crate::corpus::{DataAnswer, DataKind, Lang};
use crate::nlu::slots::Slots;

/// What the customer's data makes of a data answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// The data answer, rendered.
    Answer(String),
    /// The customer has several matching orders: ask which (clarify).
    WhichOrder(Vec<String>),
    /// No matching order for a known customer: ask for the order number (clarify).
    AskOrderNumber,
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
async fn matching_orders(connectors: &Connectors, subject: &Subject<'_>, ctx: &Ctx<'_>) -> Result<Option<Vec<Order>>, ConnectorError> {
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
pub async fn resolve(connectors: &Connectors, answer: &DataAnswer, lang: Lang, subject: &Subject<'_>, ctx: &Ctx<'_>) -> Resolution {
    let template = answer.template(lang);
    let mut fields = FieldValues::default();
    match answer.kind {
        DataKind::Order => match matching_orders(connectors, subject, ctx).await {
            Err(e) => return logged(e, ctx, "order"),
            Ok(None) => return Resolution::General,
            Ok(Some(orders)) => match prefer_open(orders).as_slice() {
                [] => return Resolution::AskOrderNumber,
                [order] => fields.extend(template::fields_of_order(order, subject.tz)),
                several => {
                    let listed = several
                        .iter()
                        .take(3)
                        .map(|o| format!("{} {}（{}）", o.id, o.product_name, o.placed_at.with_timezone(&subject.tz).format("%-m月%-d日")))
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
                Ok(rows) => fields.extend(template::fields_of_stock(&rows)),
            }
        }
        DataKind::Refund => {
            let Some(customer) = subject.customer_id else { return Resolution::General };
            match connectors.refunds.refunds_of(ctx, customer).await {
                Err(e) => return logged(e, ctx, "refund"),
                Ok(refunds) => {
                    let wanted = subject.slots.order_id.as_ref();
                    let Some(refund) = refunds.iter().find(|r| wanted.is_none_or(|id| &r.order_id == id)) else { return Resolution::General };
                    fields.extend(template::fields_of_refund(refund, subject.tz));
                }
            }
        }
        DataKind::Repair => {
            let Some(customer) = subject.customer_id else { return Resolution::General };
            match connectors.after_sales.repairs_of(ctx, customer).await {
                Err(e) => return logged(e, ctx, "repair"),
                Ok(repairs) => {
                    let wanted = subject.slots.product.as_ref();
                    let Some(repair) = repairs.iter().find(|r| wanted.is_none_or(|p| &r.product == p)) else { return Resolution::General };
                    fields.extend(template::fields_of_repair(repair, &repairs, ctx.now, subject.tz));
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
fn available<T: Default>(system: &str, result: Result<T, ConnectorError>, unavailable: &mut Vec<String>, ctx: &Ctx<'_>) -> T {
    result.unwrap_or_else(|e| {
        tracing::warn!(trace_id = ctx.trace_id, error = %e, system, "hand-off context lookup failed");
        unavailable.push(system.to_string());
        T::default()
    })
}

/// What an agent needs on a hand-off ticket: the customer's profile, recent
/// orders, repair history (with the count of repairs of the product in the
/// last 90 days) and refunds. Systems that fail are left out and named.
pub async fn handoff_context(connectors: &Connectors, subject: &Subject<'_>, ctx: &Ctx<'_>) -> Value {
    let Some(customer) = subject.customer_id else { return json!({}) };
    // The systems are independent: ask them all at once.
    let (profile, orders, repairs, refunds) = tokio::join!(
        connectors.crm.customer(ctx, customer),
        connectors.orders.orders_of(ctx, customer),
        connectors.after_sales.repairs_of(ctx, customer),
        connectors.refunds.refunds_of(ctx, customer),
    );
    let mut unavailable = Vec::new();
    let profile = available("crm", profile, &mut unavailable, ctx);
    let orders = available("orders", orders, &mut unavailable, ctx);
    let repairs = available("after_sales", repairs, &mut unavailable, ctx);
    let refunds = available("refunds", refunds, &mut unavailable, ctx);
    let repairs_90d = template::repairs_in_90_days(&repairs, subject.slots.product.as_deref(), ctx.now);
    json!({
        "customer": profile,
        "orders": orders.iter().take(5).collect::<Vec<_>>(),
        "repairs": repairs,
        "repairs_last_90_days": repairs_90d,
        "refunds": refunds,
        "unavailable": unavailable,
        "gathered_at": Utc::now(),
    })
}
