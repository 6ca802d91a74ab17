//! The JSON APIs of WeChat's family (Official Accounts, WeCom): an access
//! token in the query (cached for all senders, renewed once when the platform
//! calls it expired), `errcode` 0 for success, and codes that another try
//! cannot fix. [`WechatApi`] is the Official Account's customer-service send.

use std::time::Duration;

use serde_json::{json, Value};
use url::Url;

use crate::channels::tokens::TokenCache;
use crate::channels::{api_url, json_reply, SendError};

/// Error codes for an access token that is invalid or expired: fetch a new one and try once more.
const TOKEN_ERRORS: [i64; 3] = [40001, 40014, 42001];

/// One account's API: where it lives, how its token is fetched, and which
/// error codes are refusals.
#[derive(Debug)]
pub struct ApiClient {
    platform: &'static str,
    base: Url,
    token_path: &'static str,
    token_query: Vec<(&'static str, String)>,
    refusals: fn(i64) -> bool,
    http: reqwest::Client,
    token: TokenCache,
}

impl ApiClient {
    pub fn new(
        platform: &'static str,
        base: Url,
        token_path: &'static str,
        token_query: Vec<(&'static str, String)>,
        refusals: fn(i64) -> bool,
        timeout: Duration,
    ) -> Result<ApiClient, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(ApiClient { platform, base, token_path, token_query, refusals, http, token: TokenCache::default() })
    }

    fn url(&self, path: &str) -> Url {
        api_url(&self.base, path)
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, SendError> {
        json_reply(self.platform, request).await
    }

    async fn access_token(&self) -> Result<String, SendError> {
        self.token
            .get(|| async {
                let reply = self.call(self.http.get(self.url(self.token_path)).query(&self.token_query)).await?;
                match reply["access_token"].as_str() {
                    Some(token) if errcode(&reply) == 0 => {
                        Ok((token.to_string(), Duration::from_secs(reply["expires_in"].as_u64().unwrap_or(7200))))
                    }
                    _ => Err(SendError::Retryable(format!(
                        "{} refused an access token: {} {}",
                        self.platform,
                        errcode(&reply),
                        reply["errmsg"].as_str().unwrap_or_default()
                    ))),
                }
            })
            .await
    }

    /// POSTs `body` to `path` with the access token; the reply when `errcode` is 0.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, SendError> {
        let mut renewed = false;
        loop {
            let token = self.access_token().await?;
            let request = self.http.post(self.url(path)).query(&[("access_token", &token)]).json(body);
            let reply = self.call(request).await?;
            let code = errcode(&reply);
            let why = || format!("{} {code} {}", self.platform, reply["errmsg"].as_str().unwrap_or_default());
            match code {
                0 => return Ok(reply),
                code if TOKEN_ERRORS.contains(&code) && !renewed => {
                    self.token.invalidate(&token).await;
                    renewed = true;
                }
                code if (self.refusals)(code) => return Err(SendError::Refused(format!("refused: {}", why()))),
                _ => return Err(SendError::Retryable(format!("failed: {}", why()))),
            }
        }
    }
}

fn errcode(reply: &Value) -> i64 {
    reply["errcode"].as_i64().unwrap_or(0)
}

/// An Official Account's customer-service message API.
#[derive(Debug)]
pub struct WechatApi {
    client: ApiClient,
}

/// Codes another try cannot fix: the 48-hour window or its message quota is
/// spent, the user unfollowed or is unknown, the content was refused.
fn wechat_refusal(code: i64) -> bool {
    [45015, 45047, 43004, 40003, 45002, 87014].contains(&code)
}

impl WechatApi {
    pub fn new(base: Url, app_id: &str, app_secret: &str, timeout: Duration) -> Result<WechatApi, reqwest::Error> {
        let query = vec![
            ("grant_type", "client_credential".to_string()),
            ("appid", app_id.into()),
            ("secret", app_secret.into()),
        ];
        Ok(WechatApi { client: ApiClient::new("WeChat", base, "/cgi-bin/token", query, wechat_refusal, timeout)? })
    }

    /// Sends `text` to `openid` as a customer-service message.
    pub async fn send_text(&self, openid: &str, text: &str) -> Result<(), SendError> {
        let body = json!({"touser": openid, "msgtype": "text", "text": {"content": text}});
        self.client.post("/cgi-bin/message/custom/send", &body).await.map(drop)
    }
}
