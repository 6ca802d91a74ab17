//! Application services: the use cases the HTTP API and the CLI call. Each
//! one orchestrates the engine and the store for one thing a caller wants
//! (answer a customer's message, open or move a ticket); none knows HTTP.

pub mod analytics;
pub mod auth;
pub mod channels;
pub mod live;
pub mod nlu;
pub mod tickets;
pub mod turn;
pub mod widget;
pub mod workspace;

use crate::engine::EngineError;
use crate::store::StoreError;

/// The channel of a message or ticket that names none.
pub const DEFAULT_CHANNEL: &str = "web";

/// The channel of `kefu practice`'s rehearsal customers: the workspace's sandbox queue.
pub const PRACTICE_CHANNEL: &str = "practice";

/// A fresh random id (trace ids, message ids, outbox ids, visitor ids).
fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Why a use case failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("too many requests in flight")]
    Busy,
    #[error("the model is still loading")]
    Loading,
    #[error("{0:?} is not an intent of the taxonomy")]
    UnknownIntent(String),
    #[error("give the intent the ticket is about: this deployment has no intent with the human_request role")]
    NoIntent,
    #[error("unknown queue {given:?}; queues: {known}")]
    UnknownQueue { given: String, known: String },
    #[error("a ticket needs a customer_id or a session_id: whom is it about?")]
    AboutNobody,
    #[error("name the agent: only a logged-in agent may assign a ticket to themselves")]
    NoAgent,
    #[error("ticket {0:?} is not assigned to you")]
    NotYours(String),
    #[error("{0:?} cannot be revealed; ask for name, phone or address")]
    NotRevealable(String),
    #[error("a reply needs text, at most {0} characters")]
    InvalidReply(usize),
    #[error("ticket {0:?} is resolved or closed; reopen it to reply")]
    TicketClosed(String),
    #[error(transparent)]
    Widget(#[from] widget::WidgetError),
    #[error(transparent)]
    Channel(#[from] channels::ChannelError),
    #[error("the messaging platform failed: {0}")]
    Platform(crate::channels::SendError),
}
