//! What agents do in the workspace beyond moving tickets: reply to the
//! customer on the channel they last wrote on, and hand the conversation
//! back to the bot. Claiming is [`super::tickets::assign`] to oneself.

use chrono::Utc;
use serde::Serialize;

use super::channels::ChannelHub;
use super::{ServiceError, DEFAULT_CHANNEL, PRACTICE_CHANNEL};
use crate::access::{Caller, Role};
use crate::store::{ChannelWrite, Delivery, MessageRole, NewMessage, NewOutbound, Store, Ticket};
use crate::tickets::Status;

/// Longest reply an agent may send, in characters.
pub const MAX_REPLY_CHARS: usize = 2000;

/// Channels whose customers read replies from kefu itself: the web chat's
/// live stream, and the practice customers of `kefu practice`.
const READ_FROM_KEFU: [&str; 2] = [DEFAULT_CHANNEL, PRACTICE_CHANNEL];

/// A reply on its way to the customer.
#[derive(Debug, Clone, Serialize)]
pub struct SentReply {
    pub message_id: String,
    pub channel: String,
    /// sent, queued or failed.
    pub delivery: &'static str,
    /// Why it is queued or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Sends an agent's reply to the ticket's customer on the channel of their
/// latest message. An unowned ticket is claimed by the replying agent first
/// (so the bot falls silent); another agent's ticket is refused.
pub async fn reply(
    store: &Store,
    channels: &ChannelHub,
    id: &str,
    text: &str,
    caller: &Caller,
) -> Result<SentReply, ServiceError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_REPLY_CHARS {
        return Err(ServiceError::InvalidReply(MAX_REPLY_CHARS));
    }
    let ticket = owned_ticket(store, id, caller).await?;
    if !ticket.status.is_open() {
        return Err(ServiceError::TicketClosed(ticket.id));
    }
    if ticket.assignee.is_none() {
        let agent = caller.agent_name().ok_or(ServiceError::NoAgent)?;
        store.move_ticket(id, Status::Assigned, Some(agent), None, &caller.actor(), Utc::now()).await?;
    }
    let (customer, session) = (ticket.customer_id.as_deref(), ticket.session_id.as_deref());
    let latest = store.latest_channel(customer, session).await?;
    let channel = latest.as_ref().map_or_else(|| ticket.channel.clone(), |l| l.channel.clone());
    let now = Utc::now();
    // A platform's customer gets the reply through the outbox, when the
    // platform's reply window is open; the agent is told when it is not.
    let (delivery, outbound) = match latest.and_then(|l| l.route) {
        Some(route) => match channels.closed_window(&route).await? {
            Some(why) => (Delivery::Failed(why), None),
            None => {
                let reply = NewOutbound::text(super::new_id(), route, text, now);
                (Delivery::Queued, Some(reply))
            }
        },
        None if READ_FROM_KEFU.contains(&channel.as_str()) => (Delivery::Sent, None),
        // NOTE: a channel named by a front-end calling /v1/answer has no sender
        // in kefu: the reply waits in the conversation for that front-end.
        None => (Delivery::Queued, None),
    };
    let reason = match &delivery {
        Delivery::Failed(why) => Some(why.clone()),
        Delivery::Queued if outbound.is_none() => {
            Some(format!("kefu has no sender for channel {channel:?}: the reply waits in the conversation"))
        }
        _ => None,
    };
    let message = NewMessage {
        ticket_id: Some(id),
        customer_id: customer,
        session_id: session,
        channel: &channel,
        role: MessageRole::Agent,
        author: Some(&caller.actor()),
        text,
        delivery: delivery.clone(),
    };
    let write = outbound.as_ref().map(|reply| ChannelWrite {
        route: &reply.route,
        inbound_id: None,
        replies: vec![reply.clone()],
    });
    let (_, message_id) = store.add_message_with(&message, write.as_ref(), now).await?;
    if write.is_some() {
        channels.queued();
    }
    Ok(SentReply { message_id, channel, delivery: delivery.as_str(), reason })
}

/// Hands the conversation back to the bot: the ticket leaves its agent and waits in its queue.
pub async fn release(store: &Store, id: &str, caller: &Caller) -> Result<Ticket, ServiceError> {
    owned_ticket(store, id, caller).await?;
    store.release_ticket(id, &caller.actor(), Utc::now()).await?;
    super::tickets::fetch(store, id).await
}

/// The ticket, if the caller may act for its owner: its own agent, anyone
/// while nobody owns it, an admin always.
async fn owned_ticket(store: &Store, id: &str, caller: &Caller) -> Result<Ticket, ServiceError> {
    let ticket = super::tickets::fetch(store, id).await?;
    match &ticket.assignee {
        Some(owner) if Some(owner.as_str()) != caller.agent_name() && caller.role() < Role::Admin => {
            Err(ServiceError::NotYours(id.to_string()))
        }
        _ => Ok(ticket),
    }
}
