//! Tickets as agents and forms work them: opened by hand with the customer's
//! context, assigned, moved through their lifecycle, annotated.

use chrono::Utc;
use serde_json::json;

use super::{ServiceError, DEFAULT_CHANNEL};
use crate::corpus::Role;
use crate::engine::Engine;
use crate::store::{NewTicket, Store, Ticket, TicketAbout};
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
) -> Result<Ticket, ServiceError> {
    let taxonomy = &engine.corpus().taxonomy;
    let intent = match request.intent {
        Some(intent) => intent,
        None => taxonomy.intent_with_role(Role::HumanRequest).ok_or(ServiceError::NoIntent)?.to_string(),
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
    store.create_ticket(&ticket, &about, request.note.as_deref(), now).await?;
    read(store, &ticket.id).await
}

/// A ticket with its conversation and history.
pub async fn read(store: &Store, id: &str) -> Result<Ticket, ServiceError> {
    store.ticket(id, Utc::now()).await?.ok_or_else(|| crate::store::StoreError::UnknownTicket(id.to_string()).into())
}

/// Assigns a ticket to an agent.
pub async fn assign(store: &Store, id: &str, agent: &str, note: Option<&str>) -> Result<Ticket, ServiceError> {
    store.move_ticket(id, Status::Assigned, Some(agent), note, Utc::now()).await?;
    read(store, id).await
}

/// Moves a ticket to `status`, if its lifecycle allows it.
pub async fn move_to(store: &Store, id: &str, status: Status, note: Option<&str>) -> Result<Ticket, ServiceError> {
    store.move_ticket(id, status, None, note, Utc::now()).await?;
    read(store, id).await
}

/// Adds a note to a ticket's history without moving it.
pub async fn add_note(store: &Store, id: &str, note: &str) -> Result<Ticket, ServiceError> {
    store.add_ticket_note(id, note, Utc::now()).await?;
    read(store, id).await
}
