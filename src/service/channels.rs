//! Messages from messaging platforms end to end: the customer behind a
//! platform identity, a platform's retry that must not be answered twice, the
//! turn, and the reply: inside the platform's callback when the engine is
//! quick enough, else through the outbox. The outbox's sender also carries
//! agents' replies, retries with backoff, and answers messages whose process
//! died before their turn was stored.
//!
//! Every received message is stored before it is answered, and its turn, the
//! reply queued in the outbox and the message's settlement commit together;
//! so a crash anywhere loses nothing and a restart answers each message once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use tokio::sync::{Notify, Semaphore};

use super::live::LiveEngine;
use super::turn::{self, PlatformOrigin, Turn, TurnSettings};
use super::{new_id, ServiceError};
use crate::access::Caller;
use crate::channels::wechat::{self, api::WechatApi, CallbackKeys, CallbackQuery, Content, Inbound, WechatError};
use crate::channels::{ReplyRoute, SendError, WECHAT};
use crate::corpus::{Lang, ReplyKey};
use crate::engine::EngineError;
use crate::store::{Identity, Linked, NewInbound, Outbound, PendingInbound, Store};
use crate::support::retry::Backoff;

/// What WeChat reads as "received, nothing to say now".
pub const WECHAT_SUCCESS: &str = "success";

/// WeChat's reply window after a customer's message, and the replies it allows in it.
const WECHAT_REPLY_WINDOW: chrono::Duration = chrono::Duration::hours(48);
const WECHAT_REPLY_QUOTA: i64 = 5;

/// Replies sent at once by the outbox's sender (to different customers; one
/// customer's replies go in order).
const SEND_CONCURRENCY: usize = 8;

/// How long a claim on a reply or a received message lasts: a sender that
/// died holding one lets it go after this.
const CLAIM_LEASE: chrono::Duration = chrono::Duration::seconds(60);

/// Why a platform's callback was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("no {channel} account {account:?} is configured")]
    UnknownAccount { channel: &'static str, account: String },
    #[error(transparent)]
    Wechat(#[from] WechatError),
}

/// How platform replies are timed and retried.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    /// How long a callback waits for the bot before the reply goes through the outbox.
    pub passive_window: Duration,
    /// Retries of a reply the platform did not take, and the waits between them.
    pub backoff: Backoff,
    /// A received message unanswered this long is answered by the outbox's
    /// sender (its process died, or the engine was loading).
    pub recover_after: Duration,
    /// How often the sender looks for due replies when nobody wakes it.
    pub poll: Duration,
}

impl Default for ChannelSettings {
    fn default() -> Self {
        ChannelSettings {
            passive_window: Duration::from_millis(4000),
            backoff: Backoff::doubling(7, Duration::from_secs(1)),
            recover_after: Duration::from_secs(15),
            poll: Duration::from_secs(1),
        }
    }
}

/// One WeChat Official Account.
#[derive(Debug)]
pub struct WechatAccount {
    pub keys: CallbackKeys,
    pub api: WechatApi,
    /// Hand-offs go to WeChat's own agent desk instead of kefu's workspace.
    pub transfer_to_desk: bool,
}

/// The configured platform accounts and how their replies are timed.
#[derive(Debug, Clone, Default)]
pub struct ChannelAccounts {
    /// By account name (the webhook URL's last segment).
    pub wechat: BTreeMap<String, Arc<WechatAccount>>,
    pub settings: ChannelSettings,
}

/// The bot's reply to a platform's message.
#[derive(Debug, Clone)]
struct BotReply {
    text: String,
    handoff: bool,
}

/// Receives platform messages and sends replies to them.
pub struct ChannelHub {
    store: Store,
    live: Arc<LiveEngine>,
    admission: Arc<Semaphore>,
    turns: TurnSettings,
    accounts: ChannelAccounts,
    /// Wakes the sender when a reply is due now.
    wake: Notify,
}

impl ChannelHub {
    pub fn new(
        store: Store,
        live: Arc<LiveEngine>,
        admission: Arc<Semaphore>,
        turns: TurnSettings,
        accounts: ChannelAccounts,
    ) -> Arc<ChannelHub> {
        Arc::new(ChannelHub { store, live, admission, turns, accounts, wake: Notify::new() })
    }

    fn wechat_account(&self, name: &str) -> Result<&Arc<WechatAccount>, ChannelError> {
        self.accounts
            .wechat
            .get(name)
            .ok_or_else(|| ChannelError::UnknownAccount { channel: WECHAT, account: name.to_string() })
    }

    /// WeChat's URL check: the `echostr` to answer with.
    pub fn wechat_verify(&self, account: &str, query: &CallbackQuery) -> Result<String, ServiceError> {
        let account = self.wechat_account(account)?;
        Ok(account.keys.verify_url(query, Utc::now().timestamp()).map_err(ChannelError::from)?)
    }

    /// A WeChat callback's answer: a passive reply (sealed in safe mode) or `success`.
    pub async fn wechat_message(
        self: &Arc<Self>,
        name: &str,
        query: &CallbackQuery,
        body: &str,
    ) -> Result<String, ServiceError> {
        let account = self.wechat_account(name)?.clone();
        let now = Utc::now().timestamp();
        let inbound = account.keys.open(query, body, now).map_err(ChannelError::from)?;
        let route = ReplyRoute { channel: WECHAT.into(), account: name.into(), user: inbound.openid.clone() };
        let reply = match &inbound.content {
            Content::Text(text) if !text.trim().is_empty() => {
                self.receive(&route, &inbound.dedupe_key(), text).await?.map(|reply| {
                    if reply.handoff && account.transfer_to_desk {
                        wechat::transfer_reply(&inbound, now)
                    } else {
                        wechat::text_reply(&inbound, &reply.text, now)
                    }
                })
            }
            // A menu click asks what its key says.
            Content::Event { event, key: Some(key) } if event == "CLICK" => self
                .receive(&route, &inbound.dedupe_key(), key)
                .await?
                .map(|r| wechat::text_reply(&inbound, &r.text, now)),
            Content::Event { event, .. } if event == "subscribe" || event == "SCAN" => {
                self.canned(&route, &inbound, ReplyKey::Welcome, now).await?
            }
            Content::Event { .. } => None,
            Content::Text(_) | Content::Other(_) => self.canned(&route, &inbound, ReplyKey::TextOnly, now).await?,
        };
        Ok(match reply {
            Some(xml) => account.keys.seal_reply(&xml, inbound.encrypted, now, rand::random()),
            None => WECHAT_SUCCESS.to_string(),
        })
    }

    /// A canned reply to something the bot cannot read, once per platform message.
    async fn canned(
        &self,
        route: &ReplyRoute,
        inbound: &Inbound,
        key: ReplyKey,
        now: i64,
    ) -> Result<Option<String>, ServiceError> {
        let Some(engine) = self.live.get() else { return Ok(None) };
        let id = new_id();
        let customer = self.store.customer_of(route, &identity_id(route, &self.store), Utc::now()).await?;
        let stored =
            NewInbound { id: &id, route, message_key: &inbound.dedupe_key(), customer_id: &customer, text: "" };
        if !self.store.receive(&stored, Utc::now()).await? {
            return Ok(None);
        }
        self.store.finish_inbound(&id).await?;
        Ok(Some(wechat::text_reply(inbound, &engine.corpus().replies.render(key, Lang::Zh, &[]), now)))
    }

    /// Stores a customer's message and answers it; `None` when there is
    /// nothing to say inside the callback: a retry, an agent owns the
    /// conversation, or the bot was not done within the passive window (the
    /// outbox sends its reply then).
    async fn receive(
        self: &Arc<Self>,
        route: &ReplyRoute,
        message_key: &str,
        text: &str,
    ) -> Result<Option<BotReply>, ServiceError> {
        let received = Utc::now();
        let customer = self.store.customer_of(route, &identity_id(route, &self.store), received).await?;
        let pending = PendingInbound { id: new_id(), route: route.clone(), customer_id: customer, text: text.into() };
        let stored = NewInbound { id: &pending.id, route, message_key, customer_id: &pending.customer_id, text };
        if !self.store.receive(&stored, received).await? {
            tracing::info!(channel = %route.channel, account = %route.account, "a platform's retry of a message already received");
            return Ok(None);
        }
        let window = self.accounts.settings.passive_window;
        let origin = PlatformOrigin {
            inbound_id: pending.id.clone(),
            route: route.clone(),
            reply_id: new_id(),
            reply_not_before: received + chrono::Duration::from_std(window).unwrap_or_default(),
        };
        let reply_id = origin.reply_id.clone();
        let (done, answered) = tokio::sync::oneshot::channel();
        let hub = self.clone();
        // NOTE: the turn runs in its own task: when the callback stops waiting,
        // the turn still finishes and its reply leaves through the outbox.
        tokio::spawn(async move {
            let reply_id = origin.reply_id.clone();
            match hub.answer(&pending, origin).await {
                Ok(Some(reply)) => {
                    if done.send(reply).is_err() {
                        hub.release(&reply_id).await;
                    }
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, "a platform message waits for the sender's next sweep"),
            }
        });
        if window.is_zero() {
            return Ok(None);
        }
        match tokio::time::timeout(window, answered).await {
            Ok(Ok(reply)) if self.store.mark_passive(&reply_id).await? => Ok(Some(reply)),
            _ => Ok(None),
        }
    }

    /// Answers a stored received message; its reply is queued in the outbox
    /// (held until `origin.reply_not_before`) in the turn's transaction.
    async fn answer(&self, pending: &PendingInbound, origin: PlatformOrigin) -> Result<Option<BotReply>, ServiceError> {
        let engine = self.live.get().ok_or(ServiceError::Loading)?;
        let message = turn::Message {
            text: pending.text.clone(),
            session_id: Some(identity_id(&pending.route, &self.store)),
            customer_id: Some(pending.customer_id.clone()),
            channel: pending.route.channel.clone(),
            scenario: None,
            now: Utc::now().fixed_offset(),
            origin: Some(origin),
        };
        let answered =
            turn::answer(&engine, &self.store, &self.admission, &self.turns, message, std::time::Instant::now());
        match answered.await {
            Ok(Turn::Answered(turn)) => {
                Ok(turn.outcome.answer.map(|text| BotReply { text, handoff: turn.handoff.is_some() }))
            }
            Ok(Turn::Forwarded(_)) => Ok(None),
            // A message the engine refuses (too long, empty) will never pass: settle it.
            Err(ServiceError::Engine(err @ EngineError::Invalid(_))) => {
                tracing::warn!(error = %err, "a platform message the engine refuses is dropped");
                self.store.finish_inbound(&pending.id).await?;
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// Lets a held reply go now, and wakes the sender.
    async fn release(&self, reply_id: &str) {
        if let Err(err) = self.store.release_outbound(reply_id, Utc::now()).await {
            tracing::warn!(error = %err, "a held reply waits for its hold to pass");
        }
        self.wake.notify_one();
    }

    /// Why a reply to `route` cannot go out now (the platform's reply window
    /// or quota), or `None` when it can. Unknown accounts cannot be sent to.
    pub async fn closed_window(&self, route: &ReplyRoute) -> Result<Option<String>, ServiceError> {
        if route.channel == WECHAT {
            if !self.accounts.wechat.contains_key(&route.account) {
                return Ok(Some(format!("no WeChat account {:?} is configured to send with", route.account)));
            }
            let (last, sent) = self.store.reply_window(route).await?;
            return Ok(match last {
                Some(last) if Utc::now() - last > WECHAT_REPLY_WINDOW => Some(
                    "WeChat's 48-hour reply window has closed: the customer must write first".to_string(),
                ),
                Some(_) if sent >= WECHAT_REPLY_QUOTA => Some(format!(
                    "WeChat allows {WECHAT_REPLY_QUOTA} replies per customer message, all used: wait for the customer to write"
                )),
                Some(_) => None,
                None => Some("the customer never wrote on this WeChat account".to_string()),
            });
        }
        Ok(Some(format!("kefu has no sender for channel {:?}", route.channel)))
    }

    /// Wakes the sender: a reply was queued for now.
    pub fn queued(&self) {
        self.wake.notify_one();
    }

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
        match reply.route.channel.as_str() {
            WECHAT => match self.accounts.wechat.get(&reply.route.account) {
                Some(account) => account.api.send_text(&reply.route.user, &reply.text).await,
                None => Err(SendError::Refused(format!("no WeChat account {:?} is configured", reply.route.account))),
            },
            other => Err(SendError::Refused(format!("kefu has no sender for channel {other:?}"))),
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
        match (&error, retry_at) {
            (None, _) => {}
            (Some(error), Some(_)) => {
                tracing::info!(channel = %reply.route.channel, %error, "a reply will be tried again")
            }
            (Some(error), None) => tracing::warn!(channel = %reply.route.channel, %error, "a reply failed for good"),
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
            let origin = PlatformOrigin {
                inbound_id: pending.id.clone(),
                route: pending.route.clone(),
                reply_id: new_id(),
                reply_not_before: Utc::now(),
            };
            match self.answer(&pending, origin).await {
                Ok(_) => self.wake.notify_one(),
                Err(err) => tracing::warn!(error = %err, "a stranded platform message waits for the next sweep"),
            }
        }
        Ok(())
    }
}

/// A platform identity's own id: the customer id kefu gives an identity it
/// has not seen, and the session of its conversation. Stable (a keyed hash of
/// the identity), so concurrent first messages agree; no openid in clear.
fn identity_id(route: &ReplyRoute, store: &Store) -> String {
    let identity = format!("{}\u{1f}{}\u{1f}{}", route.channel, route.account, route.user);
    let digest = store.vault().blind("channel-identity", &identity);
    format!("{}-{}", route.channel, &digest[..digest.len().min(20)])
}

/// A customer's platform identities; the read is audited.
pub async fn identities(store: &Store, customer_id: &str, caller: &Caller) -> Result<Vec<Identity>, ServiceError> {
    let identities = store.identities_of(customer_id).await?;
    store.add_audit(&caller.actor(), "read_identities", None, Some(customer_id), None, Utc::now()).await?;
    Ok(identities)
}

/// Links a platform identity to a customer (merging the history kefu kept
/// for the identity alone); the change is audited.
pub async fn link_identity(
    store: &Store,
    route: &ReplyRoute,
    customer_id: &str,
    caller: &Caller,
) -> Result<Linked, ServiceError> {
    let linked = store.link_identity(route, customer_id, Utc::now()).await?;
    let detail = format!(
        "{}/{} linked{}",
        route.channel,
        route.account,
        linked
            .previous
            .as_deref()
            .map(|p| format!(" (was {p}{})", if linked.merged { ", merged" } else { "" }))
            .unwrap_or_default()
    );
    store.add_audit(&caller.actor(), "link_identity", None, Some(customer_id), Some(&detail), Utc::now()).await?;
    Ok(linked)
}
