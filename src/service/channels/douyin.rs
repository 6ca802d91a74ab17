//! Douyin: the signed webhook; the URL challenge answered, private messages
//! and comments answered through the outbox in the chat or comment thread
//! they came from. The webhook is acknowledged at once (Douyin gives up after
//! 5 s and unsubscribes endpoints that keep it waiting).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{ChannelError, ChannelHub, DouyinAccount, Wait};
use crate::channels::douyin::{self, Event};
use crate::channels::{ReplyRoute, DOUYIN};
use crate::corpus::ReplyKey;
use crate::service::ServiceError;

impl ChannelHub {
    fn douyin_account(&self, name: &str) -> Result<&Arc<DouyinAccount>, ChannelError> {
        self.accounts
            .douyin
            .get(name)
            .ok_or_else(|| ChannelError::UnknownAccount { channel: DOUYIN, account: name.to_string() })
    }

    /// A Douyin webhook: its answer's JSON (the challenge, or an acknowledgement).
    pub async fn douyin_event(
        self: &Arc<Self>,
        name: &str,
        signature: &str,
        delivery: Option<&str>,
        body: &[u8],
    ) -> Result<Value, ServiceError> {
        let account = self.douyin_account(name)?;
        let event = douyin::open(&account.client_secret, signature, delivery, body).map_err(ChannelError::from)?;
        match event {
            Event::Verify { challenge } => return Ok(json!({"challenge": challenge})),
            Event::Message { user, thread, key, text } => {
                let route = ReplyRoute { thread: Some(thread), ..ReplyRoute::new(DOUYIN, name, &user) };
                match text {
                    Some(text) => {
                        self.receive(&route, &key, &text, Wait::Callback(Duration::ZERO)).await?;
                    }
                    None => {
                        self.canned(&route, &key, ReplyKey::TextOnly, true).await?;
                    }
                }
            }
            Event::Other(_) => {}
        }
        Ok(json!({"status": "ok"}))
    }
}
