//! The WeChat callback in process, against a loopback fake of WeChat's API:
//! passive replies, retries answered once, safe mode, replies through the
//! outbox with retries, reply windows, identity links, and hostile input.
//! (tests/channels.rs drives a real server with wechatpy, and kills it.)

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use super::*;
use crate::channels::chatwoot::ChatwootApi;
use crate::channels::gateway::GatewayClient;
use crate::channels::wechat::{crypto, CallbackKeys, MessageCrypto};
use crate::channels::wecom::{Handoff, KfApi};
use crate::channels::ReplyRoute;
use crate::service::channels::{
    ChannelAccounts, ChannelSettings, ChatwootAccount, DouyinAccount, GatewayAccount, WechatAccount, WecomAccount,
};
use crate::support::retry::Backoff;
use fake_platforms::FakePlatforms;

// NOTE: the integration tests' fake, shared as source: a crate's unit tests
// cannot use what its tests/ folder defines.
#[path = "../../../tests/common/fake_platforms.rs"]
#[allow(dead_code)] // the integration tests use the rest of it
mod fake_platforms;

const TOKEN: &str = "tok";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APP_ID: &str = "wxdemo";
const CORP_ID: &str = "wwcorp0001";
const GATEWAY_SECRET: &str = "gateway-secret-0123456789";
const DOUYIN_SECRET: &str = "douyin-client-secret";
const CHATWOOT_SECRET: &str = "chatwoot-webhook-secret";
const CHATWOOT_TOKEN: &str = "chatwoot-bot-token";
/// How long the channels' clients wait for the fake platforms: long, because
/// the fakes share a test's one thread with the bot, and CI runs the
/// model-backed tests side by side on two cores; a timed-out call is retried
/// and would show twice.
const PLATFORM_TIMEOUT: Duration = Duration::from_secs(15);

/// One account, "demo", whose API lives at `api_base`; quick retries.
pub(super) fn wechat_demo_account(api_base: &str) -> ChannelAccounts {
    let api = crate::channels::wechat::api::WechatApi::new(
        url::Url::parse(api_base).unwrap(),
        APP_ID,
        "secret",
        PLATFORM_TIMEOUT,
    )
    .unwrap();
    let keys = CallbackKeys { token: TOKEN.into(), crypto: Some(MessageCrypto::new(AES_KEY, APP_ID).unwrap()) };
    let account = WechatAccount { keys, api, transfer_to_desk: false };
    let kf_api =
        KfApi::new(url::Url::parse(api_base).unwrap(), CORP_ID, "secret", "wk-test", PLATFORM_TIMEOUT).unwrap();
    let kf_keys = CallbackKeys { token: TOKEN.into(), crypto: Some(MessageCrypto::new(AES_KEY, CORP_ID).unwrap()) };
    let kf = WecomAccount::new(kf_keys, kf_api, Handoff::Queue);
    let callback = url::Url::parse(&format!("{api_base}/gateway/callback")).unwrap();
    let app = GatewayAccount {
        secret: GATEWAY_SECRET.into(),
        client: GatewayClient::new(callback, GATEWAY_SECRET, PLATFORM_TIMEOUT).unwrap(),
    };
    let douyin_api = crate::channels::douyin::DouyinApi::new(
        url::Url::parse(api_base).unwrap(),
        "dy-key",
        DOUYIN_SECRET,
        "biz-open-id",
        PLATFORM_TIMEOUT,
    )
    .unwrap();
    let douyin = DouyinAccount { client_secret: DOUYIN_SECRET.into(), api: douyin_api };
    let chatwoot_api = ChatwootApi::new(url::Url::parse(api_base).unwrap(), CHATWOOT_TOKEN, PLATFORM_TIMEOUT).unwrap();
    let desk = ChatwootAccount { secret: Some(CHATWOOT_SECRET.into()), api: chatwoot_api };
    ChannelAccounts {
        chatwoot: [("desk".to_string(), Arc::new(desk))].into(),
        douyin: [("shop".to_string(), Arc::new(douyin))].into(),
        wechat: [("demo".to_string(), Arc::new(account))].into(),
        wecom: [("kf".to_string(), Arc::new(kf))].into(),
        gateway: [("app".to_string(), Arc::new(app))].into(),
        settings: ChannelSettings {
            backoff: Backoff::doubling(5, Duration::from_millis(20)),
            recover_after: Duration::from_millis(200),
            poll: Duration::from_millis(50),
            ..ChannelSettings::default()
        },
    }
}

/// A harness on the demo corpus with the "demo" account talking to a fake WeChat, its sender running.
async fn wechat_harness(passive_window: Duration) -> (Harness, Arc<FakePlatforms>) {
    let (base, fake) = FakePlatforms::start().await;
    let mut channels = wechat_demo_account(&base);
    channels.settings.passive_window = passive_window;
    let h = serve_with("corpus", 0.5, true, ApiSettings { channels, ..ApiSettings::default() }).await;
    tokio::spawn(h.state.channels().run_sender());
    (h, fake)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The query of a plaintext callback signed with the account's token.
fn signed(nonce: &str, at: i64) -> String {
    let at = at.to_string();
    format!("signature={}&timestamp={at}&nonce={nonce}", crypto::signature(&[TOKEN, &at, nonce]))
}

fn text_message(openid: &str, msg_id: u64, content: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_demo]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>",
        now()
    )
}

/// The text of an XML element, for reading replies.
fn field(xml: &str, name: &str) -> String {
    let document = roxmltree::Document::parse(xml).unwrap();
    let node = document.root_element().children().find(|n| n.has_tag_name(name));
    node.map(|n| n.descendants().filter(|d| d.is_text()).filter_map(|d| d.text()).collect()).unwrap_or_default()
}

impl Harness {
    /// POSTs a raw body to `uri`; the answer's status, content type and text.
    async fn post_raw(&self, uri: &str, body: impl Into<Body>) -> (StatusCode, String, String) {
        let client = std::net::SocketAddr::from(([203, 0, 113, 7], 40000));
        let request = Request::post(uri)
            .header("content-type", "text/xml")
            .extension(axum::extract::ConnectInfo(client))
            .body(body.into())
            .unwrap();
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, kind, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn customer_turns(&self, customer: &str) -> usize {
        let lines = self.state.store.customer_conversation(customer, 100).await.unwrap();
        lines.iter().filter(|l| l.role == "customer").count()
    }
}

/// Polls `check` for up to twenty seconds (CI runs the model-backed tests side by side on two cores).
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..400 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_text_message_gets_a_passive_reply_and_retries_are_answered_once() {
    let (h, fake) = wechat_harness(Duration::from_secs(4)).await;
    let route = ReplyRoute::new("wechat", "demo", "o-alice");
    h.state.store.link_identity(&route, "c2001", chrono::Utc::now()).await.unwrap();
    let uri = format!("/v1/channels/wechat/demo?{}", signed("n1", now()));
    let message = text_message("o-alice", 1001, "退货地址是哪里");
    let (status, kind, reply) = h.post_raw(&uri, message.clone()).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(kind.starts_with("application/xml"), "{kind}");
    assert_eq!((field(&reply, "ToUserName"), field(&reply, "FromUserName")), ("o-alice".into(), "gh_demo".into()));
    assert!(field(&reply, "Content").contains("退货"), "{reply}");
    // WeChat's retries of the same MsgId: acknowledged, not answered again.
    for _ in 0..2 {
        let (status, _, again) = h.post_raw(&uri, message.clone()).await;
        assert_eq!((status, again.as_str()), (StatusCode::OK, "success"));
    }
    assert_eq!(h.customer_turns("c2001").await, 1, "one stored turn");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(fake.sent_to("o-alice").is_empty(), "the passive reply was the only one");
    let counts = h.state.store.outbox_counts().await.unwrap();
    assert_eq!(counts, [("passive".to_string(), 1)]);
}

#[tokio::test]
async fn safe_mode_messages_are_decrypted_and_replies_sealed() {
    let (h, _) = wechat_harness(Duration::from_secs(4)).await;
    let crypto = MessageCrypto::new(AES_KEY, APP_ID).unwrap();
    let (at, nonce) = (now().to_string(), "n2");
    let encrypted = crypto.encrypt(&text_message("o-bob", 2001, "你们几点上班"), rand::random());
    let body =
        format!("<xml><ToUserName><![CDATA[gh_demo]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>");
    let msg_signature = crypto::signature(&[TOKEN, &at, nonce, &encrypted]);
    let uri = format!(
        "/v1/channels/wechat/demo?{}&encrypt_type=aes&msg_signature={msg_signature}",
        signed(nonce, at.parse().unwrap())
    );
    let (status, _, reply) = h.post_raw(&uri, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let sealed = field(&reply, "Encrypt");
    let expected = crypto::signature(&[TOKEN, &field(&reply, "TimeStamp"), &field(&reply, "Nonce"), &sealed]);
    assert_eq!(field(&reply, "MsgSignature"), expected);
    let inner = crypto.decrypt(&sealed).unwrap();
    assert_eq!(field(&inner, "ToUserName"), "o-bob");
    assert!(!field(&inner, "Content").is_empty(), "{inner}");
    // Another app's key, or a forged signature, is refused.
    let forged = uri.replace(&msg_signature, &"0".repeat(40));
    let (status, _, refused) = h.post_raw(&forged, body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
}

#[tokio::test]
async fn a_slow_bot_replies_through_the_outbox_with_retries() {
    // A zero passive window: every reply takes the customer-service API.
    let (h, fake) = wechat_harness(Duration::ZERO).await;
    // WeChat busy, rate-limited, calling the token expired, then timing out (the client waits 2 s).
    fake.failures.lock().unwrap().extend([-1, 45009, 42001]);
    fake.stalls.lock().unwrap().extend([Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::from_secs(3)]);
    let uri = format!("/v1/channels/wechat/demo?{}", signed("n3", now()));
    let (status, _, reply) = h.post_raw(&uri, text_message("o-carol", 3001, "退货地址是哪里")).await;
    assert_eq!((status, reply.as_str()), (StatusCode::OK, "success"));
    eventually("the reply after busy, rate-limit, expired-token and time-out failures", || {
        fake.sent_to("o-carol").len() == 1
    })
    .await;
    assert!(fake.sent_to("o-carol")[0].contains("退货"));
    assert_eq!(fake.tokens.load(Ordering::SeqCst), 2, "one token, renewed once when WeChat called it expired");
    // A refusal is not retried: the reply is marked failed with WeChat's error.
    fake.failures.lock().unwrap().push_back(45015);
    let uri = format!("/v1/channels/wechat/demo?{}", signed("n4", now()));
    h.post_raw(&uri, text_message("o-carol", 3002, "你们几点上班")).await;
    let store = h.state.store.clone();
    for _ in 0..100 {
        if store.outbox_counts().await.unwrap().contains(&("failed".to_string(), 1)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.outbox_counts().await.unwrap(), [("failed".to_string(), 1), ("sent".to_string(), 1)]);
    assert_eq!(fake.sent_to("o-carol").len(), 1);
}

#[tokio::test]
async fn agents_reply_on_wechat_within_its_window_and_quota() {
    let (h, fake) = wechat_harness(Duration::from_secs(4)).await;
    let uri = format!("/v1/channels/wechat/demo?{}", signed("n5", now()));
    let (_, _, reply) = h.post_raw(&uri, text_message("o-dave", 4001, "我要投诉，东西坏了三次了，转人工")).await;
    assert!(!field(&reply, "Content").is_empty(), "the holding message: {reply}");
    let (_, tickets) = h.call("GET", "/v1/tickets?status=new", None).await;
    let ticket =
        tickets["tickets"].as_array().unwrap().iter().find(|t| t["channel"] == "wechat").expect("a WeChat ticket");
    let id = ticket["id"].as_str().unwrap();
    h.call("POST", &format!("/v1/tickets/{id}/assign"), Some(json!({"agent": "li"}))).await;
    let mut deliveries = Vec::new();
    for n in 1..=6 {
        let (status, sent) =
            h.call("POST", &format!("/v1/tickets/{id}/messages"), Some(json!({"text": format!("第{n}条回复")}))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
        assert_eq!(sent["channel"], "wechat");
        deliveries.push(sent["delivery"].as_str().unwrap().to_string());
        if n == 6 {
            assert!(sent["reason"].as_str().unwrap().contains("5"), "the agent is told why: {sent}");
        }
    }
    assert_eq!(deliveries, ["queued", "queued", "queued", "queued", "queued", "failed"]);
    eventually("five replies on WeChat", || fake.sent_to("o-dave").len() == 5).await;
    assert_eq!(fake.sent_to("o-dave")[0], "第1条回复", "in order");
    assert_eq!(fake.tokens.load(Ordering::SeqCst), 1, "one access token for every send");
    // The customer writes again: the window reopens, and the message joins the agent's ticket.
    let uri = format!("/v1/channels/wechat/demo?{}", signed("n6", now()));
    let (_, _, silent) = h.post_raw(&uri, text_message("o-dave", 4002, "好的，我等你们消息")).await;
    assert_eq!(silent, "success", "the bot is silent while an agent owns the conversation");
    let (_, sent) = h.call("POST", &format!("/v1/tickets/{id}/messages"), Some(json!({"text": "收到"}))).await;
    assert_eq!(sent["delivery"], "queued", "{sent}");
    // The stored messages follow their delivery.
    eventually("the seventh reply", || fake.sent_to("o-dave").len() == 6).await;
    let (_, ticket) = h.call("GET", &format!("/v1/tickets/{id}"), None).await;
    let customer = ticket["customer_id"].as_str().unwrap().to_string();
    // The agent sees where each reply stands: six sent, the one past the quota failed with why.
    let mut agent = Vec::new();
    for _ in 0..50 {
        let lines = h.state.store.customer_conversation(&customer, 100).await.unwrap();
        assert!(lines.iter().any(|l| l.role == "customer" && l.text.contains("我等你们消息")), "{lines:?}");
        agent = lines
            .iter()
            .filter(|l| l.role == "agent")
            .map(|l| (l.delivery.clone().unwrap_or_default(), l.delivery_error.is_some()))
            .collect::<Vec<_>>();
        if agent.iter().filter(|(d, _)| d == "sent").count() == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(agent.iter().filter(|(d, e)| d == "sent" && !e).count(), 6, "{agent:?}");
    assert_eq!(agent.iter().filter(|(d, e)| d == "failed" && *e).count(), 1, "{agent:?}");
}

#[tokio::test]
async fn linked_identities_share_one_history_and_replies_follow_the_latest_channel() {
    let (h, fake) = wechat_harness(Duration::from_secs(4)).await;
    let uri = format!("/v1/channels/wechat/demo?{}", signed("n7", now()));
    h.post_raw(&uri, text_message("o-erin", 5001, "我的快递到哪了")).await;
    let route = ReplyRoute::new("wechat", "demo", "o-erin");
    let made = h.state.store.customer_of(&route, "unused", chrono::Utc::now()).await.unwrap();
    assert!(made.starts_with("wechat-"), "{made}");
    assert_eq!(h.customer_turns(&made).await, 1);
    // The customer binds their shop account: the identity joins c1001 and brings its history.
    let (status, linked) = h
        .call(
            "POST",
            "/v1/customers/c1001/identities",
            Some(json!({"channel": "wechat", "account": "demo", "external_id": "o-erin"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{linked}");
    assert_eq!(
        (linked["previous_customer_id"].as_str(), linked["merged"].as_bool()),
        (Some(made.as_str()), Some(true))
    );
    assert_eq!(h.customer_turns("c1001").await, 1);
    let (_, customer) = h.call("GET", "/v1/customers/c1001", None).await;
    assert_eq!(customer["identities"][0]["external_id"], "o-erin", "{customer}");
    // A hand-off from WeChat; the agent's reply goes to WeChat ...
    let uri = format!("/v1/channels/wechat/demo?{}", signed("n8", now()));
    h.post_raw(&uri, text_message("o-erin", 5002, "转人工")).await;
    let (_, tickets) = h.call("GET", "/v1/tickets?customer_id=c1001", None).await;
    let id = tickets["tickets"][0]["id"].as_str().unwrap().to_string();
    h.call("POST", &format!("/v1/tickets/{id}/assign"), Some(json!({"agent": "li"}))).await;
    let (_, sent) =
        h.call("POST", &format!("/v1/tickets/{id}/messages"), Some(json!({"text": "您好，我是客服"}))).await;
    assert_eq!(sent["channel"], "wechat", "{sent}");
    eventually("the reply on WeChat", || fake.sent_to("o-erin").len() == 1).await;
    // ... and after the customer writes in the web chat, to the web chat.
    h.call("POST", "/v1/answer", Some(json!({"text": "我在网页上了", "customer_id": "c1001", "channel": "web"}))).await;
    let (_, sent) = h.call("POST", &format!("/v1/tickets/{id}/messages"), Some(json!({"text": "好的"}))).await;
    assert_eq!((sent["channel"].as_str(), sent["delivery"].as_str()), (Some("web"), Some("sent")), "{sent}");
    assert_eq!(fake.sent_to("o-erin").len(), 1);
}

#[tokio::test]
async fn events_and_pictures_get_sensible_replies() {
    let (h, _) = wechat_harness(Duration::from_secs(4)).await;
    let event = |kind: &str, extra: &str| {
        format!("<xml><ToUserName>gh_demo</ToUserName><FromUserName>o-frank</FromUserName><CreateTime>{}</CreateTime><MsgType>{kind}</MsgType>{extra}</xml>", now())
    };
    let cases = [
        (event("event", "<Event>subscribe</Event>"), "你好"),
        (event("image", "<PicUrl>http://x/y.jpg</PicUrl><MsgId>6001</MsgId>"), "文字"),
        (event("voice", "<MediaId>m</MediaId><MsgId>6002</MsgId>"), "文字"),
        (event("location", "<Location_X>1</Location_X><MsgId>6003</MsgId>"), "文字"),
    ];
    for (n, (body, expected)) in cases.into_iter().enumerate() {
        let uri = format!("/v1/channels/wechat/demo?{}", signed(&format!("e{n}"), now()));
        let (status, _, reply) = h.post_raw(&uri, body).await;
        assert_eq!(status, StatusCode::OK);
        assert!(field(&reply, "Content").contains(expected), "{reply}");
    }
    let uri = format!("/v1/channels/wechat/demo?{}", signed("e9", now()));
    let (_, _, reply) = h.post_raw(&uri, event("event", "<Event>unsubscribe</Event>")).await;
    assert_eq!(reply, "success");
}

#[tokio::test]
async fn bad_callbacks_get_clear_refusals() {
    let (h, _) = wechat_harness(Duration::from_secs(4)).await;
    let good = text_message("o-gina", 7001, "你好");
    let cases: Vec<(String, Body, StatusCode)> = vec![
        ("/v1/channels/wechat/nobody?".to_string() + &signed("b1", now()), good.clone().into(), StatusCode::NOT_FOUND),
        (
            "/v1/channels/wechat/demo?signature=00&timestamp=1&nonce=x".into(),
            good.clone().into(),
            StatusCode::FORBIDDEN,
        ),
        (
            "/v1/channels/wechat/demo?".to_string() + &signed("b2", now() - 3600),
            good.clone().into(),
            StatusCode::FORBIDDEN,
        ),
        (
            "/v1/channels/wechat/demo?".to_string() + &signed("b3", now()),
            "<!DOCTYPE xml [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><xml><Content>&x;</Content></xml>".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/channels/wechat/demo?".to_string() + &signed("b4", now()),
            vec![0xff, 0xfe, 0x00].into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/channels/wechat/demo?".to_string() + &signed("b5", now()),
            format!("<xml>{}</xml>", "<a>1</a>".repeat(20_000)).into(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "/v1/channels/wechat/demo?".to_string() + &signed("b6", now()) + "&encrypt_type=aes&msg_signature=00",
            "<xml><Encrypt>AAAA</Encrypt></xml>".into(),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (uri, body, expected) in cases {
        let (status, _, answer) = h.post_raw(&uri, body).await;
        assert_eq!(status, expected, "{uri}: {answer}");
        assert!(answer.contains("\"error\""), "a JSON error: {answer}");
    }
    // The URL check: echostr back only with the right signature.
    let at = now();
    let (status, _, _) = h
        .send(None, "203.0.113.7", "GET", &format!("/v1/channels/wechat/demo?{}&echostr=hello", signed("v", at)), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// An encrypted WeCom callback of `xml`: its query and body.
fn wecom_callback(xml: &str, nonce: &str) -> (String, String) {
    let crypto = MessageCrypto::new(AES_KEY, CORP_ID).unwrap();
    let (at, encrypted) = (now().to_string(), crypto.encrypt(xml, rand::random()));
    let signature = crypto::signature(&[TOKEN, &at, nonce, &encrypted]);
    let body = format!("<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID>1</AgentID></xml>");
    (format!("msg_signature={signature}&timestamp={at}&nonce={nonce}"), body)
}

fn doorbell(nonce: &str) -> (String, String) {
    let xml = format!("<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event><Token><![CDATA[ENCtoken]]></Token><OpenKfId><![CDATA[wk-test]]></OpenKfId></xml>", now());
    wecom_callback(&xml, nonce)
}

#[tokio::test]
async fn wecom_messages_are_pulled_answered_once_and_handed_to_the_queue() {
    let (h, fake) = wechat_harness(Duration::from_secs(4)).await;
    // The URL check: echostr comes encrypted and goes back in clear.
    let crypto = MessageCrypto::new(AES_KEY, CORP_ID).unwrap();
    let (at, echo) = (now().to_string(), crypto.encrypt("echo-4711", rand::random()));
    let signature = crypto::signature(&[TOKEN, &at, "v1", &echo]);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("msg_signature", signature.as_str()), ("timestamp", &at), ("nonce", "v1"), ("echostr", &echo)])
        .finish();
    let (status, headers, _) =
        h.send(None, "203.0.113.7", "GET", &format!("/v1/channels/wecom/kf?{query}"), None).await;
    assert_eq!(status, StatusCode::OK, "{headers:?}");

    fake.kf_customer_says("m1", "wm-ann", "退货地址是哪里");
    fake.kf_customer_says("m2", "wm-ann", "我要投诉，转人工");
    fake.kf_inbox.lock().unwrap().push(json!({"msgid": "m3", "external_userid": "wm-ann", "origin": 3, "msgtype": "image", "image": {"media_id": "x"}}));
    let (query, body) = doorbell("d1");
    let (status, _, answer) = h.post_raw(&format!("/v1/channels/wecom/kf?{query}"), body).await;
    assert_eq!((status, answer.as_str()), (StatusCode::OK, "success"));
    eventually("three replies and a transfer", || {
        fake.sent_to("wm-ann").len() == 3 && fake.transfers.lock().unwrap().len() == 1
    })
    .await;
    let sent = fake.sent_to("wm-ann");
    assert!(sent[0].contains("退货"), "{sent:?}");
    assert!(sent[2].contains("文字"), "a picture gets the text-only reply: {sent:?}");
    assert_eq!(fake.transfers.lock().unwrap()[0]["service_state"], 2, "the hand-off goes to WeCom's queue");
    let msgids: Vec<String> =
        fake.sends.lock().unwrap().iter().map(|s| s["msgid"].as_str().unwrap().to_string()).collect();
    assert!(msgids.iter().all(|id| id.len() <= 32), "{msgids:?}");
    // The same messages pulled again (a doorbell twice, a cursor lost) are not answered twice.
    fake.kf_customer_says("m1", "wm-ann", "退货地址是哪里");
    fake.kf_customer_says("m4", "wm-ann", "你们几点上班");
    let (query, body) = doorbell("d2");
    h.post_raw(&format!("/v1/channels/wecom/kf?{query}"), body).await;
    eventually("the new message's reply", || fake.sent_to("wm-ann").len() == 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.sent_to("wm-ann").len(), 4);
    assert_eq!(h.state.store.channel_cursor("wecom", "kf").await.unwrap().as_deref(), Some("5"));
    // A forged doorbell is refused.
    let (query, body) = doorbell("d3");
    let forged = query.replace("msg_signature=", "msg_signature=0");
    let (status, _, _) = h.post_raw(&format!("/v1/channels/wecom/kf?{forged}"), body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn wecom_shows_a_clarifying_question_as_a_menu() {
    let (base, fake) = FakePlatforms::start().await;
    let api = KfApi::new(url::Url::parse(&base).unwrap(), CORP_ID, "secret", "wk-test", PLATFORM_TIMEOUT).unwrap();
    let options = [
        crate::channels::MenuOption { id: "return_address".into(), title: "退货地址".into() },
        crate::channels::MenuOption { id: "refund_status".into(), title: "退款进度".into() },
    ];
    api.send_text("wm-bo", "你是想问哪一个？", &options, "reply0001").await.unwrap();
    api.send_text("wm-bo", "好的", &[], "reply0002").await.unwrap();
    let sends = fake.sends.lock().unwrap().clone();
    assert_eq!(sends[0]["msgtype"], "msgmenu");
    assert_eq!(sends[0]["msgmenu"]["list"][1]["click"], json!({"id": "refund_status", "content": "退款进度"}));
    assert_eq!((sends[1]["msgtype"].as_str(), sends[1]["msgid"].as_str()), (Some("text"), Some("reply0002")));
    assert_eq!(fake.tokens.load(Ordering::SeqCst), 1);
}

/// A gateway message's headers, signed with HMAC-SHA256 as docs/gateway.md says (computed here by hand).
fn gateway_headers(body: &str, at: i64, secret: &str) -> Vec<(&'static str, String)> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{at}.{body}").as_bytes());
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    vec![("x-kefu-timestamp", at.to_string()), ("x-kefu-signature", signature)]
}

#[tokio::test]
async fn the_gateway_answers_signed_messages_once_and_posts_signed_replies() {
    let (h, fake) = wechat_harness(Duration::from_secs(4)).await;
    let post = |body: Value, at: i64, secret: &'static str| {
        let h = &h;
        async move {
            let text = body.to_string();
            let headers = gateway_headers(&text, at, secret);
            h.send_with(&headers, "203.0.113.9", "POST", "/v1/channels/gateway/app", Some(body)).await
        }
    };
    let message = json!({"message_id": "app-1", "user_id": "u-77", "text": "退货地址是哪里"});
    let (status, _, answer) = post(message.clone(), now(), GATEWAY_SECRET).await;
    assert_eq!((status, answer["status"].as_str()), (StatusCode::OK, Some("answered")), "{answer}");
    let (status, _, again) = post(message.clone(), now(), GATEWAY_SECRET).await;
    assert_eq!((status, again["status"].as_str()), (StatusCode::OK, Some("duplicate")));
    let (_, _, handoff) =
        post(json!({"message_id": "app-2", "user_id": "u-77", "text": "我要投诉，转人工"}), now(), GATEWAY_SECRET)
            .await;
    assert_eq!(handoff["status"], "answered");
    eventually("three signed replies", || fake.callbacks.lock().unwrap().len() == 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let callbacks = fake.callbacks.lock().unwrap().clone();
    assert_eq!(callbacks.len(), 3, "the duplicate is not answered again");
    for (at, signature, body) in &callbacks {
        let expected = &gateway_headers(body, at.parse().unwrap(), GATEWAY_SECRET)[1].1;
        assert_eq!(signature, expected, "replies are signed like messages");
    }
    let replies: Vec<Value> = callbacks.iter().map(|(_, _, b)| serde_json::from_str(b).unwrap()).collect();
    assert!(replies[0]["text"].as_str().unwrap().contains("退货"), "{replies:?}");
    assert_eq!((replies[0]["user_id"].as_str(), replies[0]["kind"].as_str()), (Some("u-77"), Some("text")));
    assert_eq!(replies[2]["kind"], "handoff", "{replies:?}");
    // Refused: another secret, a replayed timestamp, a body that is not a message, an unknown account.
    let (status, _, body) =
        post(json!({"message_id": "app-3", "user_id": "u", "text": "x"}), now(), "not-the-secret-at-all").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("bad_signature")));
    let (status, _, _) =
        post(json!({"message_id": "app-3", "user_id": "u", "text": "x"}), now() - 3600, GATEWAY_SECRET).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = post(json!({"id": 1}), now(), GATEWAY_SECRET).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_message")));
    let headers = gateway_headers("{}", now(), GATEWAY_SECRET);
    let (status, _, _) =
        h.send_with(&headers, "203.0.113.9", "POST", "/v1/channels/gateway/nobody", Some(json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A Douyin webhook of `event`, signed with the client secret.
async fn douyin_post(h: &Harness, event: &Value, delivery: &str, secret: &str) -> (StatusCode, Value) {
    use sha1::Digest;
    let body = event.to_string();
    let signature = hex::encode(sha1::Sha1::digest(format!("{secret}{body}").as_bytes()));
    let headers = [("x-douyin-signature", signature), ("msg-id", delivery.to_string())];
    let (status, _, answer) =
        h.send_with(&headers, "203.0.113.8", "POST", "/v1/channels/douyin/shop", Some(event.clone())).await;
    (status, answer)
}

#[tokio::test]
async fn douyin_messages_and_comments_are_answered_in_their_thread() {
    let (h, fake) = wechat_harness(Duration::from_secs(4)).await;
    let verify = json!({"event": "verify_webhook", "client_key": "dy-key", "content": {"challenge": 4242}});
    assert_eq!(douyin_post(&h, &verify, "v-1", DOUYIN_SECRET).await, (StatusCode::OK, json!({"challenge": 4242})));
    // A private message, its content as a JSON string as Douyin sometimes sends it; delivered twice.
    let content = json!({"conversation_short_id": "7001", "server_message_id": "9001", "message_type": "text", "text": "退货地址是哪里"});
    let message = json!({"event": "im_receive_msg", "from_user_id": "dy-user-1", "to_user_id": "biz-open-id", "content": content.to_string()});
    for _ in 0..2 {
        assert_eq!(douyin_post(&h, &message, "delivery-1", DOUYIN_SECRET).await.0, StatusCode::OK);
    }
    let comment = json!({"event": "item_comment_reply", "from_user_id": "dy-user-2",
        "content": {"comment_id": "c-55", "comment_user_id": "dy-user-2", "content": "你们几点上班", "reply_to_item_id": "video-8"}});
    assert_eq!(douyin_post(&h, &comment, "delivery-2", DOUYIN_SECRET).await.0, StatusCode::OK);
    eventually("a private reply and a comment reply", || fake.douyin.lock().unwrap().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replies = fake.douyin.lock().unwrap().clone();
    assert_eq!(replies.len(), 2, "the repeated delivery is answered once: {replies:?}");
    let im = replies.iter().find(|r| r.0 == "/im/send/msg/").expect("a private message reply");
    assert_eq!((im.1.as_str(), im.2.as_str()), ("biz-open-id", "DOUYIN0"));
    assert_eq!(
        (im.3["conversation_id"].as_str(), im.3["to_user_id"].as_str(), im.3["msg_id"].as_str()),
        (Some("7001"), Some("dy-user-1"), Some("9001"))
    );
    assert!(im.3["content"]["text"]["text"].as_str().unwrap().contains("退货"), "{im:?}");
    let reply = replies.iter().find(|r| r.0 == "/item/comment/reply/").expect("a comment reply");
    assert_eq!((reply.3["item_id"].as_str(), reply.3["comment_id"].as_str()), (Some("video-8"), Some("c-55")));
    assert_eq!(fake.tokens.load(Ordering::SeqCst), 1, "one client token for both");
    // A forged signature and a body that is not an event are refused.
    assert_eq!(douyin_post(&h, &message, "delivery-3", "not-the-secret").await.0, StatusCode::FORBIDDEN);
    assert_eq!(douyin_post(&h, &json!({"content": {}}), "delivery-4", DOUYIN_SECRET).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_hand_off_can_go_to_wechats_own_agent_desk() {
    let (base, _fake) = FakePlatforms::start().await;
    let mut channels = wechat_demo_account(&base);
    let api = crate::channels::wechat::api::WechatApi::new(
        url::Url::parse(&base).unwrap(),
        APP_ID,
        "secret",
        PLATFORM_TIMEOUT,
    )
    .unwrap();
    let keys = CallbackKeys { token: TOKEN.into(), crypto: None };
    channels.wechat.insert("desk".into(), Arc::new(WechatAccount { keys, api, transfer_to_desk: true }));
    let h = serve_with("corpus", 0.5, true, ApiSettings { channels, ..ApiSettings::default() }).await;
    let uri = format!("/v1/channels/wechat/desk?{}", signed("t1", now()));
    let (_, _, reply) = h.post_raw(&uri, text_message("o-hank", 8001, "我要投诉，转人工")).await;
    assert_eq!(field(&reply, "MsgType"), "transfer_customer_service", "{reply}");
    assert_eq!(field(&reply, "ToUserName"), "o-hank");
    let uri = format!("/v1/channels/wechat/desk?{}", signed("t2", now()));
    let (_, _, reply) = h.post_raw(&uri, text_message("o-hank", 8002, "你们几点上班")).await;
    assert_eq!(field(&reply, "MsgType"), "text", "other questions the bot still answers: {reply}");
}

/// Chatwoot's documented agent-bot payload (tests/fixtures/chatwoot), as message `id`
/// of a contact in conversation `conversation` with this status and text.
fn chatwoot_event(id: u64, conversation: u64, status: &str, text: &str) -> Value {
    let mut event: Value =
        serde_json::from_str(include_str!("../../../tests/fixtures/chatwoot/message_created.json")).unwrap();
    event["id"] = json!(id);
    event["content"] = json!(text);
    event["conversation"]["id"] = json!(conversation);
    event["conversation"]["status"] = json!(status);
    event["sender"]["id"] = json!(conversation + 1000);
    event
}

/// Posts an agent-bot event signed as Chatwoot signs webhooks.
async fn chatwoot_post(h: &Harness, event: &Value, secret: &str) -> (StatusCode, Value) {
    let [(_, at), (_, signature)]: [(&str, String); 2] =
        gateway_headers(&event.to_string(), now(), secret).try_into().unwrap();
    let headers = [("x-chatwoot-timestamp", at), ("x-chatwoot-signature", signature)];
    let (status, _, answer) =
        h.send_with(&headers, "203.0.113.10", "POST", "/v1/channels/chatwoot/desk", Some(event.clone())).await;
    (status, answer)
}

#[tokio::test]
async fn chatwoot_agent_bot_answers_pending_conversations_and_hands_over() {
    let (h, fake) = wechat_harness(Duration::from_secs(4)).await;
    // A question: acknowledged at once, answered through Chatwoot's API with the bot's token; a redelivery is not.
    let question = chatwoot_event(1, 7, "pending", "退货地址是哪里");
    assert_eq!(chatwoot_post(&h, &question, CHATWOOT_SECRET).await, (StatusCode::OK, json!({"status": "accepted"})));
    assert_eq!(chatwoot_post(&h, &question, CHATWOOT_SECRET).await.1["status"], "duplicate");
    eventually("the answer in conversation 7", || fake.chatwoot_calls(7).len() == 1).await;
    let (call, body) = fake.chatwoot_calls(7).remove(0);
    assert_eq!((call.as_str(), body["message_type"].as_str()), ("messages", Some("outgoing")), "{body}");
    assert!(body["content"].as_str().unwrap().contains("退货"), "{body}");
    assert!(fake.chatwoot.lock().unwrap().iter().all(|c| c.2 == CHATWOOT_TOKEN), "api_access_token on every call");

    // A hand-off: the holding answer, a private note for the agents, then the conversation opened.
    let angry = chatwoot_event(3, 9, "pending", "我要投诉，马上转人工");
    assert_eq!(chatwoot_post(&h, &angry, CHATWOOT_SECRET).await.1["status"], "accepted");
    eventually("answer, note and toggle", || fake.chatwoot_calls(9).len() >= 3).await;
    let calls = fake.chatwoot_calls(9);
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[0].1["private"], Value::Null, "the customer's answer is public: {calls:?}");
    assert_eq!((calls[1].0.as_str(), calls[1].1["private"].as_bool()), ("messages", Some(true)), "{calls:?}");
    assert!(calls[1].1["content"].as_str().unwrap().contains("hand-off"), "{calls:?}");
    assert_eq!((calls[2].0.as_str(), &calls[2].1), ("toggle_status", &json!({"status": "open"})));
    assert_eq!(fake.chatwoot_status.lock().unwrap().get(&9).map(String::as_str), Some("open"));

    // Opening fails once after the note went out: the retry opens the conversation without a second note.
    fake.chatwoot_toggle_failures.store(1, std::sync::atomic::Ordering::SeqCst);
    let angry = chatwoot_event(8, 13, "pending", "我要投诉，马上转人工");
    assert_eq!(chatwoot_post(&h, &angry, CHATWOOT_SECRET).await.1["status"], "accepted");
    eventually("conversation 13 opened", || fake.chatwoot_status.lock().unwrap().contains_key(&13)).await;
    let notes = fake.chatwoot_calls(13).iter().filter(|c| c.1["private"] == true).count();
    assert_eq!((notes, fake.chatwoot_calls(13).len()), (1, 3), "{:?}", fake.chatwoot_calls(13));

    // People hold the conversation: the bot ignores the event, and never talks over an agent who took it meanwhile.
    let open = chatwoot_event(4, 9, "open", "还在吗");
    assert_eq!(chatwoot_post(&h, &open, CHATWOOT_SECRET).await.1["status"], "ignored");
    fake.chatwoot_status.lock().unwrap().insert(10, "open".into());
    let raced = chatwoot_event(5, 10, "pending", "你们几点上班");
    assert_eq!(chatwoot_post(&h, &raced, CHATWOOT_SECRET).await.1["status"], "accepted");
    let mut outgoing = chatwoot_event(6, 11, "pending", "hi");
    outgoing["message_type"] = json!("outgoing");
    assert_eq!(chatwoot_post(&h, &outgoing, CHATWOOT_SECRET).await.1["status"], "ignored");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(fake.chatwoot_calls(10).is_empty() && fake.chatwoot_calls(11).is_empty(), "{:?}", fake.chatwoot);
    assert_eq!(fake.chatwoot_calls(9).len(), 3);

    // Unsigned or wrongly signed events are refused.
    let (status, body) = chatwoot_post(&h, &chatwoot_event(7, 12, "pending", "hi"), "not-the-secret").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("bad_signature")));
    let (status, _, _) = h
        .send_with(
            &[],
            "203.0.113.10",
            "POST",
            "/v1/channels/chatwoot/desk",
            Some(chatwoot_event(8, 12, "pending", "hi")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn chatwoot_shows_a_clarifying_question_as_input_select() {
    let (base, fake) = FakePlatforms::start().await;
    let api = ChatwootApi::new(url::Url::parse(&base).unwrap(), CHATWOOT_TOKEN, PLATFORM_TIMEOUT).unwrap();
    let to = crate::channels::chatwoot::ConversationRef { account_id: 3, conversation_id: 8 };
    let options = [
        crate::channels::MenuOption { id: "order_status".into(), title: "查订单".into() },
        crate::channels::MenuOption { id: "refund_status".into(), title: "退款进度".into() },
    ];
    api.send_text(to, "想确认一下，你指的是哪一项？", &options).await.unwrap();
    let (call, body) = fake.chatwoot_calls(8).remove(0);
    assert_eq!(call, "messages");
    assert_eq!(body["content_type"], "input_select", "{body}");
    assert_eq!(
        body["content_attributes"]["items"],
        json!([{"title": "查订单", "value": "order_status"}, {"title": "退款进度", "value": "refund_status"}])
    );
}
