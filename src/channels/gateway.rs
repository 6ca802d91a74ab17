//! The signed webhook gateway: how a company's own app, or a bridge to a
//! platform kefu has no adapter for, sends customers' messages to kefu and
//! takes the replies. Both directions are JSON signed the same way:
//! `X-Kefu-Timestamp: <unix seconds>` and `X-Kefu-Signature: sha256=<hex
//! HMAC-SHA256(secret, "<timestamp>.<body>")>`; a timestamp more than five
//! minutes off is a replay. See docs/gateway.md.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::{
    check_timestamped, timestamped_signature, transport_error, MenuOption, SendError, SignatureFault,
    REPLAY_WINDOW_SECS,
};

/// Header names of both directions.
pub const TIMESTAMP_HEADER: &str = "x-kefu-timestamp";
pub const SIGNATURE_HEADER: &str = "x-kefu-signature";

/// Longest id a caller may give (message and user ids), in bytes.
const MAX_ID_BYTES: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("X-Kefu-Signature does not match the body (sha256=<hex HMAC-SHA256(secret, \"<timestamp>.<body>\")>)")]
    BadSignature,
    #[error("X-Kefu-Timestamp is missing, malformed or more than {REPLAY_WINDOW_SECS} s from now")]
    StaleTimestamp,
    #[error("not a gateway message: {0}")]
    BadMessage(String),
}

/// A customer's message as the gateway takes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayMessage {
    /// The sender's id for this message; a retry with the same id is answered once.
    pub message_id: String,
    /// The customer's id in the sending system.
    pub user_id: String,
    pub text: String,
}

/// A reply as the gateway posts it to the callback URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayReply<'a> {
    /// kefu's id of the reply: the same on a retry of it.
    pub reply_id: &'a str,
    pub user_id: &'a str,
    /// text, or handoff (a person will answer).
    pub kind: &'a str,
    pub text: &'a str,
    /// A clarifying question's choices.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub options: &'a [MenuOption],
}

/// The message in `body`, its timestamp and signature checked first.
pub fn open(secret: &str, timestamp: &str, given: &str, body: &[u8], now: i64) -> Result<GatewayMessage, GatewayError> {
    check_timestamped(secret, timestamp, given, body, now).map_err(|fault| match fault {
        SignatureFault::Stale => GatewayError::StaleTimestamp,
        SignatureFault::Mismatch => GatewayError::BadSignature,
    })?;
    let message: GatewayMessage = serde_json::from_slice(body).map_err(|e| GatewayError::BadMessage(e.to_string()))?;
    for (field, value) in [("message_id", &message.message_id), ("user_id", &message.user_id)] {
        if value.is_empty() || value.len() > MAX_ID_BYTES || value.chars().any(char::is_control) {
            return Err(GatewayError::BadMessage(format!(
                "{field} must be 1 to {MAX_ID_BYTES} bytes without control characters"
            )));
        }
    }
    Ok(message)
}

/// Posts replies to one gateway account's callback URL, signed.
#[derive(Debug)]
pub struct GatewayClient {
    callback: Url,
    secret: String,
    http: reqwest::Client,
}

impl GatewayClient {
    pub fn new(callback: Url, secret: &str, timeout: Duration) -> Result<GatewayClient, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(GatewayClient { callback, secret: secret.to_string(), http })
    }

    /// Posts `reply`; a 4xx but 408 and 429 is a refusal, anything else but 2xx may pass later.
    pub async fn send(&self, reply: &GatewayReply<'_>, now: i64) -> Result<(), SendError> {
        let body = serde_json::to_vec(reply).expect("a reply serialises");
        let timestamp = now.to_string();
        let response = self
            .http
            .post(self.callback.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, &timestamp)
            .header(SIGNATURE_HEADER, timestamped_signature(&self.secret, &timestamp, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error("the gateway's callback", e))?;
        let status = response.status();
        match status.as_u16() {
            200..=299 => Ok(()),
            408 | 429 => Err(SendError::Retryable(format!("the gateway's callback answered {status}"))),
            400..=499 => Err(SendError::Refused(format!("the gateway's callback refused the reply: {status}"))),
            _ => Err(SendError::Retryable(format!("the gateway's callback answered {status}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    use super::*;

    #[test]
    fn messages_are_signed_fresh_and_well_formed() {
        let body = r#"{"message_id":"m1","user_id":"u1","text":"退货地址"}"#.as_bytes();
        let signed = timestamped_signature("s3cret", "1700000000", body);
        // The same HMAC as any library computes (here: the hmac crate by hand, over "<ts>.<body>").
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(&[b"1700000000.".as_slice(), body].concat());
        assert_eq!(signed, format!("sha256={}", hex::encode(mac.finalize().into_bytes())));
        let message = open("s3cret", "1700000000", &signed, body, 1_700_000_100).unwrap();
        assert_eq!((message.user_id.as_str(), message.text.as_str()), ("u1", "退货地址"));
        assert_eq!(open("other", "1700000000", &signed, body, 1_700_000_000), Err(GatewayError::BadSignature));
        assert_eq!(open("s3cret", "1700000000", &signed, body, 1_700_001_000), Err(GatewayError::StaleTimestamp));
        assert_eq!(open("s3cret", "soon", &signed, body, 1_700_000_000), Err(GatewayError::StaleTimestamp));
        let bad = r#"{"message_id":"","user_id":"u1","text":"x"}"#.as_bytes();
        let signed = timestamped_signature("s3cret", "1700000000", bad);
        assert!(matches!(open("s3cret", "1700000000", &signed, bad, 1_700_000_000), Err(GatewayError::BadMessage(_))));
    }
}
