//! SLA push state of tickets: which overdue tickets still have to be announced
//! to the webhook, claiming one for delivery, and recording how it went.
//!
//! NOTE: a claim is a lease (`overdue_push_claimed_until`) taken by a
//! conditional UPDATE, so two sweeps that overlap (two servers on one
//! database, or a slow sweep) never deliver the same ticket twice, and a sweep
//! that dies mid-delivery does not block the ticket forever.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{stamp, Store, StoreError};
use crate::tickets::Status;

/// An overdue ticket whose notice has not reached the webhook yet. It
/// serialises as the ticket's part of the webhook notice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverduePush {
    #[serde(rename = "ticket_id")]
    pub id: String,
    pub priority: crate::tickets::Priority,
    pub queue: String,
    pub reason: String,
    pub customer_id: Option<String>,
    pub intent: String,
    /// RFC 3339, as stored.
    pub created_at: String,
    /// RFC 3339 pick-up deadline, as stored.
    pub due_at: String,
    /// Delivery rounds that failed so far.
    #[serde(skip)]
    pub attempts: i64,
}

/// Where a ticket's overdue push stands.
#[derive(Debug, Clone, PartialEq)]
pub struct OverduePushState {
    pub pushed_at: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// The unresolved tickets of one queue, and how many of them are past their pick-up deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLoad {
    pub queue: String,
    pub open: u64,
    pub overdue: u64,
}

impl Store {
    /// Per queue with tickets not resolved or closed: how many, and how many
    /// are still new past their due time (as the overdue pushes count them).
    pub async fn queue_load(&self, now: DateTime<Utc>) -> Result<Vec<QueueLoad>, StoreError> {
        let rows = sqlx::query(
            "SELECT queue, COUNT(*) AS open, COUNT(CASE WHEN status = $1 AND due_at < $2 THEN 1 END) AS overdue
             FROM tickets WHERE status NOT IN ($3, $4) GROUP BY queue ORDER BY queue",
        )
        .bind(Status::New.as_str())
        .bind(stamp(now))
        .bind(Status::Resolved.as_str())
        .bind(Status::Closed.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let count = |col: &str| row.try_get::<i64, _>(col).map(|n| n.max(0) as u64);
                Ok(QueueLoad { queue: row.try_get("queue")?, open: count("open")?, overdue: count("overdue")? })
            })
            .collect()
    }

    /// Tickets still new past their deadline at `now`, not pushed yet, with
    /// fewer than `max_attempts` failed rounds and not claimed by another
    /// sweep; most overdue first, at most `limit`.
    pub async fn overdue_unpushed(
        &self,
        now: DateTime<Utc>,
        max_attempts: u32,
        limit: u32,
    ) -> Result<Vec<OverduePush>, StoreError> {
        let now = stamp(now);
        let rows = sqlx::query(
            "SELECT id, priority, queue, reason, customer_id, intent, created_at, due_at, overdue_push_attempts FROM tickets
             WHERE status = $1 AND due_at < $2 AND overdue_pushed_at IS NULL AND overdue_push_attempts < $3
               AND (overdue_push_claimed_until IS NULL OR overdue_push_claimed_until < $2)
             ORDER BY due_at, id
             LIMIT $4",
        )
        .bind(Status::New.as_str())
        .bind(&now)
        .bind(i64::from(max_attempts))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(OverduePush {
                    id: row.try_get("id")?,
                    priority: super::decoded(row, "priority")?,
                    queue: row.try_get("queue")?,
                    reason: row.try_get("reason")?,
                    customer_id: row.try_get("customer_id")?,
                    intent: row.try_get("intent")?,
                    created_at: row.try_get("created_at")?,
                    due_at: row.try_get("due_at")?,
                    attempts: row.try_get("overdue_push_attempts")?,
                })
            })
            .collect()
    }

    /// Claims the ticket's push until `until`; false when it was picked up,
    /// pushed or claimed by another sweep in the meantime.
    pub async fn claim_overdue_push(
        &self,
        id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE tickets SET overdue_push_claimed_until = $1
             WHERE id = $2 AND status = $3 AND overdue_pushed_at IS NULL
               AND (overdue_push_claimed_until IS NULL OR overdue_push_claimed_until < $4)",
        )
        .bind(stamp(until))
        .bind(id)
        .bind(Status::New.as_str())
        .bind(stamp(now))
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Records that the webhook accepted the ticket's push, and releases the claim.
    pub async fn mark_overdue_pushed(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE tickets SET overdue_pushed_at = $1, overdue_push_error = NULL, overdue_push_claimed_until = NULL WHERE id = $2")
            .bind(stamp(at))
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Records a failed delivery round and releases the claim; returns the
    /// failed rounds so far.
    pub async fn record_overdue_push_failure(&self, id: &str, error: &str) -> Result<i64, StoreError> {
        sqlx::query(
            "UPDATE tickets SET overdue_push_attempts = overdue_push_attempts + 1, overdue_push_error = $1, overdue_push_claimed_until = NULL
             WHERE id = $2",
        )
        .bind(error)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(self.overdue_push_state(id).await?.map_or(0, |s| s.attempts))
    }

    /// The push state of a ticket; None for an unknown ticket.
    pub async fn overdue_push_state(&self, id: &str) -> Result<Option<OverduePushState>, StoreError> {
        let row = sqlx::query(
            "SELECT overdue_pushed_at, overdue_push_attempts, overdue_push_error FROM tickets WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(OverduePushState {
            pushed_at: row.try_get("overdue_pushed_at")?,
            attempts: row.try_get("overdue_push_attempts")?,
            last_error: row.try_get("overdue_push_error")?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{open_handoff_ticket, test_stores};
    use chrono::Duration;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-06-15T02:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[tokio::test]
    async fn claims_are_exclusive_until_released_or_expired() {
        for t in test_stores().await {
            claims_are_exclusive(&t.store).await;
            t.cleanup().await;
        }
    }

    async fn claims_are_exclusive(store: &Store) {
        let t0 = t0();
        open_handoff_ticket(store, "T1", t0).await;
        assert!(store.overdue_unpushed(t0 + Duration::minutes(119), 5, 10).await.unwrap().is_empty());
        let now = t0 + Duration::minutes(121);
        let due = store.overdue_unpushed(now, 5, 10).await.unwrap();
        assert_eq!(due.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["T1"]);
        assert_eq!((due[0].customer_id.as_deref(), due[0].attempts), (Some("c1001"), 0));

        // Two overlapping sweeps: only the first claim wins, and the claimed ticket is not offered again.
        let lease = now + Duration::minutes(1);
        assert!(store.claim_overdue_push("T1", now, lease).await.unwrap());
        assert!(!store.claim_overdue_push("T1", now, lease).await.unwrap());
        assert!(store.overdue_unpushed(now, 5, 10).await.unwrap().is_empty());
        // A sweep that died holding the claim does not block the ticket past the lease.
        let later = lease + Duration::seconds(1);
        assert_eq!(store.overdue_unpushed(later, 5, 10).await.unwrap().len(), 1);

        assert_eq!(store.record_overdue_push_failure("T1", "status 500").await.unwrap(), 1);
        assert_eq!(store.record_overdue_push_failure("T1", "status 502").await.unwrap(), 2);
        assert!(store.overdue_unpushed(later, 2, 10).await.unwrap().is_empty(), "the attempt cap stops further rounds");
        assert!(store.claim_overdue_push("T1", later, later + Duration::minutes(1)).await.unwrap());
        store.mark_overdue_pushed("T1", later).await.unwrap();
        let state = store.overdue_push_state("T1").await.unwrap().unwrap();
        assert_eq!(state, OverduePushState { pushed_at: Some(stamp(later)), attempts: 2, last_error: None });
        assert!(!store.claim_overdue_push("T1", later + Duration::hours(1), later + Duration::hours(2)).await.unwrap());
        assert!(store.overdue_unpushed(later + Duration::hours(1), 5, 10).await.unwrap().is_empty());
        assert!(store.overdue_push_state("nope").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn picked_up_tickets_are_neither_due_nor_claimable() {
        for t in test_stores().await {
            picked_up_tickets_are_skipped(&t.store).await;
            t.cleanup().await;
        }
    }

    async fn picked_up_tickets_are_skipped(store: &Store) {
        let t0 = t0();
        open_handoff_ticket(store, "T2", t0).await;
        open_handoff_ticket(store, "T3", t0 + Duration::minutes(5)).await;
        store
            .move_ticket(
                "T2",
                crate::tickets::Status::Assigned,
                Some("agent-1"),
                None,
                "test",
                t0 + Duration::minutes(30),
            )
            .await
            .unwrap();
        let now = t0 + Duration::hours(3);
        let due = store.overdue_unpushed(now, 5, 10).await.unwrap();
        assert_eq!(due.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["T3"]);
        assert!(!store.claim_overdue_push("T2", now, now + Duration::minutes(1)).await.unwrap());
        assert_eq!(store.overdue_unpushed(now, 5, 0).await.unwrap().len(), 0, "limit is honoured");
    }
}
