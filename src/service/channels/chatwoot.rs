//! Chatwoot's agent bot: an event is checked, stored and acknowledged at
//! once; the turn runs beside it and its reply (or hand-over) leaves through
//! the outbox, as Chatwoot's 5-second webhook timeout demands.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::{ChannelError, ChannelHub, ChatwootAccount, Received, Wait};
use crate::channels::chatwoot::{self, Inbound};
use crate::channels::{ReplyRoute, CHATWOOT};
use crate::service::ServiceError;

/// What became of a Chatwoot event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatwootOutcome {
    /// A customer's message: it will be answered.
    Accepted,
    /// Delivered before (same message id): not answered again.
    Duplicate,
    /// Nothing for the bot, and why.
    Ignored(&'static str),
}

impl ChannelHub {
    fn chatwoot_account(&self, name: &str) -> Result<&Arc<ChatwootAccount>, ChannelError> {
        self.accounts
            .chatwoot
            .get(name)
            .ok_or_else(|| ChannelError::UnknownAccount { channel: CHATWOOT, account: name.to_string() })
    }

    /// Checks one agent-bot event and, for a customer's message in a
    /// conversation the bot holds, starts its turn.
    pub async fn chatwoot_event(
        self: &Arc<Self>,
        name: &str,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<ChatwootOutcome, ServiceError> {
        let account = self.chatwoot_account(name)?;
        let inbound = chatwoot::open(account.secret.as_deref(), timestamp, signature, body, Utc::now().timestamp())
            .map_err(ChannelError::from)?;
        let message = match inbound {
            Inbound::Ignored(why) => return Ok(ChatwootOutcome::Ignored(why)),
            Inbound::Message(message) => message,
        };
        let mut route = ReplyRoute::new(CHATWOOT, name, &message.contact);
        route.thread = Some(message.conversation.thread());
        match self.receive(&route, &message.message_id, &message.text, Wait::Callback(Duration::ZERO)).await? {
            Received::Duplicate => Ok(ChatwootOutcome::Duplicate),
            Received::Reply(_) | Received::Later => Ok(ChatwootOutcome::Accepted),
        }
    }
}
