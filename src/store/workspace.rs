//! What the agent workspace and the web chat add to tickets: messages
//! exchanged while a person owns the conversation, which ticket (if any) a
//! person owns now, handing a conversation back to the bot, and the ordered
//! feed of ticket changes that live streams replay from a cursor.
//!
//! Every write here commits its feed entry in the same transaction and then
//! wakes this process's live streams ([`Store::changes`]); streams also look
//! again every few seconds, so writes by another replica reach them too.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::channels::{route_json, ChannelWrite};
use super::{decoded, sealed, stamp, Actor, Store, StoreError};
use crate::privacy::mask;
use crate::tickets::{Priority, Status};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    Customer,
    Agent,
}

impl MessageRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageRole::Customer => "customer",
            MessageRole::Agent => "agent",
        }
    }
}

/// Where a message stands on its way to the other side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// A customer's message, received.
    Received,
    /// Handed to the customer's channel (the web chat reads it from the store).
    Sent,
    /// Waiting for its channel's sender.
    Queued,
    /// The channel refused it, with why.
    Failed(String),
}

impl Delivery {
    pub fn as_str(&self) -> &'static str {
        match self {
            Delivery::Received => "received",
            Delivery::Sent => "sent",
            Delivery::Queued => "queued",
            Delivery::Failed(_) => "failed",
        }
    }

    fn reason(&self) -> Option<&str> {
        match self {
            Delivery::Failed(reason) => Some(reason),
            _ => None,
        }
    }
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub ticket_id: Option<&'a str>,
    pub customer_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub channel: &'a str,
    pub role: MessageRole,
    /// The agent's actor name for an agent's message.
    pub author: Option<Actor<'a>>,
    pub text: &'a str,
    pub delivery: Delivery,
}

/// A stored message as the web chat shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StoredMessage {
    /// Order of messages, and the web chat's resume cursor.
    pub seq: i64,
    pub id: String,
    pub role: MessageRole,
    /// The agent's name, for an agent's message.
    pub agent: Option<String>,
    pub text: String,
    pub channel: String,
    pub ticket_id: Option<String>,
    pub at: String,
    /// Where an agent's reply stands (received for a customer's message), and why it failed.
    #[serde(skip)]
    pub delivery: String,
    #[serde(skip)]
    pub delivery_error: Option<String>,
}

/// The ticket a person owns for a customer: the bot stays silent meanwhile.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveTicket {
    pub id: String,
    pub assignee: String,
    pub priority: Priority,
    pub queue: String,
    pub status: Status,
}

/// One change of the workspace's live feed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FeedEntry {
    pub seq: i64,
    pub ticket_id: String,
    /// opened, changed, note, customer_message or agent_message.
    pub kind: String,
    pub at: String,
}

/// Kinds of feed entries.
pub(super) mod feed {
    pub const OPENED: &str = "opened";
    pub const CHANGED: &str = "changed";
    pub const NOTE: &str = "note";
}

/// Statuses in which an assigned agent owns the conversation.
const OWNED: &str = "('assigned', 'in_progress', 'waiting_customer')";

impl Store {
    /// A counter that moves after every committed change a live stream shows.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(super) async fn insert_feed(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        ticket_id: &str,
        kind: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO ticket_feed (ticket_id, kind, at) VALUES ($1, $2, $3)")
            .bind(ticket_id)
            .bind(kind)
            .bind(at)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Stores a message (masked and sealed) and its feed entry; returns its sequence number and id.
    pub async fn add_message(&self, message: &NewMessage<'_>, at: DateTime<Utc>) -> Result<(i64, String), StoreError> {
        self.add_message_with(message, None, at).await
    }

    /// [`Store::add_message`] with what a platform's message carries: its
    /// route, the received message it settles, a reply to queue (linked to it).
    pub async fn add_message_with(
        &self,
        message: &NewMessage<'_>,
        channel: Option<&ChannelWrite<'_>>,
        at: DateTime<Utc>,
    ) -> Result<(i64, String), StoreError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let at = stamp(at);
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO messages (id, ticket_id, customer_id, session_id, channel, role, author, text, delivery, delivery_error, created_at, route)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&id)
        .bind(message.ticket_id)
        .bind(message.customer_id)
        .bind(message.session_id)
        .bind(message.channel)
        .bind(message.role.as_str())
        .bind(message.author)
        .bind(self.vault.seal(sealed::MESSAGE_TEXT, &mask(message.text)))
        .bind(message.delivery.as_str())
        .bind(message.delivery.reason())
        .bind(&at)
        .bind(channel.map(|c| route_json(c.route)))
        .execute(&mut *tx)
        .await?;
        if let Some(channel) = channel {
            self.write_channel(&mut tx, channel, Some(&id), &at).await?;
        }
        let seq: i64 =
            sqlx::query_scalar("SELECT seq FROM messages WHERE id = $1").bind(&id).fetch_one(&mut *tx).await?;
        if let Some(ticket) = message.ticket_id {
            let kind = format!("{}_message", message.role.as_str());
            sqlx::query("UPDATE tickets SET updated_at = $1 WHERE id = $2")
                .bind(&at)
                .bind(ticket)
                .execute(&mut *tx)
                .await?;
            self.insert_feed(&mut tx, ticket, &kind, &at).await?;
        }
        tx.commit().await?;
        self.announce_change();
        Ok((seq, id))
    }

    /// The agents' messages to a customer (by customer id, or by session
    /// for one without) after `after`, oldest first, at most `limit`.
    pub async fn agent_messages_after(
        &self,
        customer_id: Option<&str>,
        session_id: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM messages WHERE role = 'agent' AND seq > $1
               AND (customer_id = $2 OR (CAST($2 AS TEXT) IS NULL AND session_id = $3))
             ORDER BY seq LIMIT $4",
        )
        .bind(after)
        .bind(customer_id)
        .bind(session_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| self.message_from_row(row)).collect()
    }

    /// A customer's messages of both sides at or after `since` (a conversation's view), oldest first.
    pub(super) async fn messages_since(
        &self,
        customer_id: Option<&str>,
        session_id: Option<&str>,
        since: &str,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM messages WHERE created_at >= $1
               AND (customer_id = $2 OR (CAST($2 AS TEXT) IS NULL AND session_id = $3))
             ORDER BY seq",
        )
        .bind(since)
        .bind(customer_id)
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| self.message_from_row(row)).collect()
    }

    /// The newest message's sequence number (0 when there is none).
    pub async fn latest_message_seq(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM messages").fetch_one(&self.pool).await?;
        Ok(seq.unwrap_or(0))
    }

    pub(super) fn message_from_row(&self, row: &sqlx::any::AnyRow) -> Result<StoredMessage, StoreError> {
        let role: String = row.try_get("role")?;
        let author: Option<String> = row.try_get("author")?;
        Ok(StoredMessage {
            seq: row.try_get("seq")?,
            id: row.try_get("id")?,
            role: if role == "agent" { MessageRole::Agent } else { MessageRole::Customer },
            agent: author.map(|a| a.strip_prefix("agent:").unwrap_or(&a).to_string()),
            text: self.opened(row, "text", sealed::MESSAGE_TEXT)?,
            channel: row.try_get("channel")?,
            ticket_id: row.try_get("ticket_id")?,
            at: row.try_get("created_at")?,
            delivery: row.try_get("delivery")?,
            delivery_error: row.try_get("delivery_error")?,
        })
    }

    /// The ticket a person owns for this customer (or, for one without an id, this session), if any.
    pub async fn active_ticket(
        &self,
        customer_id: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<Option<ActiveTicket>, StoreError> {
        if customer_id.is_none() && session_id.is_none() {
            return Ok(None);
        }
        let row = sqlx::query(&format!(
            "SELECT id, assignee, priority, queue, status FROM tickets
             WHERE assignee IS NOT NULL AND status IN {OWNED}
               AND (customer_id = $1 OR (CAST($1 AS TEXT) IS NULL AND session_id = $2))
             ORDER BY updated_at DESC LIMIT 1"
        ))
        .bind(customer_id)
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(ActiveTicket {
                id: row.try_get("id")?,
                assignee: row.try_get("assignee")?,
                priority: decoded(&row, "priority")?,
                queue: row.try_get("queue")?,
                status: decoded(&row, "status")?,
            })
        })
        .transpose()
    }

    /// Hands a conversation back to the bot: the ticket leaves its agent and
    /// waits in its queue again, and the bot answers the customer meanwhile.
    pub async fn release_ticket(&self, id: &str, actor: Actor<'_>, at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let (from, owner) = self.status_for_update(&mut tx, id).await?;
        if owner.is_none() || !from.is_open() {
            return Err(StoreError::InvalidTransition { from, to: Status::New });
        }
        let at = stamp(at);
        sqlx::query("UPDATE tickets SET status = $1, assignee = NULL, updated_at = $2 WHERE id = $3")
            .bind(Status::New.as_str())
            .bind(&at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let note = format!("released by {}", owner.unwrap_or_default());
        self.insert_event(&mut tx, id, Status::New, Some(&note), false, actor, &at).await?;
        self.insert_feed(&mut tx, id, feed::CHANGED, &at).await?;
        tx.commit().await?;
        self.announce_change();
        Ok(())
    }

    /// Feed entries after `after`, oldest first, at most `limit`.
    pub async fn feed_after(&self, after: i64, limit: i64) -> Result<Vec<FeedEntry>, StoreError> {
        let rows = sqlx::query("SELECT seq, ticket_id, kind, at FROM ticket_feed WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(FeedEntry {
                    seq: r.try_get("seq")?,
                    ticket_id: r.try_get("ticket_id")?,
                    kind: r.try_get("kind")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    /// The newest feed entry's sequence number (0 when there is none).
    pub async fn latest_feed_seq(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM ticket_feed").fetch_one(&self.pool).await?;
        Ok(seq.unwrap_or(0))
    }

    /// The customer (or session) a turn belongs to, if the turn exists.
    pub async fn turn_owner(&self, trace_id: &str) -> Result<Option<(Option<String>, Option<String>)>, StoreError> {
        let row = sqlx::query("SELECT customer_id, session_id FROM turns WHERE trace_id = $1")
            .bind(trace_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("customer_id")?, r.try_get("session_id")?))).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{open_handoff_ticket, test_stores};

    #[tokio::test]
    async fn messages_ownership_and_the_feed_on_every_backend() {
        for t in test_stores().await {
            let (store, backend) = (&t.store, t.backend);
            let now = Utc::now();
            let feed_start = store.latest_feed_seq().await.unwrap();
            open_handoff_ticket(store, "TW1", now).await;
            let changes = store.changes();
            assert_eq!(store.active_ticket(Some("c1001"), None).await.unwrap(), None, "{backend}: nobody owns it yet");

            store.move_ticket("TW1", Status::Assigned, Some("li"), None, "agent:li", now).await.unwrap();
            assert!(changes.has_changed().unwrap(), "{backend}: live streams are woken");
            let active = store.active_ticket(Some("c1001"), None).await.unwrap().unwrap();
            assert_eq!((active.id.as_str(), active.assignee.as_str()), ("TW1", "li"), "{backend}");
            assert_eq!(
                store.latest_channel(Some("c1001"), None).await.unwrap().map(|c| c.channel).as_deref(),
                Some("wechat")
            );

            let to_agent = NewMessage {
                ticket_id: Some("TW1"),
                customer_id: Some("c1001"),
                session_id: Some("session-TW1"),
                channel: "web",
                role: MessageRole::Customer,
                author: None,
                text: "我的电话是13812345678",
                delivery: Delivery::Received,
            };
            let later = now + chrono::Duration::seconds(1);
            let (first, _) = store.add_message(&to_agent, later).await.unwrap();
            assert_eq!(
                store.latest_channel(Some("c1001"), None).await.unwrap().map(|c| c.channel).as_deref(),
                Some("web"),
                "{backend}"
            );
            let reply = NewMessage {
                role: MessageRole::Agent,
                author: Some("agent:li"),
                text: "收到",
                delivery: Delivery::Sent,
                ..to_agent
            };
            let (second, _) = store.add_message(&reply, later).await.unwrap();
            assert!(second > first, "{backend}: sequence numbers grow");
            let replies = store.agent_messages_after(Some("c1001"), None, 0, 10).await.unwrap();
            assert_eq!(
                replies.iter().map(|m| (m.text.as_str(), m.agent.as_deref())).collect::<Vec<_>>(),
                [("收到", Some("li"))]
            );
            assert!(store.agent_messages_after(Some("c1001"), None, second, 10).await.unwrap().is_empty());
            let conversation = store.customer_conversation("c1001", 10).await.unwrap();
            let customer_message = conversation.iter().find(|l| l.role == "customer" && l.trace_id.is_none()).unwrap();
            assert_eq!(customer_message.text, "我的电话是138****5678", "{backend}: masked");

            store.release_ticket("TW1", "agent:li", now).await.unwrap();
            assert_eq!(store.active_ticket(Some("c1001"), None).await.unwrap(), None, "{backend}: released");
            assert!(matches!(
                store.release_ticket("TW1", "agent:li", now).await,
                Err(StoreError::InvalidTransition { .. })
            ));
            let kinds: Vec<String> =
                store.feed_after(feed_start, 10).await.unwrap().into_iter().map(|e| e.kind).collect();
            assert_eq!(kinds, ["opened", "changed", "customer_message", "agent_message", "changed"], "{backend}");
            t.cleanup().await;
        }
    }
}
