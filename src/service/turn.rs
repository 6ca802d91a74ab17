//! One customer message end to end: the conversation so far (from the
//! store, so any replica can take the next message), the engine's answer, and
//! the turn and any hand-off ticket stored before the reply goes out. While
//! an agent owns the customer's conversation the bot stays silent: the
//! message goes to the agent's ticket instead.

use std::time::Instant;

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::ServiceError;
use crate::channels::{MenuOption, Outgoing, ReplyRoute};
use crate::corpus::Lang;
use crate::engine::{Engine, Outcome, PreviousTurn, Query};
use crate::store::{
    ActiveTicket, ChannelWrite, Delivery, MessageRole, NewMessage, NewOutbound, NewTicket, NewTurn, Store,
};
use crate::telemetry;
use crate::tickets::{self, HandoffReason, Priority, Status};

/// How turns are tied together and hand-offs timed.
#[derive(Debug, Clone, Copy)]
pub struct TurnSettings {
    /// Time within which a new ticket must be picked up.
    pub ticket_sla: chrono::Duration,
    /// How old a customer's last turn may be for a new session to continue it.
    pub conversation_gap: chrono::Duration,
}

/// A customer's message as a channel delivers it.
#[derive(Debug, Clone)]
pub struct Message {
    pub text: String,
    pub session_id: Option<String>,
    pub customer_id: Option<String>,
    pub channel: String,
    /// Restrict intents to one scenario.
    pub scenario: Option<String>,
    /// Reference time for relative dates.
    pub now: DateTime<FixedOffset>,
    /// Set for a message from a messaging platform.
    pub origin: Option<PlatformOrigin>,
}

/// Where a platform's message came from and where its reply goes.
#[derive(Debug, Clone)]
pub struct PlatformOrigin {
    /// The stored received message: settled with the turn, whose trace id it becomes.
    pub inbound_id: String,
    pub route: ReplyRoute,
    /// The id the bot's reply gets in the outbox.
    pub reply_id: String,
    /// The outbox holds the reply until then, while the platform's callback may still answer it.
    pub reply_not_before: DateTime<Utc>,
    /// A hand-off also passes the customer to the platform's own agents.
    pub transfer_on_handoff: bool,
}

impl PlatformOrigin {
    /// The turn's channel write: its route, the received message settled,
    /// and the bot's reply (with a clarifying question's choices) queued.
    fn write(&self, engine: &Engine, outcome: Option<&Outcome>) -> ChannelWrite<'_> {
        let mut replies = Vec::new();
        if let Some(outcome) = outcome {
            if let Some(text) = &outcome.answer {
                let options = outcome
                    .options
                    .iter()
                    .filter_map(|id| engine.corpus().intent(id))
                    .map(|intent| MenuOption { id: intent.id.clone(), title: intent.title(outcome.lang).to_string() })
                    .collect();
                let outgoing = Outgoing::Text { text: text.clone(), options };
                replies.push(NewOutbound {
                    id: self.reply_id.clone(),
                    route: self.route.clone(),
                    outgoing,
                    not_before: self.reply_not_before,
                });
            }
            if let (Some(handoff), true) = (outcome.handoff, self.transfer_on_handoff) {
                replies.push(NewOutbound {
                    id: super::new_id(),
                    route: self.route.clone(),
                    outgoing: Outgoing::Transfer { note: handoff_note(outcome, handoff) },
                    not_before: self.reply_not_before,
                });
            }
        }
        ChannelWrite { route: &self.route, inbound_id: Some(&self.inbound_id), replies }
    }
}

/// What the platform's agents read when the bot hands a customer over: why,
/// the intent, the (masked) profile and the hints for the agent.
fn handoff_note(outcome: &Outcome, (reason, priority): (HandoffReason, Priority)) -> String {
    let mut lines = vec![
        format!("kefu 转人工 hand-off: {} · {}", reason.as_str(), priority.as_str()),
        format!("意图 intent: {}", outcome.intent),
    ];
    if let Some(profile) = &outcome.profile {
        let who: Vec<&str> = [profile.name.as_deref(), profile.phone.as_deref()].into_iter().flatten().collect();
        let mut line = format!("客户 customer: {}", profile.customer_id);
        if !who.is_empty() {
            line.push_str(&format!(" ({})", who.join(", ")));
        }
        if !profile.tags.is_empty() {
            line.push_str(&format!(" · {}", profile.tags.join(", ")));
        }
        lines.push(line);
    }
    lines.extend(outcome.hints.iter().map(|hint| format!("- {hint}")));
    lines.join("\n")
}

/// The ticket a hand-off opened.
#[derive(Debug, Clone)]
pub struct OpenedHandoff {
    pub reason: HandoffReason,
    pub priority: Priority,
    pub ticket_id: String,
    pub queue: String,
}

/// An answered and stored turn.
#[derive(Debug)]
pub struct AnsweredTurn {
    pub trace_id: String,
    pub outcome: Outcome,
    pub handoff: Option<OpenedHandoff>,
    /// From `started` to the turn being stored.
    pub latency_ms: f64,
}

/// A message an agent's ticket took instead of the bot.
#[derive(Debug)]
pub struct ForwardedMessage {
    pub ticket: ActiveTicket,
    pub message_id: String,
    /// The language the customer wrote in.
    pub lang: Lang,
    pub latency_ms: f64,
}

/// What became of a customer's message.
#[derive(Debug)]
pub enum Turn {
    /// The bot answered it.
    Answered(Box<AnsweredTurn>),
    /// An agent owns the conversation: the message joined their ticket.
    Forwarded(ForwardedMessage),
}

/// Answers one message and stores the turn (and the hand-off's ticket), or
/// forwards it to the agent who owns the customer's conversation.
/// `admission` bounds the turns in model work at once: none free is [`ServiceError::Busy`].
pub async fn answer(
    engine: &Engine,
    store: &Store,
    admission: &Semaphore,
    settings: &TurnSettings,
    message: Message,
    started: Instant,
) -> Result<Turn, ServiceError> {
    let trace_id = match &message.origin {
        Some(origin) => origin.inbound_id.clone(),
        None => super::new_id(),
    };
    let (customer, session) = (message.customer_id.as_deref(), message.session_id.as_deref());
    let mut query = Query {
        text: &message.text,
        scenario: message.scenario.as_deref(),
        now: message.now,
        customer_id: customer,
        previous: None,
        trace_id: &trace_id,
    };
    engine.validate(&query).map_err(crate::engine::EngineError::from)?;
    let reading = Instant::now();
    if let Some(ticket) = store.active_ticket(customer, session).await? {
        return forward(engine, store, &message, ticket, started).await.map(Turn::Forwarded);
    }
    let previous = previous_turn(store, settings, session, customer).await?;
    telemetry::stage("conversation", reading);
    query.previous = previous.as_ref();
    let _permit = admission.try_acquire().map_err(|_| ServiceError::Busy)?;
    let outcome = engine.answer(query).await?;
    let handoff = outcome.handoff.map(|(reason, priority)| OpenedHandoff {
        reason,
        priority,
        ticket_id: tickets::new_ticket_id(),
        queue: engine.corpus().taxonomy.queue_of(&outcome.intent).to_string(),
    });
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    // Turns are ordered by when they happened, not by the caller's reference time.
    let at = Utc::now();
    let turn = NewTurn {
        trace_id: trace_id.clone(),
        session_id: message.session_id,
        customer_id: message.customer_id,
        channel: message.channel,
        text: message.text,
        intent: outcome.intent.clone(),
        confidence: outcome.confidence,
        decision: outcome.action,
        answer: outcome.answer.clone(),
        slots: Value::Object(outcome.slots.to_json()),
        lead: outcome.lead,
        latency_ms,
        options: outcome.options.clone(),
        at,
    };
    let ticket = handoff.as_ref().map(|h| NewTicket {
        id: h.ticket_id.clone(),
        priority: h.priority,
        queue: h.queue.clone(),
        reason: h.reason.as_str().to_string(),
        due_at: tickets::due_at(at, settings.ticket_sla),
        context: outcome.context.clone().unwrap_or_else(|| json!({})),
    });
    let channel = message.origin.as_ref().map(|o| o.write(engine, Some(&outcome)));
    let storing = Instant::now();
    store.record_turn_with(&turn, ticket.as_ref(), channel.as_ref()).await?;
    telemetry::stage("store", storing);
    let scenario = engine.corpus().taxonomy.intent(&outcome.intent).map_or("none", |d| d.scenario.as_str());
    telemetry::turn(outcome.action.as_str(), scenario, &turn.channel);
    if let Some(handoff) = &handoff {
        telemetry::handoff(handoff.reason.as_str());
    }
    // NOTE: no text: a message may name a person or an address, which no mask
    // finds; the trace id leads to the (sealed) turn.
    tracing::info!(
        %trace_id,
        intent = %outcome.intent,
        decision = outcome.action.as_str(),
        confidence = outcome.confidence,
        chars = turn.text.chars().count(),
        latency_ms,
        "answered"
    );
    Ok(Turn::Answered(Box::new(AnsweredTurn { trace_id, outcome, handoff, latency_ms })))
}

/// Stores a customer's message in the ticket of the agent who owns the
/// conversation; a ticket waiting for the customer goes back to work.
async fn forward(
    engine: &Engine,
    store: &Store,
    message: &Message,
    ticket: ActiveTicket,
    started: Instant,
) -> Result<ForwardedMessage, ServiceError> {
    let stored = NewMessage {
        ticket_id: Some(&ticket.id),
        customer_id: message.customer_id.as_deref(),
        session_id: message.session_id.as_deref(),
        channel: &message.channel,
        role: MessageRole::Customer,
        author: None,
        text: &message.text,
        delivery: Delivery::Received,
    };
    let channel = message.origin.as_ref().map(|o| o.write(engine, None));
    let (_, message_id) = store.add_message_with(&stored, channel.as_ref(), Utc::now()).await?;
    if ticket.status == Status::WaitingCustomer {
        let note = "the customer replied";
        store.move_ticket(&ticket.id, Status::InProgress, None, Some(note), "customer", Utc::now()).await?;
    }
    telemetry::forwarded(&message.channel);
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(ticket = %ticket.id, chars = message.text.chars().count(), latency_ms, "forwarded to the agent");
    Ok(ForwardedMessage { ticket, message_id, lang: Lang::detect(&message.text), latency_ms })
}

/// The turn this one follows: the session's last, or, for a session without
/// turns yet, the customer's last on any channel if it is recent.
async fn previous_turn(
    store: &Store,
    settings: &TurnSettings,
    session_id: Option<&str>,
    customer_id: Option<&str>,
) -> Result<Option<PreviousTurn>, ServiceError> {
    let mut last = match session_id {
        Some(session) => store.last_turn(session).await?,
        None => None,
    };
    if let (None, Some(customer)) = (&last, customer_id) {
        last = store.last_turn_of_customer(customer, Utc::now() - settings.conversation_gap).await?;
    }
    Ok(last.map(|last| PreviousTurn {
        intent: last.intent,
        decision: last.decision,
        slots: serde_json::from_value(last.slots).unwrap_or_default(),
        options: last.options,
        unhelpful_streak: last.unhelpful_streak,
        same_answer_in_a_row: last.same_answer_in_a_row,
    }))
}
