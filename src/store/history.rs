//! The customer's history as the profile and the `ticket_status` answer read
//! it: earlier turns, open tickets and one ticket's summary
//! ([`CustomerHistory`] for [`Store`]). Portable SQL (see the module above).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{stamp, Store, StoreError};
use crate::profile::{CustomerHistory, HistoryError, HistoryFuture, PastTurn, Said, TicketSummary};

/// Most turns a profile reads: enough for 90 days of a frequent customer, bounded for the rest.
const MAX_PAST_TURNS: i64 = 500;

/// Turns read one by one with their texts (the profile shows five past
/// questions); older ones are counted by intent, decision and hour, so a
/// customer with a long history costs a few grouped rows, not hundreds.
const TURNS_WITH_TEXT: i64 = 20;

/// Days a resolved ticket is still shown to a customer asking about their tickets.
const RESOLVED_SHOWN_DAYS: i64 = 7;

/// Most current tickets listed for one customer.
const MAX_OPEN_TICKETS: i64 = 10;

/// A ticket with its newest public agent note. The hand-off's own opening
/// event (status `new`) is the system's note, not news for the customer, and
/// private notes are for agents only.
const TICKET_SUMMARY: &str =
    "SELECT t.id, t.customer_id, t.status, t.priority, t.intent, t.queue, t.assignee, t.created_at, t.updated_at,
        (SELECT e.note FROM ticket_events e WHERE e.ticket_id = t.id AND e.status <> 'new' AND e.public = 1 AND e.note IS NOT NULL
          ORDER BY e.at DESC LIMIT 1) AS latest_note,
        (SELECT e.at FROM ticket_events e WHERE e.ticket_id = t.id AND e.status <> 'new' AND e.public = 1 AND e.note IS NOT NULL
          ORDER BY e.at DESC LIMIT 1) AS latest_note_at
 FROM tickets t";

impl From<StoreError> for HistoryError {
    fn from(err: StoreError) -> Self {
        HistoryError(Box::new(err))
    }
}

fn parse_time(column: &str, text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).map_err(|e| super::decode_error(column, e))
}

impl Store {
    /// The customer's turns at or after `since` (at most [`MAX_PAST_TURNS`]):
    /// the newest one by one, newest first, then the older ones counted.
    pub async fn past_turns_of(&self, customer_id: &str, since: DateTime<Utc>) -> Result<Vec<PastTurn>, StoreError> {
        let since = stamp(since);
        let newest = sqlx::query(
            "SELECT intent, channel, decision, text, created_at FROM turns
             WHERE customer_id = $1 AND created_at >= $2 ORDER BY created_at DESC LIMIT $3",
        )
        .bind(customer_id)
        .bind(&since)
        .bind(TURNS_WITH_TEXT)
        .fetch_all(&self.pool);
        // An hour's turns of one intent and decision: the count and the first
        // and last times are what the profile's per-day counts need.
        let older = sqlx::query(
            "SELECT intent, decision, COUNT(*) AS turns, MIN(created_at) AS first_at, MAX(created_at) AS last_at
             FROM (SELECT intent, decision, created_at FROM turns
                   WHERE customer_id = $1 AND created_at >= $2 ORDER BY created_at DESC LIMIT $3 OFFSET $4) AS older
             GROUP BY intent, decision, SUBSTR(created_at, 1, 13) ORDER BY last_at DESC",
        )
        .bind(customer_id)
        .bind(&since)
        .bind(MAX_PAST_TURNS - TURNS_WITH_TEXT)
        .bind(TURNS_WITH_TEXT)
        .fetch_all(&self.pool);
        let (newest, older) = tokio::try_join!(newest, older)?;
        let one_by_one = newest.iter().map(|row| {
            let at = parse_time("created_at", &row.try_get::<String, _>("created_at")?)?;
            Ok(PastTurn {
                intent: row.try_get("intent")?,
                decision: row.try_get("decision")?,
                count: 1,
                first_at: at,
                at,
                said: Some(Said {
                    text: self.opened(row, "text", super::sealed::TURN_TEXT)?,
                    channel: row.try_get("channel")?,
                }),
            })
        });
        let counted = older.iter().map(|row| {
            Ok(PastTurn {
                intent: row.try_get("intent")?,
                decision: row.try_get("decision")?,
                count: usize::try_from(row.try_get::<i64, _>("turns")?).unwrap_or_default(),
                first_at: parse_time("first_at", &row.try_get::<String, _>("first_at")?)?,
                at: parse_time("last_at", &row.try_get::<String, _>("last_at")?)?,
                said: None,
            })
        });
        one_by_one.chain(counted).collect()
    }

    /// The customer's tickets not yet resolved or closed, and those resolved
    /// in the last week, newest first.
    pub async fn current_tickets_of(&self, customer_id: &str) -> Result<Vec<TicketSummary>, StoreError> {
        let week_ago = stamp(Utc::now() - chrono::Duration::days(RESOLVED_SHOWN_DAYS));
        let sql = format!(
            "{TICKET_SUMMARY} WHERE t.customer_id = $1
               AND (t.status NOT IN ('resolved', 'closed') OR (t.status = 'resolved' AND t.updated_at >= $3))
             ORDER BY t.created_at DESC LIMIT $2"
        );
        let rows =
            sqlx::query(&sql).bind(customer_id).bind(MAX_OPEN_TICKETS).bind(week_ago).fetch_all(&self.pool).await?;
        self.summaries_from(&rows)
    }

    /// One ticket's summary, whatever its status.
    pub async fn ticket_summary_of(&self, ticket_id: &str) -> Result<Option<TicketSummary>, StoreError> {
        Ok(self.ticket_summaries("t.id = $1", ticket_id, 1).await?.pop())
    }

    /// Tickets matching `condition` (on `$1` = `value`), newest first, at most `limit`.
    async fn ticket_summaries(
        &self,
        condition: &str,
        value: &str,
        limit: i64,
    ) -> Result<Vec<TicketSummary>, StoreError> {
        let sql = format!("{TICKET_SUMMARY} WHERE {condition} ORDER BY t.created_at DESC LIMIT $2");
        let rows = sqlx::query(&sql).bind(value).bind(limit).fetch_all(&self.pool).await?;
        self.summaries_from(&rows)
    }

    fn summaries_from(&self, rows: &[sqlx::any::AnyRow]) -> Result<Vec<TicketSummary>, StoreError> {
        rows.iter()
            .map(|row| {
                let created_at: String = row.try_get("created_at")?;
                let updated_at: String = row.try_get("updated_at")?;
                let latest_note_at: Option<String> = row.try_get("latest_note_at")?;
                Ok(TicketSummary {
                    id: row.try_get("id")?,
                    customer_id: row.try_get("customer_id")?,
                    status: super::decoded(row, "status")?,
                    priority: super::decoded(row, "priority")?,
                    intent: row.try_get("intent")?,
                    queue: row.try_get("queue")?,
                    assignee: row.try_get("assignee")?,
                    latest_note: self.opened_optional(row, "latest_note", super::sealed::EVENT_NOTE)?,
                    latest_note_at: latest_note_at.map(|t| parse_time("latest_note_at", &t)).transpose()?,
                    created_at: parse_time("created_at", &created_at)?,
                    updated_at: parse_time("updated_at", &updated_at)?,
                })
            })
            .collect()
    }
}

impl CustomerHistory for Store {
    fn past_turns<'a>(&'a self, customer_id: &'a str, since: DateTime<Utc>) -> HistoryFuture<'a, Vec<PastTurn>> {
        Box::pin(async move { Ok(self.past_turns_of(customer_id, since).await?) })
    }

    fn current_tickets<'a>(&'a self, customer_id: &'a str) -> HistoryFuture<'a, Vec<TicketSummary>> {
        Box::pin(async move { Ok(self.current_tickets_of(customer_id).await?) })
    }

    fn ticket_summary<'a>(&'a self, ticket_id: &'a str) -> HistoryFuture<'a, Option<TicketSummary>> {
        Box::pin(async move { Ok(self.ticket_summary_of(ticket_id).await?) })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use serde_json::json;

    use super::*;
    use crate::store::{NewTicket, NewTurn};

    fn turn(trace: &str, customer: Option<&str>, intent: &str, decision: &str, at: DateTime<Utc>) -> NewTurn {
        NewTurn {
            trace_id: trace.into(),
            session_id: Some(format!("s-{trace}")),
            customer_id: customer.map(str::to_string),
            channel: "app".into(),
            text: format!("{intent} 电话13812345678"),
            intent: intent.into(),
            confidence: 0.9,
            decision: decision.parse().unwrap(),
            answer: None,
            slots: json!({}),
            lead: false,
            latency_ms: 5.0,
            options: Vec::new(),
            at,
        }
    }

    fn ticket(id: &str, at: DateTime<Utc>) -> NewTicket {
        NewTicket {
            id: id.into(),
            priority: crate::tickets::Priority::High,
            queue: "after_sales".into(),
            reason: "agent_intent".into(),
            due_at: at + TimeDelta::hours(2),
            context: json!({}),
        }
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::sqlite_store(dir.path()).await;
        (dir, store)
    }

    #[tokio::test]
    async fn past_turns_are_the_customers_own_newest_first_and_masked() {
        let (_dir, store) = store().await;
        let now = Utc::now();
        store
            .record_turn(&turn("old", Some("c1"), "installation", "answer", now - TimeDelta::days(100)), None)
            .await
            .unwrap();
        store
            .record_turn(&turn("a", Some("c1"), "repair_request", "handoff", now - TimeDelta::days(3)), None)
            .await
            .unwrap();
        store
            .record_turn(&turn("b", Some("c1"), "repair_progress", "answer", now - TimeDelta::hours(1)), None)
            .await
            .unwrap();
        store.record_turn(&turn("other", Some("c2"), "invoice", "answer", now), None).await.unwrap();
        store.record_turn(&turn("anon", None, "invoice", "answer", now), None).await.unwrap();

        let turns = store.past_turns("c1", now - TimeDelta::days(90)).await.unwrap();
        let intents: Vec<&str> = turns.iter().map(|t| t.intent.as_str()).collect();
        assert_eq!(intents, ["repair_progress", "repair_request"]);
        let said = |i: usize| turns[i].said.clone().unwrap();
        assert_eq!((turns[1].decision.as_str(), said(1).channel.as_str()), ("handoff", "app"));
        assert_eq!(said(0).text, "repair_progress 电话138****5678");
        assert_eq!((turns[0].count, turns[0].first_at), (1, turns[0].at));
        assert!((turns[0].at - (now - TimeDelta::hours(1))).num_milliseconds().abs() < 1);
        assert!(store.past_turns("nobody", now - TimeDelta::days(90)).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_long_history_is_read_as_the_newest_turns_and_hourly_counts() {
        for t in crate::store::testing::test_stores().await {
            let (store, backend) = (&t.store, t.backend);
            let start = Utc::now() - TimeDelta::days(2);
            // 30 hand-offs a minute apart, then 5 answers the next day.
            for i in 0..30 {
                let at = start + TimeDelta::minutes(i);
                store.record_turn(&turn(&format!("h{i}"), Some("c9"), "complaint", "handoff", at), None).await.unwrap();
            }
            for i in 0..5 {
                let at = start + TimeDelta::days(1) + TimeDelta::minutes(i);
                store.record_turn(&turn(&format!("a{i}"), Some("c9"), "invoice", "answer", at), None).await.unwrap();
            }
            let turns = store.past_turns("c9", start - TimeDelta::hours(1)).await.unwrap();
            let (one_by_one, counted): (Vec<_>, Vec<_>) = turns.iter().partition(|t| t.said.is_some());
            assert_eq!(one_by_one.len(), TURNS_WITH_TEXT as usize, "{backend}");
            assert_eq!(one_by_one[0].intent, "invoice", "{backend}: newest first");
            assert_eq!(turns.iter().map(|t| t.count).sum::<usize>(), 35, "{backend}: every turn counted once");
            assert!(counted.iter().all(|t| t.intent == "complaint" && t.decision == "handoff"), "{backend}");
            // The 15 oldest hand-offs, grouped by hour (the minutes may cross one).
            assert!((1..=2).contains(&counted.len()), "{backend}: {counted:?}");
            let first = counted.iter().map(|t| t.first_at).min().unwrap();
            assert!((first - start).num_milliseconds().abs() < 1, "{backend}");
            assert!(counted.iter().all(|t| t.first_at <= t.at), "{backend}");
        }
    }

    #[tokio::test]
    async fn current_tickets_carry_the_latest_public_note_and_closed_ones_drop_out() {
        let (_dir, store) = store().await;
        let t0 = Utc::now() - TimeDelta::hours(5);
        store
            .record_turn(&turn("a", Some("c1"), "repair_request", "handoff", t0), Some(&ticket("TA", t0)))
            .await
            .unwrap();
        let t1 = t0 + TimeDelta::hours(1);
        store.record_turn(&turn("b", Some("c1"), "complaint", "handoff", t1), Some(&ticket("TB", t1))).await.unwrap();
        store.record_turn(&turn("c", Some("c2"), "complaint", "handoff", t1), Some(&ticket("TC", t1))).await.unwrap();

        // A fresh ticket has no agent note yet: the hand-off's own note is not one.
        let open = store.current_tickets("c1").await.unwrap();
        assert_eq!(open.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["TB", "TA"]);
        assert_eq!(
            (open[1].status.as_str(), open[1].latest_note.as_deref(), open[1].assignee.as_deref()),
            ("new", None, None)
        );

        store
            .move_ticket(
                "TA",
                crate::tickets::Status::Assigned,
                Some("agent-7"),
                Some("已受理"),
                "test",
                t0 + TimeDelta::hours(2),
            )
            .await
            .unwrap();
        store
            .move_ticket(
                "TA",
                crate::tickets::Status::InProgress,
                None,
                Some("已派给维修师傅，预计明天上门"),
                "test",
                t0 + TimeDelta::hours(3),
            )
            .await
            .unwrap();
        store
            .move_ticket(
                "TB",
                crate::tickets::Status::Assigned,
                Some("agent-2"),
                None,
                "test",
                t0 + TimeDelta::hours(2),
            )
            .await
            .unwrap();
        store
            .move_ticket("TB", crate::tickets::Status::InProgress, None, None, "test", t0 + TimeDelta::hours(3))
            .await
            .unwrap();
        store
            .move_ticket(
                "TB",
                crate::tickets::Status::Resolved,
                None,
                Some("已补偿优惠券"),
                "test",
                t0 + TimeDelta::hours(4),
            )
            .await
            .unwrap();

        // Resolved, a ticket still shows for a week, so the customer can read how it ended.
        let current = store.current_tickets("c1").await.unwrap();
        assert_eq!(current.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["TB", "TA"]);
        assert_eq!((current[0].status.as_str(), current[0].latest_note.as_deref()), ("resolved", Some("已补偿优惠券")));
        store
            .move_ticket("TB", crate::tickets::Status::Closed, None, None, "test", t0 + TimeDelta::hours(4))
            .await
            .unwrap();
        let open = store.current_tickets("c1").await.unwrap();
        assert_eq!(open.len(), 1);
        let ta = &open[0];
        assert_eq!(
            (ta.id.as_str(), ta.status.as_str(), ta.assignee.as_deref()),
            ("TA", "in_progress", Some("agent-7"))
        );
        assert_eq!(ta.latest_note.as_deref(), Some("已派给维修师傅，预计明天上门"));
        assert_eq!(ta.latest_note_at.map(|t| t.timestamp()), Some((t0 + TimeDelta::hours(3)).timestamp()));
        assert_eq!(
            (ta.intent.as_str(), ta.queue.as_str(), ta.customer_id.as_deref()),
            ("repair_request", "after_sales", Some("c1"))
        );

        // A closed ticket is still found by id.
        let tb = store.ticket_summary("TB").await.unwrap().unwrap();
        assert_eq!(
            (tb.status.as_str(), tb.latest_note.as_deref(), tb.is_open()),
            ("closed", Some("已补偿优惠券"), false)
        );
        assert!(store.ticket_summary("T-none").await.unwrap().is_none());
    }
}
