//! The outbox's sender: claims due replies (a lease, so one replica sends
//! each), sends them, one customer's in order and several customers at once,
//! retries with backoff, records each outcome, and answers received messages
//! that no turn answered in time.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use futures_util::StreamExt;

use super::{ChannelHub, CLAIM_LEASE};
use crate::channels::chatwoot::ConversationRef;
use crate::channels::gateway::GatewayReply;
use crate::channels::{Outgoing, ReplyRoute, SendError, CHATWOOT, DOUYIN, GATEWAY, WECHAT, WECOM};
use crate::service::ServiceError;
use crate::store::Outbound;

/// Replies sent at once (to different customers; one customer's replies go in order).
const SEND_CONCURRENCY: usize = 8;

impl ChannelHub {
    /// Sends due replies and answers stranded messages, until the process ends.
    pub async fn run_sender(self: Arc<Self>) {
        let settings = self.accounts.settings.clone();
        let mut last_recovery = std::time::Instant::now();
        loop {
            let sent = match self.send_due().await {
                Ok(n) => n,
                Err(err) => {
                    tracing::warn!(error = %err, "the outbox could not be read; trying again");
                    0
                }
            };
            if last_recovery.elapsed() >= settings.poll * 5 {
                last_recovery = std::time::Instant::now();
                if let Err(err) = self.recover().await {
                    tracing::warn!(error = %err, "stranded platform messages could not be read; trying again");
                }
            }
            if sent == 0 {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(settings.poll) => {}
                }
            }
        }
    }

    /// Claims the due replies and sends them: one customer's in order, several customers at once.
    async fn send_due(&self) -> Result<usize, ServiceError> {
        let now = Utc::now();
        let due = self.store.claim_outbound(now, now + CLAIM_LEASE, 64).await?;
        let count = due.len();
        let mut by_user: HashMap<ReplyRoute, Vec<Outbound>> = HashMap::new();
        for reply in due {
            by_user.entry(reply.route.clone()).or_default().push(reply);
        }
        futures_util::stream::iter(by_user.into_values())
            .for_each_concurrent(SEND_CONCURRENCY, |replies| async move {
                for reply in replies {
                    let outcome = self.send(&reply).await;
                    if let Err(err) = self.settle(&reply, outcome).await {
                        tracing::warn!(error = %err, "a reply's outcome could not be stored; it may go out again");
                    }
                }
            })
            .await;
        Ok(count)
    }

    async fn send(&self, reply: &Outbound) -> Result<(), SendError> {
        let (route, accounts) = (&reply.route, &self.accounts);
        let unknown = || SendError::Refused(format!("no {} account {:?} is configured", route.channel, route.account));
        match (route.channel.as_str(), &reply.outgoing) {
            (WECHAT, Outgoing::Text { text, .. }) => {
                accounts.wechat.get(&route.account).ok_or_else(unknown)?.api.send_text(&route.user, text).await
            }
            (WECOM, Outgoing::Text { text, options }) => {
                let account = accounts.wecom.get(&route.account).ok_or_else(unknown)?;
                account.api.send_text(&route.user, text, options, &reply.id).await
            }
            (DOUYIN, Outgoing::Text { text, .. }) => {
                let account = accounts.douyin.get(&route.account).ok_or_else(unknown)?;
                account.api.reply(&route.user, route.thread.as_deref().unwrap_or_default(), text).await
            }
            (GATEWAY, outgoing) => {
                let account = accounts.gateway.get(&route.account).ok_or_else(unknown)?;
                let (kind, text, options) = match outgoing {
                    Outgoing::Text { text, options } => ("text", text.as_str(), options.as_slice()),
                    Outgoing::Transfer { .. } => ("handoff", "", [].as_slice()),
                };
                let reply = GatewayReply { reply_id: &reply.id, user_id: &route.user, kind, text, options };
                account.client.send(&reply, Utc::now().timestamp()).await
            }
            (CHATWOOT, outgoing) => {
                let account = accounts.chatwoot.get(&route.account).ok_or_else(unknown)?;
                let thread = route.thread.as_deref().unwrap_or_default();
                let to = ConversationRef::from_thread(thread)
                    .ok_or_else(|| SendError::Refused(format!("{thread:?} names no Chatwoot conversation")))?;
                match outgoing {
                    Outgoing::Text { text, options } => account.api.send_text(to, text, options).await,
                    Outgoing::Transfer { note } => account.api.hand_over(to, note, reply.attempts > 1).await,
                }
            }
            (WECOM, Outgoing::Transfer { .. }) => {
                let account = accounts.wecom.get(&route.account).ok_or_else(unknown)?;
                account.api.transfer(&route.user, &account.handoff).await
            }
            (channel, outgoing) => {
                Err(SendError::Refused(format!("kefu cannot send {outgoing:?} on channel {channel:?}")))
            }
        }
    }

    async fn settle(&self, reply: &Outbound, outcome: Result<(), SendError>) -> Result<(), ServiceError> {
        let retries = u32::try_from(reply.attempts).unwrap_or(u32::MAX).saturating_sub(1);
        let (error, retry_at) = match &outcome {
            Ok(()) => (None, None),
            Err(err) if err.is_retryable() && retries < self.accounts.settings.backoff.retries => {
                let wait = self.accounts.settings.backoff.delay(retries);
                (Some(err.to_string()), Some(Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()))
            }
            Err(err) => (Some(err.to_string()), None),
        };
        let channel = &reply.route.channel;
        match (&error, retry_at) {
            (None, _) => crate::telemetry::outbound(channel, "sent"),
            (Some(error), Some(_)) => {
                crate::telemetry::outbound(channel, "retry");
                tracing::info!(%channel, %error, "a reply will be tried again")
            }
            (Some(error), None) => {
                crate::telemetry::outbound(channel, "failed");
                tracing::warn!(%channel, %error, "a reply failed for good")
            }
        }
        self.store.settle_outbound(&reply.id, error.as_deref().map_or(Ok(()), Err), retry_at, Utc::now()).await?;
        Ok(())
    }

    /// Answers received messages that no turn answered in time.
    async fn recover(&self) -> Result<(), ServiceError> {
        if self.live.get().is_none() {
            return Ok(());
        }
        let now = Utc::now();
        let before = now - chrono::Duration::from_std(self.accounts.settings.recover_after).unwrap_or_default();
        for pending in self.store.claim_unanswered(before, now, now + CLAIM_LEASE, 32).await? {
            let origin = self.origin(&pending, Utc::now());
            match self.answer(&pending, origin).await {
                Ok(_) => self.wake.notify_one(),
                Err(err) => tracing::warn!(error = %err, "a stranded platform message waits for the next sweep"),
            }
        }
        Ok(())
    }
}
