//! WeCom 微信客服 (kf): the callback (WeChat's scheme, always encrypted,
//! addressed to the CorpID) is only a doorbell, `kf_msg_or_event` with a
//! token valid ten minutes; messages are pulled with `sync_msg` from a cursor
//! the store keeps; replies go out with `send_msg` (a text, or a menu for a
//! clarifying question's choices); `service_state/trans` hands a customer to
//! WeCom's queue or to one servicer.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::wechat::api::ApiClient;
use super::wechat::Fields;
use super::{MenuOption, SendError};

/// `origin` of a message the customer wrote (3); others are system events and servicers.
pub const FROM_CUSTOMER: i64 = 3;

/// Messages pulled per `sync_msg` call.
const SYNC_LIMIT: u32 = 1000;

/// The doorbell's content: pull with this token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doorbell {
    pub token: String,
    pub open_kfid: String,
}

/// The doorbell in a decrypted callback, if it is one.
pub fn doorbell(fields: &Fields) -> Option<Doorbell> {
    (fields.get("Event").map(String::as_str) == Some("kf_msg_or_event")).then(|| Doorbell {
        token: fields.get("Token").cloned().unwrap_or_default(),
        open_kfid: fields.get("OpenKfId").cloned().unwrap_or_default(),
    })
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct KfText {
    #[serde(default)]
    pub content: String,
}

/// One pulled message.
#[derive(Debug, Clone, Deserialize)]
pub struct KfMessage {
    pub msgid: String,
    #[serde(default)]
    pub external_userid: String,
    #[serde(default)]
    pub origin: i64,
    #[serde(default)]
    pub msgtype: String,
    pub text: Option<KfText>,
}

/// One page of `sync_msg`.
#[derive(Debug, Clone, Deserialize)]
pub struct SyncPage {
    #[serde(default)]
    pub next_cursor: String,
    #[serde(default)]
    pub has_more: i64,
    #[serde(default)]
    pub msg_list: Vec<KfMessage>,
}

/// Where WeCom hands a customer at a hand-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handoff {
    /// Nowhere in WeCom: kefu's own workspace takes it (and replies through `send_msg`).
    Workspace,
    /// WeCom's queue of servicers (state 2).
    Queue,
    /// One servicer (state 3).
    Servicer(String),
}

/// kf business errors (95xxx) and unknown users: another try cannot fix them.
fn kf_refusal(code: i64) -> bool {
    code / 1000 == 95 || code == 40096
}

/// One kf account's API.
#[derive(Debug)]
pub struct KfApi {
    client: ApiClient,
    open_kfid: String,
}

impl KfApi {
    pub fn new(
        base: Url,
        corp_id: &str,
        secret: &str,
        open_kfid: &str,
        timeout: Duration,
    ) -> Result<KfApi, reqwest::Error> {
        let query = vec![("corpid", corp_id.to_string()), ("corpsecret", secret.to_string())];
        let client = ApiClient::new("WeCom", base, "/cgi-bin/gettoken", query, kf_refusal, timeout)?;
        Ok(KfApi { client, open_kfid: open_kfid.to_string() })
    }

    /// The messages after `cursor` (from the start of WeCom's 3 days when none).
    pub async fn sync(&self, cursor: Option<&str>, token: &str) -> Result<SyncPage, SendError> {
        let mut body = json!({"token": token, "limit": SYNC_LIMIT, "voice_format": 0, "open_kfid": self.open_kfid});
        if let Some(cursor) = cursor {
            body["cursor"] = json!(cursor);
        }
        let reply = self.client.post("/cgi-bin/kf/sync_msg", &body).await?;
        serde_json::from_value(reply).map_err(|e| SendError::Retryable(format!("WeCom's sync_msg reply: {e}")))
    }

    /// Sends a text, as a menu when it offers choices. `msgid` (≤ 32 of
    /// [0-9a-zA-Z_-]) names the message, so a retry is the same message.
    pub async fn send_text(
        &self,
        user: &str,
        text: &str,
        options: &[MenuOption],
        msgid: &str,
    ) -> Result<(), SendError> {
        let mut body = json!({"touser": user, "open_kfid": self.open_kfid, "msgid": msgid});
        if options.is_empty() {
            body["msgtype"] = json!("text");
            body["text"] = json!({"content": text});
        } else {
            let list: Vec<_> =
                options.iter().map(|o| json!({"type": "click", "click": {"id": o.id, "content": o.title}})).collect();
            body["msgtype"] = json!("msgmenu");
            body["msgmenu"] = json!({"head_content": text, "list": list});
        }
        self.client.post("/cgi-bin/kf/send_msg", &body).await.map(drop)
    }

    /// Hands the customer to WeCom's queue or a servicer.
    pub async fn transfer(&self, user: &str, to: &Handoff) -> Result<(), SendError> {
        let mut body = json!({"open_kfid": self.open_kfid, "external_userid": user});
        match to {
            Handoff::Workspace => return Ok(()),
            Handoff::Queue => body["service_state"] = json!(2),
            Handoff::Servicer(userid) => {
                body["service_state"] = json!(3);
                body["servicer_userid"] = json!(userid);
            }
        }
        self.client.post("/cgi-bin/kf/service_state/trans", &body).await.map(drop)
    }
}
