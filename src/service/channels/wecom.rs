//! WeCom 微信客服: the URL check (an encrypted `echostr`), and the callback,
//! a doorbell answered at once while the messages are pulled from the cursor
//! the store keeps and answered through the outbox.

use std::sync::Arc;

use chrono::Utc;

use super::{ChannelError, ChannelHub, Wait, WecomAccount, WECHAT_SUCCESS};
use crate::channels::wechat::CallbackQuery;
use crate::channels::wecom::{doorbell, Doorbell, KfMessage, FROM_CUSTOMER};
use crate::channels::{ReplyRoute, WECOM};
use crate::corpus::ReplyKey;
use crate::service::ServiceError;

impl ChannelHub {
    fn wecom_account(&self, name: &str) -> Result<&Arc<WecomAccount>, ChannelError> {
        self.accounts
            .wecom
            .get(name)
            .ok_or_else(|| ChannelError::UnknownAccount { channel: WECOM, account: name.to_string() })
    }

    /// WeCom's URL check: the decrypted `echostr` to answer with.
    pub fn wecom_verify(&self, account: &str, query: &CallbackQuery) -> Result<String, ServiceError> {
        let account = self.wecom_account(account)?;
        Ok(account.keys.decrypt_echo(query, Utc::now().timestamp()).map_err(ChannelError::from)?)
    }

    /// A WeCom callback: checked and decrypted; a doorbell starts a pull of
    /// the new messages, and WeCom gets `success` at once.
    pub async fn wecom_event(
        self: &Arc<Self>,
        name: &str,
        query: &CallbackQuery,
        body: &str,
    ) -> Result<String, ServiceError> {
        let account = self.wecom_account(name)?.clone();
        let fields = account.keys.open_encrypted(query, body, Utc::now().timestamp()).map_err(ChannelError::from)?;
        if let Some(bell) = doorbell(&fields) {
            let (hub, name) = (self.clone(), name.to_string());
            tokio::spawn(async move {
                if let Err(err) = hub.pull_wecom(&name, &account, &bell).await {
                    tracing::warn!(account = %name, error = %err, "pulling WeCom messages failed; the next doorbell pulls them");
                }
            });
        }
        Ok(WECHAT_SUCCESS.to_string())
    }

    /// Pulls the messages after the stored cursor and answers the customers'.
    async fn pull_wecom(
        self: &Arc<Self>,
        name: &str,
        account: &WecomAccount,
        bell: &Doorbell,
    ) -> Result<(), ServiceError> {
        let _one_at_a_time = account.pulling.lock().await;
        let mut cursor = self.store.channel_cursor(WECOM, name).await?;
        loop {
            let page = account.api.sync(cursor.as_deref(), &bell.token).await.map_err(ServiceError::Platform)?;
            for message in page.msg_list.iter().filter(|m| m.origin == FROM_CUSTOMER && !m.external_userid.is_empty()) {
                self.receive_wecom(name, message).await?;
            }
            // NOTE: stored after the page's messages: a crash re-reads the page,
            // and each message's id makes the second reading a no-op.
            if !page.next_cursor.is_empty() {
                self.store.set_channel_cursor(WECOM, name, &page.next_cursor).await?;
                cursor = Some(page.next_cursor);
            }
            if page.has_more == 0 {
                return Ok(());
            }
        }
    }

    async fn receive_wecom(self: &Arc<Self>, name: &str, message: &KfMessage) -> Result<(), ServiceError> {
        let route = ReplyRoute::new(WECOM, name, &message.external_userid);
        let text = message.text.as_ref().map(|t| t.content.trim()).filter(|t| !t.is_empty());
        match (message.msgtype.as_str(), text) {
            ("text", Some(text)) => {
                self.receive(&route, &message.msgid, text, Wait::InOrder).await?;
            }
            _ => {
                self.canned(&route, &message.msgid, ReplyKey::TextOnly, true).await?;
            }
        }
        Ok(())
    }
}
