//! What messaging platforms add to the store: who a customer is on each
//! platform, the received messages (the unique key that makes a platform's
//! retry a no-op on every replica, and the work a crash must not lose), and
//! the outbox of replies, written in the same transaction as the turn or
//! message they answer and sent by one claimant at a time.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{sealed, stamp, Store, StoreError};
use crate::channels::{MenuOption, Outgoing, ReplyRoute};

/// A customer's identity on a platform.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Identity {
    pub channel: String,
    pub account: String,
    pub external_id: String,
    pub customer_id: String,
    pub linked_at: String,
}

/// What linking an identity to a customer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    /// The customer the identity belonged to before, if another.
    pub previous: Option<String>,
    /// Whether that customer's history moved over (it had no other identity).
    pub merged: bool,
}

/// A message received from a platform, stored before it is answered.
#[derive(Debug, Clone)]
pub struct NewInbound<'a> {
    /// Also the trace id of the turn that answers it.
    pub id: &'a str,
    pub route: &'a ReplyRoute,
    /// The platform's id of the message (its retries share it).
    pub message_key: &'a str,
    pub customer_id: &'a str,
    pub text: &'a str,
}

/// A received message no turn answered yet (its process died, say).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingInbound {
    pub id: String,
    pub route: ReplyRoute,
    pub customer_id: String,
    pub text: String,
}

/// A reply to queue for a platform.
#[derive(Debug, Clone)]
pub struct NewOutbound {
    pub id: String,
    pub route: ReplyRoute,
    pub outgoing: Outgoing,
    /// Not sent before this (a bot reply waits while the callback may still answer passively).
    pub not_before: DateTime<Utc>,
}

impl NewOutbound {
    /// A text without choices.
    pub fn text(id: String, route: ReplyRoute, text: &str, not_before: DateTime<Utc>) -> NewOutbound {
        NewOutbound { id, route, outgoing: Outgoing::Text { text: text.to_string(), options: Vec::new() }, not_before }
    }
}

/// A queued reply, claimed for sending.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    pub id: String,
    pub route: ReplyRoute,
    pub outgoing: Outgoing,
    /// Tries, this one included.
    pub attempts: i64,
}

/// What a platform's turn or message writes beside itself, in its transaction.
#[derive(Debug, Clone)]
pub struct ChannelWrite<'a> {
    /// Where replies go; stored with the turn or message.
    pub route: &'a ReplyRoute,
    /// The received message this answers: marked done.
    pub inbound_id: Option<&'a str>,
    /// Replies to queue, in order.
    pub replies: Vec<NewOutbound>,
}

/// The channel, and the route when it was a platform, of a customer's latest message.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestChannel {
    pub channel: String,
    pub route: Option<ReplyRoute>,
}

/// A route as its column holds it.
pub(super) fn route_json(route: &ReplyRoute) -> String {
    serde_json::to_string(route).expect("a route serialises")
}

/// Outbox states.
mod state {
    pub const PENDING: &str = "pending";
    pub const SENT: &str = "sent";
    pub const FAILED: &str = "failed";
}

/// Rows claimed with a lease.
#[derive(Debug, Clone, Copy)]
enum Leased {
    /// A received message no turn answered yet.
    Inbound,
    /// A reply due to be sent; each claim counts as a try.
    Outbound,
}

/// A row's platform route (its channel, account, external_id and thread columns).
fn route_of(row: &sqlx::any::AnyRow) -> Result<ReplyRoute, StoreError> {
    Ok(ReplyRoute {
        channel: row.try_get("channel")?,
        account: row.try_get("account")?,
        user: row.try_get("external_id")?,
        thread: row.try_get("thread")?,
    })
}

impl Store {
    /// The candidate `rows` whose lease this claimant took, each as `build` makes it.
    async fn claim_rows<T>(
        &self,
        what: Leased,
        rows: Vec<sqlx::any::AnyRow>,
        now: &str,
        lease: DateTime<Utc>,
        build: impl Fn(&sqlx::any::AnyRow, String) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut claimed = Vec::new();
        for row in rows {
            let id: String = row.try_get("id")?;
            if self.lease_row(what, &id, now, lease).await? {
                claimed.push(build(&row, id)?);
            }
        }
        Ok(claimed)
    }

    /// Takes the lease on a row still waiting and free (no lease, or one
    /// expired before `now`); false when another claimant has it.
    async fn lease_row(&self, what: Leased, id: &str, now: &str, lease: DateTime<Utc>) -> Result<bool, StoreError> {
        let (table, waiting, also) = match what {
            Leased::Inbound => ("channel_inbound", "received", ""),
            Leased::Outbound => ("outbox", state::PENDING, ", attempts = attempts + 1"),
        };
        let taken = sqlx::query(&format!(
            "UPDATE {table} SET claimed_until = $1{also}
             WHERE id = $2 AND state = $3 AND (claimed_until IS NULL OR claimed_until < $4)"
        ))
        .bind(stamp(lease))
        .bind(id)
        .bind(waiting)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// The customer of a platform identity; an unknown identity becomes `new_customer`.
    pub async fn customer_of(
        &self,
        route: &ReplyRoute,
        new_customer: &str,
        at: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO channel_identities (channel, account, external_id, customer_id, linked_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (channel, account, external_id) DO NOTHING",
        )
        .bind(&route.channel)
        .bind(&route.account)
        .bind(&route.user)
        .bind(new_customer)
        .bind(stamp(at))
        .execute(&self.writer)
        .await?;
        let customer: String = sqlx::query_scalar(
            "SELECT customer_id FROM channel_identities WHERE channel = $1 AND account = $2 AND external_id = $3",
        )
        .bind(&route.channel)
        .bind(&route.account)
        .bind(&route.user)
        .fetch_one(&self.pool)
        .await?;
        Ok(customer)
    }

    /// Links a platform identity to `customer_id`. When it belonged to a
    /// customer with no other identity (the one kefu made for it), that
    /// customer's turns, messages and tickets move over: one history.
    pub async fn link_identity(
        &self,
        route: &ReplyRoute,
        customer_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Linked, StoreError> {
        let mut tx = self.begin_write().await?;
        let previous: Option<String> = sqlx::query_scalar(
            "SELECT customer_id FROM channel_identities WHERE channel = $1 AND account = $2 AND external_id = $3",
        )
        .bind(&route.channel)
        .bind(&route.account)
        .bind(&route.user)
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO channel_identities (channel, account, external_id, customer_id, linked_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (channel, account, external_id) DO UPDATE SET customer_id = $4, linked_at = $5",
        )
        .bind(&route.channel)
        .bind(&route.account)
        .bind(&route.user)
        .bind(customer_id)
        .bind(stamp(at))
        .execute(&mut *tx)
        .await?;
        let previous = previous.filter(|p| p != customer_id);
        let mut merged = false;
        if let Some(previous) = &previous {
            let others: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM channel_identities WHERE customer_id = $1")
                .bind(previous)
                .fetch_one(&mut *tx)
                .await?;
            if others == 0 {
                for table in ["turns", "messages", "tickets", "channel_inbound"] {
                    sqlx::query(&format!("UPDATE {table} SET customer_id = $1 WHERE customer_id = $2"))
                        .bind(customer_id)
                        .bind(previous)
                        .execute(&mut *tx)
                        .await?;
                }
                merged = true;
            }
        }
        tx.commit().await?;
        if merged {
            self.announce_change();
        }
        Ok(Linked { previous, merged })
    }

    /// A customer's platform identities, oldest link first.
    pub async fn identities_of(&self, customer_id: &str) -> Result<Vec<Identity>, StoreError> {
        let rows = sqlx::query("SELECT * FROM channel_identities WHERE customer_id = $1 ORDER BY linked_at, channel")
            .bind(customer_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Identity {
                    channel: row.try_get("channel")?,
                    account: row.try_get("account")?,
                    external_id: row.try_get("external_id")?,
                    customer_id: row.try_get("customer_id")?,
                    linked_at: row.try_get("linked_at")?,
                })
            })
            .collect()
    }

    /// Stores a received message, its receiver holding it until `lease` (so
    /// the sender's sweep does not answer it a second time while a slow turn
    /// runs); false when the platform sent it before (a retry).
    pub async fn receive(
        &self,
        inbound: &NewInbound<'_>,
        at: DateTime<Utc>,
        lease: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO channel_inbound (id, channel, account, message_key, external_id, customer_id, text, state, received_at, thread, claimed_until)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'received', $8, $9, $10)
             ON CONFLICT (channel, account, message_key) DO NOTHING",
        )
        .bind(inbound.id)
        .bind(&inbound.route.channel)
        .bind(&inbound.route.account)
        .bind(inbound.message_key)
        .bind(&inbound.route.user)
        .bind(inbound.customer_id)
        .bind(self.vault.seal(sealed::INBOUND_TEXT, inbound.text))
        .bind(stamp(at))
        .bind(&inbound.route.thread)
        .bind(stamp(lease))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives up the receiver's hold on a message it could not answer, for the sender's next sweep.
    pub async fn release_inbound(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE channel_inbound SET claimed_until = NULL WHERE id = $1 AND state = 'received'")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Claims received messages older than `before` that no turn answered,
    /// for `lease` (another replica may be answering one right now).
    pub async fn claim_unanswered(
        &self,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
        lease: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<PendingInbound>, StoreError> {
        let now = stamp(now);
        let rows = sqlx::query(
            "SELECT * FROM channel_inbound WHERE state = 'received' AND received_at < $1
               AND (claimed_until IS NULL OR claimed_until < $2)
             ORDER BY received_at LIMIT $3",
        )
        .bind(stamp(before))
        .bind(&now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        self.claim_rows(Leased::Inbound, rows, &now, lease, |row, id| {
            Ok(PendingInbound {
                route: route_of(row)?,
                customer_id: row.try_get("customer_id")?,
                text: self.opened(row, "text", sealed::INBOUND_TEXT)?,
                id,
            })
        })
        .await
    }

    /// Marks a received message answered without a turn (a picture, a
    /// message the engine refuses), queueing `replies` with it.
    pub async fn finish_inbound(&self, id: &str, replies: Vec<NewOutbound>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(route) = replies.first().map(|r| r.route.clone()) else {
            self.finish_inbound_in(&mut tx, id).await?;
            tx.commit().await?;
            return Ok(());
        };
        let write = ChannelWrite { route: &route, inbound_id: Some(id), replies };
        self.write_channel(&mut tx, &write, None, &stamp(Utc::now())).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Where a pulled message stream of `route`'s channel and account was read up to.
    pub async fn channel_cursor(&self, channel: &str, account: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT cursor FROM channel_cursors WHERE channel = $1 AND account = $2")
            .bind(channel)
            .bind(account)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Records how far a pulled message stream was read.
    pub async fn set_channel_cursor(&self, channel: &str, account: &str, cursor: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO channel_cursors (channel, account, cursor, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (channel, account) DO UPDATE SET cursor = $3, updated_at = $4",
        )
        .bind(channel)
        .bind(account)
        .bind(cursor)
        .bind(stamp(Utc::now()))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn finish_inbound_in(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE channel_inbound SET state = 'done', text = '', claimed_until = NULL WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Writes what a platform's turn or message carries, in its transaction.
    pub(super) async fn write_channel(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        write: &ChannelWrite<'_>,
        message_id: Option<&str>,
        at: &str,
    ) -> Result<(), StoreError> {
        if let Some(id) = write.inbound_id {
            self.finish_inbound_in(tx, id).await?;
        }
        for reply in &write.replies {
            let (kind, text, options) = match &reply.outgoing {
                Outgoing::Text { text, options } => {
                    let options =
                        (!options.is_empty()).then(|| serde_json::to_string(options).expect("menu options serialise"));
                    ("text", text.as_str(), options)
                }
                Outgoing::Transfer { note } => ("transfer", note.as_str(), None),
            };
            sqlx::query(
                "INSERT INTO outbox (id, channel, account, external_id, kind, text, options, message_id, state, not_before, created_at, thread)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $10, $11)",
            )
            .bind(&reply.id)
            .bind(&reply.route.channel)
            .bind(&reply.route.account)
            .bind(&reply.route.user)
            .bind(kind)
            .bind(self.vault.seal(sealed::OUTBOX_TEXT, text))
            .bind(options)
            .bind(message_id)
            .bind(stamp(reply.not_before))
            .bind(at)
            .bind(&reply.route.thread)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Marks a queued reply answered inside the platform's callback; false
    /// when a sender took it first (then the callback must not answer too).
    pub async fn mark_passive(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE outbox SET state = 'passive', text = '' WHERE id = $1 AND state = 'pending' AND claimed_until IS NULL",
        )
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Lets a queued reply go now (its callback stopped waiting for it).
    pub async fn release_outbound(&self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET not_before = $1 WHERE id = $2 AND state = 'pending'")
            .bind(stamp(now))
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Claims due replies, oldest first, each for `lease` and for one claimant.
    pub async fn claim_outbound(
        &self,
        now: DateTime<Utc>,
        lease: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Outbound>, StoreError> {
        let now = stamp(now);
        let rows = sqlx::query(
            "SELECT * FROM outbox WHERE state = 'pending' AND not_before <= $1
               AND (claimed_until IS NULL OR claimed_until < $1)
             ORDER BY seq LIMIT $2",
        )
        .bind(&now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        self.claim_rows(Leased::Outbound, rows, &now, lease, |row, id| {
            let kind: String = row.try_get("kind")?;
            let outgoing = if kind == "transfer" {
                Outgoing::Transfer { note: self.opened(row, "text", sealed::OUTBOX_TEXT)? }
            } else {
                let options: Option<String> = row.try_get("options")?;
                let options: Vec<MenuOption> = options
                    .map(|o| serde_json::from_str(&o))
                    .transpose()
                    .map_err(|e| super::decode_error("options", e))?
                    .unwrap_or_default();
                Outgoing::Text { text: self.opened(row, "text", sealed::OUTBOX_TEXT)?, options }
            };
            Ok(Outbound { route: route_of(row)?, outgoing, attempts: row.try_get::<i64, _>("attempts")? + 1, id })
        })
        .await
    }

    /// Records a claimed reply's outcome: sent, failed for good (`retry_at`
    /// none) or to try again at `retry_at`. An agent's message follows it.
    pub async fn settle_outbound(
        &self,
        id: &str,
        outcome: Result<(), &str>,
        retry_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let (state, error) = match (outcome, retry_at) {
            (Ok(()), _) => (state::SENT, None),
            (Err(error), Some(_)) => (state::PENDING, Some(error)),
            (Err(error), None) => (state::FAILED, Some(error)),
        };
        let finished = state != state::PENDING;
        sqlx::query(
            "UPDATE outbox SET state = $1, error = $2, claimed_until = NULL, not_before = COALESCE($3, not_before),
                    sent_at = $4, text = CASE WHEN $5 = 1 THEN '' ELSE text END
             WHERE id = $6",
        )
        .bind(state)
        .bind(error)
        .bind(retry_at.map(stamp))
        .bind((state == state::SENT).then(|| stamp(at)))
        .bind(i64::from(finished))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let message: Option<Option<String>> =
            sqlx::query_scalar("SELECT message_id FROM outbox WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
        if let (Some(message), true) = (message.flatten(), finished) {
            sqlx::query("UPDATE messages SET delivery = $1, delivery_error = $2 WHERE id = $3")
                .bind(state)
                .bind(error)
                .bind(message)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if finished {
            self.announce_change();
        }
        Ok(())
    }

    /// For a platform's reply window: when the customer last wrote on this
    /// route, and how many replies went out through the platform's API since.
    pub async fn reply_window(&self, route: &ReplyRoute) -> Result<(Option<DateTime<Utc>>, i64), StoreError> {
        let last: Option<String> = sqlx::query_scalar(
            "SELECT MAX(received_at) FROM channel_inbound WHERE channel = $1 AND account = $2 AND external_id = $3",
        )
        .bind(&route.channel)
        .bind(&route.account)
        .bind(&route.user)
        .fetch_one(&self.pool)
        .await?;
        let Some(last) = last else { return Ok((None, 0)) };
        let sent: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE channel = $1 AND account = $2 AND external_id = $3
               AND created_at >= $4 AND state IN ('pending', 'sent')",
        )
        .bind(&route.channel)
        .bind(&route.account)
        .bind(&route.user)
        .bind(&last)
        .fetch_one(&self.pool)
        .await?;
        let last = DateTime::parse_from_rfc3339(&last).map_err(|e| super::decode_error("received_at", e))?;
        Ok((Some(last.with_timezone(&Utc)), sent))
    }

    /// How the outbox stands: replies per state (for tests and operators).
    pub async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state ORDER BY state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("state")?, r.try_get("n")?))).collect()
    }

    /// The channel, and platform route, of the customer's latest message or turn: where a reply goes.
    pub async fn latest_channel(
        &self,
        customer_id: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<Option<LatestChannel>, StoreError> {
        let row = sqlx::query(
            "SELECT channel, route, created_at FROM (
                SELECT channel, route, created_at FROM turns
                 WHERE customer_id = $1 OR (CAST($1 AS TEXT) IS NULL AND session_id = $2)
                UNION ALL
                SELECT channel, route, created_at FROM messages
                 WHERE role = 'customer' AND (customer_id = $1 OR (CAST($1 AS TEXT) IS NULL AND session_id = $2))
             ) latest ORDER BY created_at DESC LIMIT 1",
        )
        .bind(customer_id)
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let route: Option<String> = row.try_get("route")?;
        Ok(Some(LatestChannel {
            channel: row.try_get("channel")?,
            route: route.map(|r| serde_json::from_str(&r)).transpose().map_err(|e| super::decode_error("route", e))?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::store::testing::test_stores;

    fn route(user: &str) -> ReplyRoute {
        ReplyRoute::new("wechat", "demo", user)
    }

    #[tokio::test]
    async fn identities_inbound_and_outbox_on_every_backend() {
        for t in test_stores().await {
            identities_merge(&t.store).await;
            inbound_is_received_once_and_recovered(&t.store).await;
            outbox_claims_are_exclusive_and_settle(&t.store).await;
            t.cleanup().await;
        }
    }

    async fn identities_merge(store: &Store) {
        let now = Utc::now();
        let made = store.customer_of(&route("o1"), "wechat-o1", now).await.unwrap();
        assert_eq!(made, "wechat-o1");
        assert_eq!(store.customer_of(&route("o1"), "other", now).await.unwrap(), "wechat-o1", "stable");
        sqlx::query("INSERT INTO turns (trace_id, customer_id, channel, text, intent, confidence, decision, slots, lead, latency_ms, created_at) VALUES ('t-o1', 'wechat-o1', 'wechat', 'x', 'greeting', 0.9, 'answer', '{}', 0, 1.0, $1)")
            .bind(stamp(now))
            .execute(&store.pool)
            .await
            .unwrap();
        let linked = store.link_identity(&route("o1"), "c1", now).await.unwrap();
        assert_eq!(linked, Linked { previous: Some("wechat-o1".into()), merged: true });
        let owner: String = sqlx::query_scalar("SELECT customer_id FROM turns WHERE trace_id = 't-o1'")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(owner, "c1", "the history moved with the identity");
        // A second identity of c1 moved away again leaves c1's history where it is.
        store.link_identity(&route("o2"), "c1", now).await.unwrap();
        assert_eq!(
            store.link_identity(&route("o2"), "c2", now).await.unwrap(),
            Linked { previous: Some("c1".into()), merged: false }
        );
        let identities = store.identities_of("c1").await.unwrap();
        assert_eq!(identities.iter().map(|i| i.external_id.as_str()).collect::<Vec<_>>(), ["o1"]);
    }

    async fn inbound_is_received_once_and_recovered(store: &Store) {
        let now = Utc::now();
        let message = NewInbound {
            id: "in-1",
            route: &route("o3"),
            message_key: "m1",
            customer_id: "c3",
            text: "退货 13812345678",
        };
        let held = now + Duration::seconds(60);
        assert!(store.receive(&message, now, held).await.unwrap());
        assert!(!store.receive(&NewInbound { id: "in-2", ..message.clone() }, now, held).await.unwrap(), "a retry");
        let sealed: String = sqlx::query_scalar("SELECT text FROM channel_inbound WHERE id = 'in-1'")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert!(!sealed.contains("13812345678"), "sealed at rest");
        assert!(
            store.claim_unanswered(now - Duration::seconds(1), now, now, 10).await.unwrap().is_empty(),
            "too young"
        );
        let later = now + Duration::seconds(30);
        assert!(store.claim_unanswered(later, later, later, 10).await.unwrap().is_empty(), "its receiver holds it");
        store.release_inbound("in-1").await.unwrap();
        let lease = later + Duration::seconds(60);
        let stranded = store.claim_unanswered(later, later, lease, 10).await.unwrap();
        assert_eq!(
            stranded.iter().map(|p| (p.id.as_str(), p.text.as_str())).collect::<Vec<_>>(),
            [("in-1", "退货 13812345678")]
        );
        assert!(store.claim_unanswered(later, later, lease, 10).await.unwrap().is_empty(), "claimed");
        store.finish_inbound("in-1", Vec::new()).await.unwrap();
        let after_lease = lease + Duration::seconds(1);
        assert!(store.claim_unanswered(after_lease, after_lease, after_lease, 10).await.unwrap().is_empty(), "done");
    }

    async fn outbox_claims_are_exclusive_and_settle(store: &Store) {
        let now = Utc::now();
        let mut tx = store.begin_write().await.unwrap();
        for (id, user, not_before) in [("r1", "o4", now), ("r2", "o4", now), ("r3", "o5", now + Duration::seconds(5))] {
            let reply = NewOutbound::text(id.into(), route(user), &format!("reply {id}"), not_before);
            let write = ChannelWrite { route: &reply.route.clone(), inbound_id: None, replies: vec![reply] };
            store.write_channel(&mut tx, &write, None, &stamp(now)).await.unwrap();
        }
        tx.commit().await.unwrap();
        sqlx::query("INSERT INTO channel_inbound (id, channel, account, message_key, external_id, customer_id, text, state, received_at) VALUES ('in-o4', 'wechat', 'demo', 'm-o4', 'o4', 'c4', '', 'done', $1)")
            .bind(stamp(now - Duration::seconds(1)))
            .execute(&store.pool)
            .await
            .unwrap();
        let (last, sent) = store.reply_window(&route("o4")).await.unwrap();
        assert_eq!((last.is_some(), sent), (true, 2));
        let lease = now + Duration::seconds(60);
        let claimed = store.claim_outbound(now, lease, 10).await.unwrap();
        assert_eq!(claimed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["r1", "r2"], "due only, in order");
        assert!(store.claim_outbound(now, lease, 10).await.unwrap().is_empty(), "one claimant");
        assert!(!store.mark_passive("r1").await.unwrap(), "a claimed reply is the sender's");
        store.settle_outbound("r1", Ok(()), None, now).await.unwrap();
        store.settle_outbound("r2", Err("busy"), Some(now + Duration::seconds(2)), now).await.unwrap();
        let retry = store.claim_outbound(now + Duration::seconds(10), lease, 10).await.unwrap();
        assert_eq!(retry.iter().map(|c| (c.id.as_str(), c.attempts)).collect::<Vec<_>>(), [("r2", 2), ("r3", 1)]);
        store.settle_outbound("r2", Err("refused"), None, now).await.unwrap();
        assert!(store.mark_passive("r3").await.is_ok());
        let counts = store.outbox_counts().await.unwrap();
        assert_eq!(counts.iter().find(|(s, _)| s == "failed").map(|c| c.1), Some(1));
        assert_eq!(counts.iter().find(|(s, _)| s == "sent").map(|c| c.1), Some(1));
    }
}
