//! Chatwoot's agent bot: Chatwoot posts an inbox's events to the bot's URL
//! while a conversation is `pending` (the bot's), and the bot answers through
//! Chatwoot's API; a hand-off toggles the conversation to `open`, where
//! Chatwoot's agents take it. Events may be signed like kefu's gateway
//! (`X-Chatwoot-Signature: sha256=<hex HMAC-SHA256(secret, "<ts>.<body>")>`,
//! `X-Chatwoot-Timestamp`). Chatwoot waits 5 s for the webhook and opens the
//! conversation when it fails, so events are acknowledged at once and
//! answered asynchronously.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

use super::{api_url, check_timestamped, json_reply, MenuOption, SendError, SignatureFault, REPLAY_WINDOW_SECS};

pub const SIGNATURE_HEADER: &str = "x-chatwoot-signature";
pub const TIMESTAMP_HEADER: &str = "x-chatwoot-timestamp";

/// Longest message kefu reads from Chatwoot, in bytes (the engine has its own cap too).
const MAX_CONTENT_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatwootError {
    #[error("X-Chatwoot-Signature does not match the body (sha256=<hex HMAC-SHA256(secret, \"<timestamp>.<body>\")>)")]
    BadSignature,
    #[error("X-Chatwoot-Timestamp is missing, malformed or more than {REPLAY_WINDOW_SECS} s from now")]
    StaleTimestamp,
    #[error("not a Chatwoot agent-bot event: {0}")]
    BadEvent(String),
}

/// The parts of an agent-bot event kefu reads (Chatwoot's `Message#webhook_data` plus `event`).
#[derive(Debug, Deserialize)]
struct Event {
    event: String,
    id: Option<Value>,
    content: Option<String>,
    /// `incoming`, `outgoing`, `activity`, `template` (or their numbers in older payloads).
    message_type: Option<Value>,
    #[serde(default)]
    private: bool,
    sender: Option<Party>,
    contact: Option<Party>,
    conversation: Option<Conversation>,
    account: Option<Party>,
}

#[derive(Debug, Deserialize)]
struct Party {
    id: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Conversation {
    id: Value,
    status: Option<String>,
    #[serde(default)]
    meta: Meta,
}

#[derive(Debug, Default, Deserialize)]
struct Meta {
    assignee: Option<Value>,
}

/// A customer's message in a conversation the bot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingMessage {
    /// Chatwoot's message id: a redelivery of it is answered once.
    pub message_id: String,
    /// The contact's id in Chatwoot.
    pub contact: String,
    pub conversation: ConversationRef,
    pub text: String,
}

/// Where in Chatwoot a conversation lives; as a reply route's thread, `<account>/<conversation>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationRef {
    pub account_id: u64,
    pub conversation_id: u64,
}

impl ConversationRef {
    pub fn thread(&self) -> String {
        format!("{}/{}", self.account_id, self.conversation_id)
    }

    pub fn from_thread(thread: &str) -> Option<ConversationRef> {
        let (account, conversation) = thread.split_once('/')?;
        Some(ConversationRef { account_id: account.parse().ok()?, conversation_id: conversation.parse().ok()? })
    }
}

/// What an event asks of the bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Message(IncomingMessage),
    /// Nothing for the bot: why (another event, the bot's own message, a
    /// conversation people hold).
    Ignored(&'static str),
}

/// The event in `body`, its signature checked first when the account has a secret.
pub fn open(
    secret: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<Inbound, ChatwootError> {
    if let Some(secret) = secret {
        let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
            return Err(ChatwootError::BadSignature);
        };
        check_timestamped(secret, timestamp, signature, body, now).map_err(|fault| match fault {
            SignatureFault::Stale => ChatwootError::StaleTimestamp,
            SignatureFault::Mismatch => ChatwootError::BadSignature,
        })?;
    }
    let event: Event = serde_json::from_slice(body).map_err(|e| ChatwootError::BadEvent(e.to_string()))?;
    read(event)
}

fn read(event: Event) -> Result<Inbound, ChatwootError> {
    if event.event != "message_created" {
        return Ok(Inbound::Ignored("not a new message"));
    }
    let incoming = match &event.message_type {
        Some(Value::String(kind)) => kind == "incoming",
        Some(Value::Number(n)) => n.as_u64() == Some(0),
        _ => false,
    };
    if !incoming || event.private {
        return Ok(Inbound::Ignored("not a customer's message"));
    }
    let conversation = event.conversation.ok_or_else(|| ChatwootError::BadEvent("no conversation".into()))?;
    // NOTE: the bot speaks only while the conversation is pending: once open,
    // or once an agent is assigned, people hold it (the Rasa demo missed this).
    if conversation.status.as_deref() != Some("pending") || conversation.meta.assignee.is_some_and(|a| !a.is_null()) {
        return Ok(Inbound::Ignored("people hold this conversation"));
    }
    let text = event.content.unwrap_or_default();
    if text.trim().is_empty() {
        return Ok(Inbound::Ignored("no text (an attachment)"));
    }
    if text.len() > MAX_CONTENT_BYTES {
        return Err(ChatwootError::BadEvent(format!("content longer than {MAX_CONTENT_BYTES} bytes")));
    }
    let number = |value: Option<&Value>, what: &str| {
        value
            .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
            .ok_or_else(|| ChatwootError::BadEvent(format!("no numeric {what} id")))
    };
    let conversation = ConversationRef {
        account_id: number(event.account.as_ref().and_then(|a| a.id.as_ref()), "account")?,
        conversation_id: number(Some(&conversation.id), "conversation")?,
    };
    let contact = event.sender.or(event.contact).and_then(|p| p.id);
    let contact = number(contact.as_ref(), "sender")?;
    let message_id = number(event.id.as_ref(), "message")?;
    Ok(Inbound::Message(IncomingMessage {
        message_id: message_id.to_string(),
        contact: contact.to_string(),
        conversation,
        text,
    }))
}

/// One agent bot's use of Chatwoot's application API.
#[derive(Debug)]
pub struct ChatwootApi {
    base: Url,
    token: String,
    http: reqwest::Client,
}

impl ChatwootApi {
    pub fn new(base: Url, token: &str, timeout: Duration) -> Result<ChatwootApi, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(ChatwootApi { base, token: token.to_string(), http })
    }

    fn conversation_url(&self, to: ConversationRef, tail: &str) -> Url {
        let path = format!("/api/v1/accounts/{}/conversations/{}{tail}", to.account_id, to.conversation_id);
        api_url(&self.base, &path)
    }

    async fn post(&self, to: ConversationRef, tail: &str, body: &Value) -> Result<Value, SendError> {
        let request =
            self.http.post(self.conversation_url(to, tail)).header("api_access_token", &self.token).json(body);
        json_reply("Chatwoot", request).await
    }

    async fn get(&self, to: ConversationRef, tail: &str) -> Result<Value, SendError> {
        let request = self.http.get(self.conversation_url(to, tail)).header("api_access_token", &self.token);
        json_reply("Chatwoot", request).await
    }

    /// Whether the bot still holds the conversation (pending, nobody assigned).
    async fn bot_holds(&self, to: ConversationRef) -> Result<bool, SendError> {
        let conversation = self.get(to, "").await?;
        let assigned = conversation["meta"]["assignee"].is_object();
        Ok(conversation["status"] == "pending" && !assigned)
    }

    /// Answers in the conversation; a clarifying question's choices as
    /// Chatwoot's `input_select`. Refused once people took the conversation:
    /// the bot never talks over an agent.
    pub async fn send_text(&self, to: ConversationRef, text: &str, options: &[MenuOption]) -> Result<(), SendError> {
        if !self.bot_holds(to).await? {
            return Err(SendError::Refused(
                "an agent holds the Chatwoot conversation now: the bot stays silent".into(),
            ));
        }
        let mut body = json!({"content": text, "message_type": "outgoing"});
        if !options.is_empty() {
            let items: Vec<Value> = options.iter().map(|o| json!({"title": o.title, "value": o.id})).collect();
            body["content_type"] = json!("input_select");
            body["content_attributes"] = json!({"items": items});
        }
        self.post(to, "/messages", &body).await.map(drop)
    }

    /// Hands the conversation to Chatwoot's agents: a private note for them
    /// (why, the profile, the hints), then the conversation opened. A
    /// `retried` hand-over first looks for its note among the conversation's
    /// latest messages: when the note went out and opening failed, the agents
    /// get it once.
    pub async fn hand_over(&self, to: ConversationRef, note: &str, retried: bool) -> Result<(), SendError> {
        if !self.bot_holds(to).await? {
            return Ok(()); // people already took it
        }
        let already_posted = retried && self.has_private_note(to, note).await?;
        if !note.is_empty() && !already_posted {
            let body = json!({"content": note, "message_type": "outgoing", "private": true});
            self.post(to, "/messages", &body).await?;
        }
        self.post(to, "/toggle_status", &json!({"status": "open"})).await.map(drop)
    }

    /// Whether the conversation's latest messages (the page Chatwoot lists
    /// first) hold a private note reading `note`.
    async fn has_private_note(&self, to: ConversationRef, note: &str) -> Result<bool, SendError> {
        let messages = self.get(to, "/messages").await?;
        let listed = messages["payload"].as_array().map(Vec::as_slice).unwrap_or_default();
        Ok(listed.iter().any(|m| m["private"] == true && m["content"] == note))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::timestamped_signature;

    fn event(status: &str, message_type: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "event": "message_created", "id": 501, "content": "退货地址在哪", "message_type": message_type,
            "private": false, "sender": {"id": 42, "type": "contact"}, "account": {"id": 3},
            "conversation": {"id": 7, "status": status, "meta": {"assignee": null}}
        }))
        .unwrap()
    }

    #[test]
    fn reads_only_customers_messages_in_pending_conversations() {
        let inbound = open(None, None, None, &event("pending", "incoming"), 0).unwrap();
        let Inbound::Message(message) = inbound else { panic!("{inbound:?}") };
        assert_eq!((message.message_id.as_str(), message.contact.as_str()), ("501", "42"));
        assert_eq!(message.conversation.thread(), "3/7");
        assert_eq!(ConversationRef::from_thread("3/7"), Some(message.conversation));
        for (status, kind) in [("open", "incoming"), ("pending", "outgoing"), ("resolved", "incoming")] {
            assert!(
                matches!(open(None, None, None, &event(status, kind), 0), Ok(Inbound::Ignored(_))),
                "{status} {kind}"
            );
        }
        let assigned =
            br#"{"event":"message_created","id":1,"content":"hi","message_type":"incoming","sender":{"id":1},
            "account":{"id":1},"conversation":{"id":1,"status":"pending","meta":{"assignee":{"id":9}}}}"#;
        assert!(matches!(open(None, None, None, assigned, 0), Ok(Inbound::Ignored(_))));
        let other = br#"{"event":"conversation_opened"}"#;
        assert!(matches!(open(None, None, None, other, 0), Ok(Inbound::Ignored(_))));
        assert!(matches!(open(None, None, None, b"not json", 0), Err(ChatwootError::BadEvent(_))));
    }

    #[test]
    fn a_configured_secret_requires_a_fresh_signature() {
        let body = event("pending", "incoming");
        let signed = timestamped_signature("s3cret", "1700000000", &body);
        let open_at = |secret, ts, sig, now| open(Some(secret), ts, sig, &body, now);
        assert!(open_at("s3cret", Some("1700000000"), Some(signed.as_str()), 1_700_000_100).is_ok());
        assert_eq!(
            open_at("other", Some("1700000000"), Some(&signed), 1_700_000_000),
            Err(ChatwootError::BadSignature)
        );
        assert_eq!(open_at("s3cret", None, None, 1_700_000_000), Err(ChatwootError::BadSignature));
        assert_eq!(
            open_at("s3cret", Some("1700000000"), Some(&signed), 1_700_001_000),
            Err(ChatwootError::StaleTimestamp)
        );
    }
}
