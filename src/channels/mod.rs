//! The messaging platforms kefu speaks natively (WeChat Official Accounts,
//! WeCom 微信客服, Douyin) and the signed webhook gateway for the rest: their wire formats,
//! signatures and crypto, and clients of their send APIs. Nothing here knows
//! the engine or the store: the service layer turns inbound messages into
//! turns and sends replies from the outbox through these clients.

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
    /// Hand the customer to the platform's own agents.
    Transfer,
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
