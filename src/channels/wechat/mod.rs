//! WeChat Official Accounts (公众号): the callback's signature check, its XML
//! messages in plain or safe mode, passive replies, and (in [`api`]) the
//! customer-service message API for replies that miss the 5-second window.
//! WeCom shares the callback scheme (always encrypted) and the API style.

pub mod api;
pub mod crypto;

use std::collections::BTreeMap;

use serde::Deserialize;

pub use crypto::{CryptoError, MessageCrypto};

// WeChat's retries come within seconds: an older timestamp is a replay.
use super::REPLAY_WINDOW_SECS;

/// Fields of one message are short; a body with more of them is not WeChat's.
const MAX_FIELDS: usize = 64;

/// Why a callback was refused.
#[derive(Debug, thiserror::Error)]
pub enum WechatError {
    #[error("the signature does not match")]
    BadSignature,
    #[error("the timestamp is missing, malformed or more than {REPLAY_WINDOW_SECS} s from now")]
    StaleTimestamp,
    #[error("not a WeChat message: {0}")]
    BadXml(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("safe mode is not configured for this account (no encoding_aes_key)")]
    NotInSafeMode,
}

/// The query string WeChat sends with every callback.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    pub signature: String,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub nonce: String,
    pub echostr: Option<String>,
    /// `aes` in safe mode.
    pub encrypt_type: Option<String>,
    pub msg_signature: Option<String>,
}

/// What a customer's message or action is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Text(String),
    /// subscribe, unsubscribe, CLICK (with the menu key), SCAN, ...
    Event {
        event: String,
        key: Option<String>,
    },
    /// image, voice, video, location, link, ...: nothing the bot can read.
    Other(String),
}

/// One inbound message, decrypted and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The account's own id (gh_...): the `FromUserName` of a reply.
    pub account_id: String,
    /// The customer's openid.
    pub openid: String,
    pub create_time: i64,
    /// WeChat's MsgId; events have none.
    pub msg_id: Option<String>,
    pub content: Content,
    /// Whether it came encrypted, so the reply must be too.
    pub encrypted: bool,
}

impl Inbound {
    /// The id WeChat's retries of this message share: MsgId, or sender and time for events.
    pub fn dedupe_key(&self) -> String {
        match &self.msg_id {
            Some(id) => id.clone(),
            None => format!("{}:{}", self.openid, self.create_time),
        }
    }
}

/// One Official Account's callback keys.
#[derive(Debug, Clone)]
pub struct CallbackKeys {
    pub token: String,
    /// Safe mode's key, checked against the AppId.
    pub crypto: Option<MessageCrypto>,
}

impl CallbackKeys {
    /// The URL check: `echostr` back when the signature matches.
    pub fn verify_url(&self, query: &CallbackQuery, now: i64) -> Result<String, WechatError> {
        self.check_plain_signature(query, now)?;
        Ok(query.echostr.clone().unwrap_or_default())
    }

    fn check_plain_signature(&self, query: &CallbackQuery, now: i64) -> Result<(), WechatError> {
        check_timestamp(&query.timestamp, now)?;
        let parts = [self.token.as_str(), &query.timestamp, &query.nonce];
        if !crypto::signature_matches(&query.signature, &parts) {
            return Err(WechatError::BadSignature);
        }
        Ok(())
    }

    /// The message of a POSTed callback, its signature checked and, in safe mode, decrypted.
    pub fn open(&self, query: &CallbackQuery, body: &str, now: i64) -> Result<Inbound, WechatError> {
        if query.encrypt_type.as_deref() != Some("aes") {
            // The signature first: nothing unsigned is parsed.
            self.check_plain_signature(query, now)?;
            return inbound(&parse_fields(body)?, false);
        }
        inbound(&self.open_encrypted(query, body, now)?, true)
    }

    /// The fields of an encrypted callback (safe mode; every WeCom callback),
    /// once `msg_signature` over its `Encrypt` matches.
    pub fn open_encrypted(&self, query: &CallbackQuery, body: &str, now: i64) -> Result<Fields, WechatError> {
        let crypto = self.crypto.as_ref().ok_or(WechatError::NotInSafeMode)?;
        check_timestamp(&query.timestamp, now)?;
        let fields = parse_fields(body)?;
        let encrypted = fields.get("Encrypt").ok_or_else(|| WechatError::BadXml("no Encrypt field".into()))?;
        self.check_msg_signature(query, encrypted)?;
        parse_fields(&crypto.decrypt(encrypted)?)
    }

    /// WeCom's URL check: `echostr` comes encrypted and goes back decrypted.
    pub fn decrypt_echo(&self, query: &CallbackQuery, now: i64) -> Result<String, WechatError> {
        let crypto = self.crypto.as_ref().ok_or(WechatError::NotInSafeMode)?;
        check_timestamp(&query.timestamp, now)?;
        let echo = query.echostr.as_deref().unwrap_or_default();
        self.check_msg_signature(query, echo)?;
        Ok(crypto.decrypt(echo)?)
    }

    fn check_msg_signature(&self, query: &CallbackQuery, encrypted: &str) -> Result<(), WechatError> {
        let given = query.msg_signature.as_deref().unwrap_or_default();
        if !crypto::signature_matches(given, &[self.token.as_str(), &query.timestamp, &query.nonce, encrypted]) {
            return Err(WechatError::BadSignature);
        }
        Ok(())
    }

    /// A passive reply's body: `xml` as is, or in safe mode's signed envelope.
    pub fn seal_reply(&self, xml: &str, encrypted: bool, now: i64, random: [u8; 16]) -> String {
        let Some(crypto) = self.crypto.as_ref().filter(|_| encrypted) else { return xml.to_string() };
        let nonce = hex::encode(&random[..5]);
        let timestamp = now.to_string();
        let payload = crypto.encrypt(xml, random);
        let signature = crypto::signature(&[self.token.as_str(), &timestamp, &nonce, &payload]);
        format!(
            "<xml><Encrypt>{}</Encrypt><MsgSignature>{}</MsgSignature><TimeStamp>{timestamp}</TimeStamp><Nonce>{}</Nonce></xml>",
            cdata(&payload),
            cdata(&signature),
            cdata(&nonce)
        )
    }
}

fn check_timestamp(timestamp: &str, now: i64) -> Result<(), WechatError> {
    match timestamp.parse::<i64>() {
        Ok(at) if (now - at).abs() <= REPLAY_WINDOW_SECS => Ok(()),
        _ => Err(WechatError::StaleTimestamp),
    }
}

/// The child elements of a flat `<xml>` document, by name.
pub type Fields = BTreeMap<String, String>;

/// The child elements of a flat `<xml>` document. DTDs (and so entity
/// tricks) are refused by the parser.
fn parse_fields(text: &str) -> Result<Fields, WechatError> {
    let document = roxmltree::Document::parse(text).map_err(|e| WechatError::BadXml(e.to_string()))?;
    let root = document.root_element();
    if root.tag_name().name() != "xml" {
        return Err(WechatError::BadXml("the root element is not <xml>".into()));
    }
    let mut fields = BTreeMap::new();
    for child in root.children().filter(roxmltree::Node::is_element) {
        if fields.len() == MAX_FIELDS {
            return Err(WechatError::BadXml(format!("more than {MAX_FIELDS} fields")));
        }
        let text: String = child.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).collect();
        fields.insert(child.tag_name().name().to_string(), text);
    }
    Ok(fields)
}

fn inbound(fields: &Fields, encrypted: bool) -> Result<Inbound, WechatError> {
    let field = |name: &str| {
        fields.get(name).filter(|v| !v.is_empty()).cloned().ok_or_else(|| WechatError::BadXml(format!("no {name}")))
    };
    let create_time = field("CreateTime")?.trim().parse().map_err(|_| WechatError::BadXml("bad CreateTime".into()))?;
    let content = match field("MsgType")?.as_str() {
        "text" => Content::Text(fields.get("Content").cloned().unwrap_or_default()),
        "event" => {
            Content::Event { event: field("Event")?, key: fields.get("EventKey").cloned().filter(|k| !k.is_empty()) }
        }
        other => Content::Other(other.to_string()),
    };
    Ok(Inbound {
        account_id: field("ToUserName")?,
        openid: field("FromUserName")?,
        create_time,
        msg_id: fields.get("MsgId").cloned().filter(|v| !v.is_empty()),
        content,
        encrypted,
    })
}

/// Text inside CDATA, with any `]]>` in it split across two sections.
fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

/// A passive text reply to `to`'s message.
pub fn text_reply(to: &Inbound, content: &str, now: i64) -> String {
    format!(
        "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>{}</Content></xml>",
        cdata(&to.openid),
        cdata(&to.account_id),
        cdata(content)
    )
}

/// A passive reply that hands the conversation to the account's agents in
/// WeChat's own customer-service desk.
pub fn transfer_reply(to: &Inbound, now: i64) -> String {
    format!(
        "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[transfer_customer_service]]></MsgType></xml>",
        cdata(&to.openid),
        cdata(&to.account_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn keys() -> CallbackKeys {
        let crypto = MessageCrypto::new("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wxappid").unwrap();
        CallbackKeys { token: "tok".into(), crypto: Some(crypto) }
    }

    fn signed(nonce: &str) -> CallbackQuery {
        let timestamp = NOW.to_string();
        CallbackQuery {
            signature: crypto::signature(&["tok", &timestamp, nonce]),
            timestamp,
            nonce: nonce.into(),
            ..CallbackQuery::default()
        }
    }

    const TEXT: &str = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o-user]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[退货地址 ]]]]><![CDATA[>]]></Content><MsgId>42</MsgId></xml>";

    #[test]
    fn plain_messages_are_checked_and_parsed() {
        let message = keys().open(&signed("n1"), TEXT, NOW).unwrap();
        assert_eq!(message.content, Content::Text("退货地址 ]]>".into()));
        assert_eq!(
            (message.openid.as_str(), message.dedupe_key().as_str(), message.encrypted),
            ("o-user", "42", false)
        );
        let mut forged = signed("n1");
        forged.nonce = "n2".into();
        assert!(matches!(keys().open(&forged, TEXT, NOW), Err(WechatError::BadSignature)));
        assert!(matches!(keys().open(&signed("n1"), TEXT, NOW + 3600), Err(WechatError::StaleTimestamp)));
        let reply = text_reply(&message, "a ]]> b", NOW);
        let parsed = parse_fields(&reply).unwrap();
        assert_eq!((parsed["ToUserName"].as_str(), parsed["Content"].as_str()), ("o-user", "a ]]> b"));
    }

    #[test]
    fn safe_mode_round_trips_and_replies_are_sealed() {
        let keys = keys();
        let crypto = keys.crypto.clone().unwrap();
        let encrypted = crypto.encrypt(TEXT, [3; 16]);
        let body = format!("<xml><ToUserName>gh_1</ToUserName><Encrypt>{}</Encrypt></xml>", cdata(&encrypted));
        let mut query = signed("n1");
        query.encrypt_type = Some("aes".into());
        query.msg_signature = Some(crypto::signature(&["tok", &query.timestamp, "n1", &encrypted]));
        let message = keys.open(&query, &body, NOW).unwrap();
        assert!(message.encrypted);
        let sealed = keys.seal_reply(&text_reply(&message, "好的", NOW), true, NOW, [9; 16]);
        let envelope = parse_fields(&sealed).unwrap();
        let signature = crypto::signature(&["tok", &envelope["TimeStamp"], &envelope["Nonce"], &envelope["Encrypt"]]);
        assert_eq!(envelope["MsgSignature"], signature);
        assert!(crypto.decrypt(&envelope["Encrypt"]).unwrap().contains("好的"));
        query.msg_signature = Some("0".repeat(40));
        assert!(matches!(keys.open(&query, &body, NOW), Err(WechatError::BadSignature)));
    }

    #[test]
    fn hostile_xml_is_refused() {
        let entity = "<?xml version=\"1.0\"?><!DOCTYPE xml [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><xml><Content>&x;</Content></xml>";
        let bomb = "<!DOCTYPE xml [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]><xml><Content>&b;</Content></xml>";
        let wide = format!("<xml>{}</xml>", "<F>1</F>".repeat(100));
        let many = format!("<xml>{}</xml>", (0..100).map(|i| format!("<F{i}>1</F{i}>")).collect::<String>());
        for bad in [entity, bomb, "<xml><a></xml>", "not xml", "<html/>", "", &many] {
            assert!(keys().open(&signed("n"), bad, NOW).is_err(), "{bad}");
        }
        // Repeated names are one field, taken once; still not a message.
        assert!(matches!(keys().open(&signed("n"), &wide, NOW), Err(WechatError::BadXml(_))));
    }
}
