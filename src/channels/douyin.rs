//! Douyin's open platform (access is granted per enterprise): webhooks
//! signed with `X-Douyin-Signature = sha1_hex(client_secret ‖ body)`, the
//! `verify_webhook` challenge, private messages (`im_receive_msg`) answered
//! with the IM send API, and comments (`item_comment_reply`) answered in
//! their comment thread. The thread a reply goes to is kept in the route:
//! `im:<conversation>:<message>` or `comment:<item>:<comment>`.
//!
//! NOTE: field names follow the platform's documentation and the
//! DotNetCore.SKIT ByteDance SDK's models; the event's `content` is sometimes
//! a JSON string, so both are read.

use std::time::Duration;

use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use url::Url;

use super::tokens::TokenCache;
use super::SendError;

/// The header carrying the webhook's signature.
pub const SIGNATURE_HEADER: &str = "x-douyin-signature";
/// The header naming the delivery, the same on the platform's retries.
pub const MESSAGE_ID_HEADER: &str = "msg-id";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DouyinError {
    #[error("X-Douyin-Signature does not match the body (sha1 of client_secret and body)")]
    BadSignature,
    #[error("not a Douyin event: {0}")]
    BadEvent(String),
}

/// What a webhook delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The platform checks the URL: answer the challenge.
    Verify { challenge: Value },
    /// A customer's text, with where to answer it.
    Message { user: String, thread: String, key: String, text: Option<String> },
    /// Anything else: acknowledged.
    Other(String),
}

/// The event in a webhook, its signature checked first.
pub fn open(client_secret: &str, signature: &str, msg_id: Option<&str>, body: &[u8]) -> Result<Event, DouyinError> {
    let mut hash = Sha1::new();
    hash.update(client_secret.as_bytes());
    hash.update(body);
    if !crate::support::same_secret(&hex::encode(hash.finalize()), &signature.trim().to_ascii_lowercase()) {
        return Err(DouyinError::BadSignature);
    }
    let envelope: Value = serde_json::from_slice(body).map_err(|e| DouyinError::BadEvent(e.to_string()))?;
    let event = envelope["event"].as_str().ok_or_else(|| DouyinError::BadEvent("no event".into()))?;
    // `content` comes as an object or as a JSON string.
    let content = match &envelope["content"] {
        Value::String(text) => serde_json::from_str(text).unwrap_or(Value::String(text.clone())),
        other => other.clone(),
    };
    let text_of = |v: &Value| v.as_str().map(str::to_string).filter(|t| !t.trim().is_empty());
    let id_of = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let from = envelope["from_user_id"].as_str().unwrap_or_default().to_string();
    Ok(match event {
        "verify_webhook" => Event::Verify { challenge: content["challenge"].clone() },
        "im_receive_msg" => {
            let conversation = id_of(&content["conversation_short_id"]).unwrap_or_default();
            let message = id_of(&content["server_message_id"]).unwrap_or_default();
            let text = match content["message_type"].as_str() {
                Some("text") | None => text_of(&content["text"]).or_else(|| text_of(&content["content"])),
                Some(_) => None,
            };
            if from.is_empty() || conversation.is_empty() {
                return Err(DouyinError::BadEvent(
                    "a private message needs from_user_id and conversation_short_id".into(),
                ));
            }
            let key = msg_id.map(str::to_string).unwrap_or_else(|| format!("im:{message}"));
            Event::Message { user: from, thread: format!("im:{conversation}:{message}"), key, text }
        }
        "item_comment_reply" => {
            let item = id_of(&content["reply_to_item_id"]).unwrap_or_default();
            let comment = id_of(&content["comment_id"]).unwrap_or_default();
            let user = content["comment_user_id"].as_str().map(str::to_string).unwrap_or(from);
            if user.is_empty() || item.is_empty() || comment.is_empty() {
                return Err(DouyinError::BadEvent("a comment needs its user, item and comment ids".into()));
            }
            let key = msg_id.map(str::to_string).unwrap_or_else(|| format!("comment:{comment}"));
            Event::Message {
                user,
                thread: format!("comment:{item}:{comment}"),
                key,
                text: text_of(&content["content"]),
            }
        }
        other => Event::Other(other.to_string()),
    })
}

/// One Douyin account's API: a client token for every sender, private
/// messages and comment replies.
#[derive(Debug)]
pub struct DouyinApi {
    base: Url,
    client_key: String,
    client_secret: String,
    /// The enterprise account's own open_id (the `open_id` of reply calls).
    open_id: String,
    http: reqwest::Client,
    token: TokenCache,
}

impl DouyinApi {
    pub fn new(
        base: Url,
        client_key: &str,
        client_secret: &str,
        open_id: &str,
        timeout: Duration,
    ) -> Result<DouyinApi, reqwest::Error> {
        Ok(DouyinApi {
            base,
            client_key: client_key.into(),
            client_secret: client_secret.into(),
            open_id: open_id.into(),
            http: reqwest::Client::builder().timeout(timeout).build()?,
            token: TokenCache::default(),
        })
    }

    fn url(&self, path: &str) -> Url {
        super::api_url(&self.base, path)
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, SendError> {
        let reply = super::json_reply("Douyin", request).await?;
        // Errors come as data.error_code or err_no, by API generation.
        let code = reply["data"]["error_code"].as_i64().or(reply["err_no"].as_i64()).unwrap_or(0);
        match code {
            0 => Ok(reply),
            // Rate limits and the platform's own failures may pass; the rest will not.
            2100004 | 2190002 | 2190004 | -1 => Err(SendError::Retryable(format!("Douyin failed: {code} {reply}"))),
            _ => Err(SendError::Refused(format!("Douyin refused: {code} {}", reply["data"]["description"]))),
        }
    }

    async fn client_token(&self) -> Result<String, SendError> {
        self.token
            .get(|| async {
                let body = json!({"client_key": self.client_key, "client_secret": self.client_secret, "grant_type": "client_credential"});
                let reply = self.call(self.http.post(self.url("/oauth/client_token/")).json(&body)).await?;
                let token = reply["data"]["access_token"].as_str().ok_or_else(|| {
                    SendError::Retryable("Douyin's client_token reply has no access_token".into())
                })?;
                Ok((token.to_string(), Duration::from_secs(reply["data"]["expires_in"].as_u64().unwrap_or(7200))))
            })
            .await
    }

    /// Sends `text` to `user` in the thread a route names.
    pub async fn reply(&self, user: &str, thread: &str, text: &str) -> Result<(), SendError> {
        let token = self.client_token().await?;
        let parts: Vec<&str> = thread.split(':').collect();
        let (path, body) = match parts.as_slice() {
            ["im", conversation, message] => (
                "/im/send/msg/",
                json!({"msg_id": message, "conversation_id": conversation, "to_user_id": user,
                       "content": {"msg_type": 1, "text": {"text": text}}, "scene": "im_replay_msg"}),
            ),
            ["comment", item, comment] => {
                ("/item/comment/reply/", json!({"item_id": item, "comment_id": comment, "content": text}))
            }
            _ => return Err(SendError::Refused(format!("no Douyin thread to reply in: {thread:?}"))),
        };
        let request = self
            .http
            .post(self.url(path))
            .query(&[("open_id", &self.open_id)])
            .header("access-token", token)
            .json(&body);
        self.call(request).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(body: &str) -> String {
        hex::encode(Sha1::digest(format!("secret{body}").as_bytes()))
    }

    #[test]
    fn webhooks_are_signed_and_read_in_both_content_shapes() {
        let verify = r#"{"event":"verify_webhook","client_key":"ck","content":{"challenge":12345}}"#;
        assert_eq!(
            open("secret", &signed(verify), None, verify.as_bytes()),
            Ok(Event::Verify { challenge: json!(12345) })
        );
        assert_eq!(open("other", &signed(verify), None, verify.as_bytes()), Err(DouyinError::BadSignature));
        let im = r#"{"event":"im_receive_msg","from_user_id":"u1","to_user_id":"biz","content":"{\"conversation_short_id\":\"7001\",\"server_message_id\":\"9001\",\"message_type\":\"text\",\"text\":\"退货地址\"}"}"#;
        let event = open("secret", &signed(im), Some("delivery-1"), im.as_bytes()).unwrap();
        assert_eq!(
            event,
            Event::Message {
                user: "u1".into(),
                thread: "im:7001:9001".into(),
                key: "delivery-1".into(),
                text: Some("退货地址".into())
            }
        );
        let comment = r#"{"event":"item_comment_reply","from_user_id":"u2","content":{"comment_id":"c9","comment_user_id":"u2","content":"怎么退货","reply_to_item_id":"v7"}}"#;
        let Ok(Event::Message { thread, key, .. }) = open("secret", &signed(comment), None, comment.as_bytes()) else {
            panic!()
        };
        assert_eq!((thread.as_str(), key.as_str()), ("comment:v7:c9", "comment:c9"));
        for bad in ["not json", r#"{"content":{}}"#, r#"{"event":"im_receive_msg","content":{}}"#] {
            assert!(
                matches!(open("secret", &signed(bad), None, bad.as_bytes()), Err(DouyinError::BadEvent(_))),
                "{bad}"
            );
        }
    }
}
