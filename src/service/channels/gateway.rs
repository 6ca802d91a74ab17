//! The signed webhook gateway: a company's own app, or a bridge to a
//! platform without an adapter, posts signed messages; kefu answers each once,
//! in order per call, and posts the replies (bot and agent) to the account's
//! callback URL, signed the same way.

use std::sync::Arc;

use chrono::Utc;

use super::{ChannelError, ChannelHub, GatewayAccount, Received, Wait};
use crate::channels::gateway;
use crate::channels::{ReplyRoute, GATEWAY};
use crate::service::ServiceError;

/// What became of a gateway message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Answered; the reply is on its way to the callback URL.
    Answered,
    /// Sent before (same message_id): not answered again.
    Duplicate,
}

impl ChannelHub {
    fn gateway_account(&self, name: &str) -> Result<&Arc<GatewayAccount>, ChannelError> {
        self.accounts
            .gateway
            .get(name)
            .ok_or_else(|| ChannelError::UnknownAccount { channel: GATEWAY, account: name.to_string() })
    }

    /// Checks and answers one gateway message.
    pub async fn gateway_message(
        self: &Arc<Self>,
        name: &str,
        timestamp: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<Accepted, ServiceError> {
        let account = self.gateway_account(name)?;
        let message = gateway::open(&account.secret, timestamp, signature, body, Utc::now().timestamp())
            .map_err(ChannelError::from)?;
        let route = ReplyRoute::new(GATEWAY, name, &message.user_id);
        match self.receive(&route, &message.message_id, &message.text, Wait::InOrder).await? {
            Received::Duplicate => Ok(Accepted::Duplicate),
            Received::Reply(_) | Received::Later => Ok(Accepted::Answered),
        }
    }
}
