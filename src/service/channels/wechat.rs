//! WeChat Official Accounts: the URL check, and a callback answered with a
//! passive reply when the bot is quick enough, else `success`.

use std::sync::Arc;

use chrono::Utc;

use super::{ChannelError, ChannelHub, Wait, WechatAccount, WECHAT_SUCCESS};
use crate::channels::wechat::{text_reply, transfer_reply, CallbackQuery, Content};
use crate::channels::{ReplyRoute, WECHAT};
use crate::corpus::ReplyKey;
use crate::service::ServiceError;

impl ChannelHub {
    fn wechat_account(&self, name: &str) -> Result<&Arc<WechatAccount>, ChannelError> {
        self.accounts
            .wechat
            .get(name)
            .ok_or_else(|| ChannelError::UnknownAccount { channel: WECHAT, account: name.to_string() })
    }

    /// WeChat's URL check: the `echostr` to answer with.
    pub fn wechat_verify(&self, account: &str, query: &CallbackQuery) -> Result<String, ServiceError> {
        let account = self.wechat_account(account)?;
        Ok(account.keys.verify_url(query, Utc::now().timestamp()).map_err(ChannelError::from)?)
    }

    /// A WeChat callback's answer: a passive reply (sealed in safe mode) or `success`.
    pub async fn wechat_message(
        self: &Arc<Self>,
        name: &str,
        query: &CallbackQuery,
        body: &str,
    ) -> Result<String, ServiceError> {
        let account = self.wechat_account(name)?.clone();
        let now = Utc::now().timestamp();
        let inbound = account.keys.open(query, body, now).map_err(ChannelError::from)?;
        let route = ReplyRoute::new(WECHAT, name, &inbound.openid);
        let window = Wait::Callback(self.accounts.settings.passive_window);
        let reply = match &inbound.content {
            Content::Text(text) if !text.trim().is_empty() => {
                self.receive(&route, &inbound.dedupe_key(), text, window).await?.reply().map(|reply| {
                    if reply.handoff && account.transfer_to_desk {
                        transfer_reply(&inbound, now)
                    } else {
                        text_reply(&inbound, &reply.text, now)
                    }
                })
            }
            // A menu click asks what its key says.
            Content::Event { event, key: Some(key) } if event == "CLICK" => self
                .receive(&route, &inbound.dedupe_key(), key, window)
                .await?
                .reply()
                .map(|r| text_reply(&inbound, &r.text, now)),
            Content::Event { event, .. } if event == "subscribe" || event == "SCAN" => self
                .canned(&route, &inbound.dedupe_key(), ReplyKey::Welcome, false)
                .await?
                .map(|t| text_reply(&inbound, &t, now)),
            Content::Event { .. } => None,
            Content::Text(_) | Content::Other(_) => self
                .canned(&route, &inbound.dedupe_key(), ReplyKey::TextOnly, false)
                .await?
                .map(|t| text_reply(&inbound, &t, now)),
        };
        Ok(match reply {
            Some(xml) => account.keys.seal_reply(&xml, inbound.encrypted, now, rand::random()),
            None => WECHAT_SUCCESS.to_string(),
        })
    }
}
