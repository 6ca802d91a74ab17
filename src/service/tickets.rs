//! Tickets as agents and forms work them: opened by hand with the customer's
//! context, assigned, moved through their lifecycle, annotated, and the
//! customer's personal data revealed to the agent working the ticket. Every
//! read and change is attributed to its caller (ticket history, audit log).

use chrono::Utc;
use serde_json::{json, Map, Value};

use super::{ServiceError, DEFAULT_CHANNEL};
use crate::access::{Caller, Role};
use crate::corpus::Role as IntentRole;
use crate::engine::Engine;
use crate::store::{NewTicket, Store, Ticket, TicketAbout, TicketFilter};
use crate::tickets::{self, Priority, Status, MANUAL_REASON};

/// A ticket an agent or a "contact us" form opens.
#[derive(Debug, Clone, Default)]
pub struct ManualTicket {
    pub customer_id: Option<String>,
    pub session_id: Option<String>,
    pub channel: Option<String>,
    /// The intent it is about; the deployment's human-request intent when unset.
    pub intent: Option<String>,
    pub reason: Option<String>,
    pub priority: Option<Priority>,
    /// The intent's queue when unset.
    pub queue: Option<String>,
    pub note: Option<String>,
}

/// Opens a ticket by hand; it carries the same customer context a hand-off gathers.
pub async fn open(
    engine: &Engine,
    store: &Store,
    ticket_sla: chrono::Duration,
    request: ManualTicket,
    caller: &Caller,
) -> Result<Ticket, ServiceError> {
    if request.customer_id.is_none() && request.session_id.is_none() {
        return Err(ServiceError::AboutNobody);
    }
    let taxonomy = &engine.corpus().taxonomy;
    let intent = match request.intent {
        Some(intent) => intent,
        None => taxonomy.intent_with_role(IntentRole::HumanRequest).ok_or(ServiceError::NoIntent)?.to_string(),
    };
    if taxonomy.intent(&intent).is_none() {
        return Err(ServiceError::UnknownIntent(intent));
    }
    let queue = request.queue.unwrap_or_else(|| taxonomy.queue_of(&intent).to_string());
    if !taxonomy.has_queue(&queue) {
        let known = taxonomy.queues.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>().join(", ");
        return Err(ServiceError::UnknownQueue { given: queue, known });
    }
    let now = Utc::now();
    let id = tickets::new_ticket_id();
    let context = match &request.customer_id {
        Some(customer) => engine.customer_context(customer, &id, now).await,
        None => None,
    };
    let ticket = NewTicket {
        id,
        priority: request.priority.unwrap_or(Priority::Normal),
        queue,
        reason: request.reason.unwrap_or_else(|| MANUAL_REASON.to_string()),
        due_at: tickets::due_at(now, ticket_sla),
        context: context.unwrap_or_else(|| json!({})),
    };
    let about = TicketAbout {
        customer_id: request.customer_id.as_deref(),
        session_id: request.session_id.as_deref(),
        channel: request.channel.as_deref().unwrap_or(DEFAULT_CHANNEL),
        intent: &intent,
        slots: "{}",
    };
    store.create_ticket(&ticket, &about, request.note.as_deref(), &caller.actor(), now).await?;
    fetch(store, &ticket.id).await
}

pub(super) async fn fetch(store: &Store, id: &str) -> Result<Ticket, ServiceError> {
    store.ticket(id, Utc::now()).await?.ok_or_else(|| crate::store::StoreError::UnknownTicket(id.to_string()).into())
}

/// A ticket with its conversation and history (personal data masked); the read is audited.
pub async fn read(store: &Store, id: &str, caller: &Caller) -> Result<Ticket, ServiceError> {
    let ticket = fetch(store, id).await?;
    audit(store, caller, "read_ticket", Some(&ticket), None).await?;
    Ok(ticket)
}

/// Assigns a ticket to `agent`, or to the calling agent when none is named.
pub async fn assign(
    store: &Store,
    id: &str,
    agent: Option<&str>,
    note: Option<&str>,
    caller: &Caller,
) -> Result<Ticket, ServiceError> {
    let agent = agent.or(caller.agent_name()).ok_or(ServiceError::NoAgent)?;
    store.move_ticket(id, Status::Assigned, Some(agent), note, &caller.actor(), Utc::now()).await?;
    fetch(store, id).await
}

/// Moves a ticket to `status`, if its lifecycle allows it.
pub async fn move_to(
    store: &Store,
    id: &str,
    status: Status,
    note: Option<&str>,
    caller: &Caller,
) -> Result<Ticket, ServiceError> {
    store.move_ticket(id, status, None, note, &caller.actor(), Utc::now()).await?;
    fetch(store, id).await
}

/// Adds a note to a ticket's history without moving it; a public note is
/// shown to the customer who asks how the ticket is going.
pub async fn add_note(
    store: &Store,
    id: &str,
    note: &str,
    public: bool,
    caller: &Caller,
) -> Result<Ticket, ServiceError> {
    store.add_ticket_note(id, note, public, &caller.actor(), Utc::now()).await?;
    fetch(store, id).await
}

/// The personal fields a reveal may ask for.
pub const REVEALABLE: [&str; 3] = ["name", "phone", "address"];

/// The customer's personal data on a ticket, in clear: only for the agent the
/// ticket is assigned to, or an admin, and written to the audit log.
pub async fn reveal(store: &Store, id: &str, fields: &[String], caller: &Caller) -> Result<Value, ServiceError> {
    if let Some(unknown) = fields.iter().find(|f| !REVEALABLE.contains(&f.as_str())) {
        return Err(ServiceError::NotRevealable(unknown.clone()));
    }
    let ticket = fetch(store, id).await?;
    let owns = ticket.assignee.is_some() && ticket.assignee.as_deref() == caller.agent_name();
    if !owns && caller.role() < Role::Admin {
        return Err(ServiceError::NotYours(id.to_string()));
    }
    let wants = |field: &str| fields.is_empty() || fields.iter().any(|f| f == field);
    let mut revealed = Map::new();
    let customer = &ticket.context["customer"];
    for field in ["name", "phone"].into_iter().filter(|f| wants(f)) {
        revealed.insert(field.into(), customer.get(field).cloned().unwrap_or(Value::Null));
    }
    if wants("address") {
        let addresses: Vec<Value> = ticket.context["orders"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| json!({"order_id": o["id"], "address": o["address"]}))
            .collect();
        revealed.insert("addresses".into(), Value::Array(addresses));
    }
    let shown: Vec<&str> = REVEALABLE.iter().copied().filter(|f| wants(f)).collect();
    audit(store, caller, "reveal", Some(&ticket), Some(&shown.join(","))).await?;
    Ok(json!({"ticket_id": ticket.id, "customer_id": ticket.customer_id, "revealed": revealed}))
}

/// Writes who read or revealed what of a ticket's customer.
async fn audit(
    store: &Store,
    caller: &Caller,
    action: &str,
    ticket: Option<&Ticket>,
    detail: Option<&str>,
) -> Result<(), ServiceError> {
    let (ticket_id, customer_id) = (ticket.map(|t| t.id.as_str()), ticket.and_then(|t| t.customer_id.as_deref()));
    store.add_audit(&caller.actor(), action, ticket_id, customer_id, detail, Utc::now()).await?;
    Ok(())
}

/// Tickets matching `filter`, most urgent first (personal data masked); the read is audited.
pub async fn list(store: &Store, filter: &TicketFilter, caller: &Caller) -> Result<Vec<Ticket>, ServiceError> {
    let tickets = store.tickets(filter, Utc::now()).await?;
    let detail = format!("{} tickets", tickets.len());
    store.add_audit(&caller.actor(), "list_tickets", None, None, Some(&detail), Utc::now()).await?;
    Ok(tickets)
}

/// A customer's conversation across channels; the read is audited.
pub async fn customer_conversation(
    store: &Store,
    customer_id: &str,
    limit: i64,
    caller: &Caller,
) -> Result<Vec<crate::store::ConversationLine>, ServiceError> {
    let lines = store.customer_conversation(customer_id, limit).await?;
    store.add_audit(&caller.actor(), "read_conversation", None, Some(customer_id), None, Utc::now()).await?;
    Ok(lines)
}
