//! Messages from messaging platforms end to end: the customer behind a
//! platform identity, a platform's retry that must not be answered twice, the
//! turn, and the reply: inside the platform's callback when the engine is
//! quick enough (WeChat), else through the outbox. The outbox's sender
//! ([`outbox`]) also carries agents' replies, retries with backoff, and
//! answers messages whose process died before their turn was stored. Each
//! platform's own protocol steps are in its file (wechat, wecom, douyin,
//! gateway).
//!
//! Every received message is stored before it is answered, and its turn, the
//! reply queued in the outbox and the message's settlement commit together;
//! so a crash anywhere loses nothing and a restart answers each message once.

mod chatwoot;
mod douyin;
mod gateway;
mod outbox;
mod wechat;
mod wecom;

pub use chatwoot::ChatwootOutcome;
pub use gateway::Accepted;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, Semaphore};

use super::live::LiveEngine;
use super::turn::{self, PlatformOrigin, Turn, TurnSettings};
use super::{new_id, ServiceError};
use crate::access::Caller;
use crate::channels::chatwoot::{ChatwootApi, ChatwootError};
use crate::channels::douyin::{DouyinApi, DouyinError};
use crate::channels::gateway::{GatewayClient, GatewayError};
use crate::channels::wechat::{api::WechatApi, CallbackKeys, WechatError};
use crate::channels::wecom::{Handoff, KfApi};
use crate::channels::{ReplyRoute, CHATWOOT, DOUYIN, GATEWAY, WECHAT, WECOM};
use crate::corpus::{Lang, ReplyKey};
use crate::engine::EngineError;
use crate::store::{Identity, Linked, NewInbound, NewOutbound, PendingInbound, Store};
use crate::support::retry::Backoff;

/// What WeChat reads as "received, nothing to say now".
pub const WECHAT_SUCCESS: &str = "success";

/// The reply window of WeChat and WeCom after a customer's message, and the
/// replies each allows in it (both document 48 hours and 5 messages).
const REPLY_WINDOW: chrono::Duration = chrono::Duration::hours(48);
const REPLY_QUOTA: i64 = 5;

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
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Douyin(#[from] DouyinError),
    #[error(transparent)]
    Chatwoot(#[from] ChatwootError),
}

/// How platform replies are timed and retried.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    /// How long a callback waits for the bot before the reply goes through the outbox.
    pub passive_window: Duration,
    /// Retries of a reply the platform did not take, and the waits between them.
    pub backoff: Backoff,
    /// A received message unanswered this long, and no longer held by its
    /// receiver (the engine was loading, or the receiver's process died and
    /// its hold ran out), is answered by the outbox's sender.
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

/// One WeCom 微信客服 account.
#[derive(Debug)]
pub struct WecomAccount {
    /// Its callback token and key (addressed to the CorpID).
    pub keys: CallbackKeys,
    pub api: KfApi,
    /// Where a hand-off sends the customer in WeCom.
    pub handoff: Handoff,
    /// One pull of the message stream at a time.
    pulling: tokio::sync::Mutex<()>,
}

impl WecomAccount {
    pub fn new(keys: CallbackKeys, api: KfApi, handoff: Handoff) -> WecomAccount {
        WecomAccount { keys, api, handoff, pulling: tokio::sync::Mutex::new(()) }
    }
}

/// One Douyin enterprise account.
#[derive(Debug)]
pub struct DouyinAccount {
    /// Signs the webhooks.
    pub client_secret: String,
    pub api: DouyinApi,
}

/// One account of the signed webhook gateway.
#[derive(Debug)]
pub struct GatewayAccount {
    /// Signs both directions.
    pub secret: String,
    /// Where replies are posted.
    pub client: GatewayClient,
}

/// One Chatwoot inbox's agent bot.
#[derive(Debug)]
pub struct ChatwootAccount {
    /// Signs the events, when set; unsigned events are refused then.
    pub secret: Option<String>,
    pub api: ChatwootApi,
}

/// The configured platform accounts and how their replies are timed.
#[derive(Debug, Clone, Default)]
pub struct ChannelAccounts {
    /// By account name (the webhook URL's last segment).
    pub wechat: BTreeMap<String, Arc<WechatAccount>>,
    pub wecom: BTreeMap<String, Arc<WecomAccount>>,
    pub douyin: BTreeMap<String, Arc<DouyinAccount>>,
    pub gateway: BTreeMap<String, Arc<GatewayAccount>>,
    pub chatwoot: BTreeMap<String, Arc<ChatwootAccount>>,
    pub settings: ChannelSettings,
}

impl ChannelAccounts {
    /// Whether `route`'s account is configured.
    fn knows(&self, route: &ReplyRoute) -> bool {
        match route.channel.as_str() {
            WECHAT => self.wechat.contains_key(&route.account),
            WECOM => self.wecom.contains_key(&route.account),
            DOUYIN => self.douyin.contains_key(&route.account),
            GATEWAY => self.gateway.contains_key(&route.account),
            CHATWOOT => self.chatwoot.contains_key(&route.account),
            _ => false,
        }
    }

    /// Whether a hand-off on `route` is also sent on: to the platform's own
    /// agents (WeCom when configured, Chatwoot always), or as a `handoff` reply (the gateway).
    fn transfers_on_handoff(&self, route: &ReplyRoute) -> bool {
        match route.channel.as_str() {
            WECOM => self.wecom.get(&route.account).is_some_and(|a| a.handoff != Handoff::Workspace),
            GATEWAY | CHATWOOT => true,
            _ => false,
        }
    }
}

/// How the receiver of a platform's message waits for the bot.
#[derive(Debug, Clone, Copy)]
enum Wait {
    /// A callback that may carry the reply, if the bot is done within this long.
    Callback(Duration),
    /// A pulled stream: each message's turn before the next.
    InOrder,
}

/// What became of a platform's message.
#[derive(Debug)]
enum Received {
    /// The platform sent it before: not answered again.
    Duplicate,
    /// The bot's reply, for the callback to carry.
    Reply(BotReply),
    /// Nothing to say in the callback: the reply (if any: an agent may own
    /// the conversation) leaves through the outbox.
    Later,
}

impl Received {
    fn reply(self) -> Option<BotReply> {
        match self {
            Received::Reply(reply) => Some(reply),
            Received::Duplicate | Received::Later => None,
        }
    }
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

    /// Stores a customer's message and answers it. `Callback(window)`: the
    /// reply, when the bot is done within the window, for the platform's
    /// callback to carry; else the outbox sends it (as it does for a zero
    /// window). `InOrder`: the turn is done before this returns, so a pulled
    /// stream's messages are answered in their order.
    async fn receive(
        self: &Arc<Self>,
        route: &ReplyRoute,
        message_key: &str,
        text: &str,
        wait: Wait,
    ) -> Result<Received, ServiceError> {
        let received = Utc::now();
        let customer = self.store.customer_of(route, &identity_id(route, &self.store), received).await?;
        let pending = PendingInbound { id: new_id(), route: route.clone(), customer_id: customer, text: text.into() };
        let stored = NewInbound { id: &pending.id, route, message_key, customer_id: &pending.customer_id, text };
        if !self.store.receive(&stored, received, received + CLAIM_LEASE).await? {
            tracing::info!(channel = %route.channel, account = %route.account, "a platform's retry of a message already received");
            return Ok(Received::Duplicate);
        }
        let window = match wait {
            Wait::InOrder => {
                if let Err(err) = self.answer(&pending, self.origin(&pending, received)).await {
                    self.release_inbound(&pending.id).await;
                    return Err(err);
                }
                self.wake.notify_one();
                return Ok(Received::Later);
            }
            Wait::Callback(window) => window,
        };
        let origin = self.origin(&pending, received + chrono::Duration::from_std(window).unwrap_or_default());
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
                Err(err) => {
                    tracing::warn!(error = %err, "a platform message waits for the sender's next sweep");
                    hub.release_inbound(&pending.id).await;
                }
            }
        });
        if window.is_zero() {
            return Ok(Received::Later);
        }
        match tokio::time::timeout(window, answered).await {
            Ok(Ok(reply)) if self.store.mark_passive(&reply_id).await? => Ok(Received::Reply(reply)),
            _ => Ok(Received::Later),
        }
    }

    /// Where a received message's turn settles and its reply goes, held until `not_before`.
    fn origin(&self, pending: &PendingInbound, not_before: chrono::DateTime<Utc>) -> PlatformOrigin {
        PlatformOrigin {
            inbound_id: pending.id.clone(),
            route: pending.route.clone(),
            reply_id: new_id(),
            reply_not_before: not_before,
            transfer_on_handoff: self.accounts.transfers_on_handoff(&pending.route),
        }
    }

    /// Stores a message the bot cannot read (a picture, a voice message) and
    /// the canned `key` reply to it, queued when `queue` (else the caller
    /// sends it in the callback); `None` for a retry or while loading.
    async fn canned(
        &self,
        route: &ReplyRoute,
        message_key: &str,
        key: ReplyKey,
        queue: bool,
    ) -> Result<Option<String>, ServiceError> {
        let Some(engine) = self.live.get() else { return Ok(None) };
        let id = new_id();
        let customer = self.store.customer_of(route, &identity_id(route, &self.store), Utc::now()).await?;
        let stored = NewInbound { id: &id, route, message_key, customer_id: &customer, text: "" };
        let now = Utc::now();
        if !self.store.receive(&stored, now, now + CLAIM_LEASE).await? {
            return Ok(None);
        }
        let text = engine.corpus().replies.render(key, Lang::Zh, &[]);
        let replies =
            if queue { vec![NewOutbound::text(new_id(), route.clone(), &text, Utc::now())] } else { Vec::new() };
        self.store.finish_inbound(&id, replies).await?;
        if queue {
            self.wake.notify_one();
        }
        Ok(Some(text))
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
                self.store.finish_inbound(&pending.id, Vec::new()).await?;
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// Hands a message its receiver could not answer to the sender's next sweep.
    async fn release_inbound(&self, id: &str) {
        if let Err(err) = self.store.release_inbound(id).await {
            tracing::warn!(error = %err, "an unanswered message waits for its receiver's hold to pass");
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
        if !self.accounts.knows(route) {
            return Ok(Some(format!("no {} account {:?} is configured to send with", route.channel, route.account)));
        }
        // NOTE: the gateway's own app and Chatwoot have no reply window; Douyin
        // documents none for its enterprise accounts' replies.
        if [GATEWAY, DOUYIN, CHATWOOT].contains(&route.channel.as_str()) {
            return Ok(None);
        }
        let (last, sent) = self.store.reply_window(route).await?;
        Ok(match last {
            Some(last) if Utc::now() - last > REPLY_WINDOW => {
                Some("the platform's 48-hour reply window has closed: the customer must write first".to_string())
            }
            Some(_) if sent >= REPLY_QUOTA => Some(format!(
                "the platform allows {REPLY_QUOTA} replies per customer message, all used: wait for the customer to write"
            )),
            Some(_) => None,
            None => Some(format!("the customer never wrote on this {} account", route.channel)),
        })
    }

    /// Wakes the sender: a reply was queued for now.
    pub fn queued(&self) {
        self.wake.notify_one();
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
