//! The messaging platforms kefu speaks natively (WeChat Official Accounts,
//! WeCom 微信客服, Douyin) and the signed webhook gateway for the rest: their wire formats,
//! signatures and crypto, and clients of their send APIs. Nothing here knows
//! the engine or the store: the service layer turns inbound messages into
//! turns and sends replies from the outbox through these clients.

pub mod chatwoot;
pub mod douyin;
pub mod gateway;
pub mod tokens;
pub mod wechat;
pub mod wecom;

use serde::{Deserialize, Serialize};

/// The channel name of WeChat Official Account messages.
pub const WECHAT: &str = "wechat";

/// The channel name of WeCom 微信客服 messages.
pub const WECOM: &str = "wecom";

/// The channel name of Douyin private messages and comments.
pub const DOUYIN: &str = "douyin";

/// The channel name of messages through the signed webhook gateway.
pub const GATEWAY: &str = "gateway";

/// The channel name of Chatwoot conversations kefu's agent bot answers.
pub const CHATWOOT: &str = "chatwoot";

/// How far a signed webhook's timestamp may stray from our clock.
pub const REPLAY_WINDOW_SECS: i64 = 300;

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`: how kefu's
/// gateway and Chatwoot sign webhooks.
pub fn timestamped_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What is wrong with a timestamped signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFault {
    /// Missing, malformed, or further than [`REPLAY_WINDOW_SECS`] from `now`: a replay.
    Stale,
    Mismatch,
}

/// Checks a [`timestamped_signature`] and its timestamp (unix seconds).
pub fn check_timestamped(
    secret: &str,
    timestamp: &str,
    given: &str,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureFault> {
    match timestamp.trim().parse::<i64>() {
        Ok(at) if (now - at).abs() <= REPLAY_WINDOW_SECS => {}
        _ => return Err(SignatureFault::Stale),
    }
    if !crate::support::same_secret(&timestamped_signature(secret, timestamp.trim(), body), given.trim()) {
        return Err(SignatureFault::Mismatch);
    }
    Ok(())
}

/// Where a reply to a customer goes: the channel and account they wrote on,
/// who they are there and, for platforms with threads, which thread.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplyRoute {
    pub channel: String,
    /// The configured account name (the last segment of the webhook URL).
    pub account: String,
    /// The customer's id on the platform (openid, external_userid, open_id).
    pub user: String,
    /// Where on the platform, for platforms with threads (a Douyin chat or comment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
}

impl ReplyRoute {
    /// A route without a thread.
    pub fn new(channel: &str, account: &str, user: &str) -> ReplyRoute {
        ReplyRoute { channel: channel.into(), account: account.into(), user: user.into(), thread: None }
    }
}

/// A choice of a clarifying question, for platforms that show menus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MenuOption {
    pub id: String,
    pub title: String,
}

/// What a queued outbound message asks of the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A text, with a clarifying question's choices where the platform shows menus.
    Text { text: String, options: Vec<MenuOption> },
    /// Hand the customer to the platform's own agents; `note` tells them
    /// why and who (masked), where the platform shows agents a note.
    Transfer { note: String },
}

/// Why a platform did not take a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth another try later: the network, a timeout, the platform busy.
    #[error("{0}")]
    Retryable(String),
    /// The platform refused for good: a closed reply window, an unknown user.
    #[error("{0}")]
    Refused(String),
}

impl SendError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retryable(_))
    }
}

/// A request error of a platform client: timeouts and connection failures may pass.
fn transport_error(platform: &str, err: reqwest::Error) -> SendError {
    // NOTE: without the URL: it carries the access token.
    SendError::Retryable(format!("{platform} unreachable: {}", err.without_url()))
}

/// `path` under `base`'s own path (an API behind a path prefix keeps it).
fn api_url(base: &url::Url, path: &str) -> url::Url {
    let mut url = base.clone();
    url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
    url
}

/// Sends `request` and reads the JSON of a 2xx answer. A client error (4xx
/// but a timeout or rate limit) will not pass on another try; the rest may.
async fn json_reply(platform: &str, request: reqwest::RequestBuilder) -> Result<serde_json::Value, SendError> {
    let response = request.send().await.map_err(|e| transport_error(platform, e))?;
    let status = response.status();
    if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
        return Err(SendError::Refused(format!("{platform} refused: HTTP {status}")));
    }
    if !status.is_success() {
        return Err(SendError::Retryable(format!("{platform} answered HTTP {status}")));
    }
    response
        .json()
        .await
        .map_err(|e| SendError::Retryable(format!("{platform}'s reply is not JSON: {}", e.without_url())))
}
