//! The Official Account API kefu calls: an access token (cached for all
//! senders) and the customer-service message send, for replies that miss the
//! passive window and for agents' replies.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::channels::tokens::TokenCache;
use crate::channels::{transport_error, SendError};

/// WeChat's error codes for an access token that is invalid or expired:
/// fetch a new one and try once more.
const TOKEN_ERRORS: [i64; 3] = [40001, 40014, 42001];

/// Codes that another try cannot fix: the 48-hour window or its message quota
/// is spent, the user unfollowed or is unknown, the content was refused.
const REFUSALS: [i64; 6] = [45015, 45047, 43004, 40003, 45002, 87014];

/// One Official Account's API credentials and where its API lives.
#[derive(Debug)]
pub struct WechatApi {
    base: Url,
    app_id: String,
    app_secret: String,
    http: reqwest::Client,
    token: TokenCache,
}

#[derive(Debug, Deserialize)]
struct Reply {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl WechatApi {
    pub fn new(base: Url, app_id: &str, app_secret: &str, timeout: Duration) -> Result<WechatApi, reqwest::Error> {
        Ok(WechatApi {
            base,
            app_id: app_id.to_string(),
            app_secret: app_secret.to_string(),
            http: reqwest::Client::builder().timeout(timeout).build()?,
            token: TokenCache::default(),
        })
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}{path}", self.base.path().trim_end_matches('/')));
        url
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Reply, SendError> {
        let response = request.send().await.map_err(|e| transport_error("WeChat", e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(SendError::Retryable(format!("WeChat answered HTTP {status}")));
        }
        response
            .json()
            .await
            .map_err(|e| SendError::Retryable(format!("WeChat's reply is not JSON: {}", e.without_url())))
    }

    async fn access_token(&self) -> Result<String, SendError> {
        self.token
            .get(|| async {
                let request = self.http.get(self.url("/cgi-bin/token")).query(&[
                    ("grant_type", "client_credential"),
                    ("appid", &self.app_id),
                    ("secret", &self.app_secret),
                ]);
                let reply = self.call(request).await?;
                match reply.access_token {
                    Some(token) if reply.errcode == 0 => {
                        Ok((token, Duration::from_secs(reply.expires_in.unwrap_or(7200))))
                    }
                    _ => Err(SendError::Retryable(format!(
                        "WeChat refused an access token: {} {}",
                        reply.errcode, reply.errmsg
                    ))),
                }
            })
            .await
    }

    /// Sends `text` to `openid` as a customer-service message.
    pub async fn send_text(&self, openid: &str, text: &str) -> Result<(), SendError> {
        let body = json!({"touser": openid, "msgtype": "text", "text": {"content": text}});
        let mut renewed = false;
        loop {
            let token = self.access_token().await?;
            let request = self.http.post(self.url("/cgi-bin/message/custom/send")).query(&[("access_token", &token)]);
            let reply = self.call(request.json(&body)).await?;
            match reply.errcode {
                0 => return Ok(()),
                code if TOKEN_ERRORS.contains(&code) && !renewed => {
                    self.token.invalidate(&token).await;
                    renewed = true;
                }
                code if REFUSALS.contains(&code) => {
                    return Err(SendError::Refused(format!("WeChat refused the message: {code} {}", reply.errmsg)))
                }
                code => return Err(SendError::Retryable(format!("WeChat failed: {code} {}", reply.errmsg))),
            }
        }
    }
}
