//! Persistence through sqlx: conversation turns, hand-off tickets with their
//! status history, customer feedback and agent corrections. SQLite (WAL) is the
//! embedded default; the SQL is kept portable. Every text is masked
//! ([`crate::privacy`]) before it is written.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::privacy::{mask, mask_json};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unknown trace id {0:?}")]
    UnknownTrace(String),
    #[error("no ticket {0:?}")]
    UnknownTicket(String),
    #[error("a ticket cannot go from {from} to {to}")]
    InvalidTransition { from: String, to: String },
}

/// Ticket statuses in their usual order.
pub const STATUSES: [&str; 6] = ["new", "assigned", "in_progress", "waiting_customer", "resolved", "closed"];

/// Whether a ticket may move from `from` to `to`. Work can be reopened
/// (resolved -> in_progress) but a closed ticket stays closed.
pub fn can_move(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("new", "assigned")
            | ("assigned", "assigned" | "in_progress")
            | ("in_progress", "waiting_customer" | "resolved" | "assigned")
            | ("waiting_customer", "in_progress" | "resolved")
            | ("resolved", "closed" | "in_progress")
    )
}

/// One answered turn, as it is recorded.
#[derive(Debug, Clone)]
pub struct NewTurn {
    pub trace_id: String,
    pub session_id: Option<String>,
    pub customer_id: Option<String>,
    pub channel: String,
    pub text: String,
    pub intent: String,
    pub confidence: f32,
    pub decision: String,
    pub answer: Option<String>,
    pub slots: Value,
    pub lead: bool,
    pub latency_ms: f64,
    pub at: DateTime<Utc>,
}

/// A ticket opened by a hand-off.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub id: String,
    pub priority: String,
    pub queue: String,
    pub reason: String,
    /// Pick-up deadline.
    pub due_at: DateTime<Utc>,
    /// Customer profile, orders, repairs and refunds at hand-off time.
    pub context: Value,
}

/// One line of a conversation as an agent reads it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConversationLine {
    /// "customer" or "bot".
    pub role: &'static str,
    pub text: String,
    pub channel: String,
    pub at: String,
    pub trace_id: String,
}

/// One step of a ticket's status history.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TicketEvent {
    pub status: String,
    pub note: Option<String>,
    pub at: String,
}

/// A ticket with everything an agent needs.
#[derive(Debug, Clone, Serialize)]
pub struct Ticket {
    pub id: String,
    pub status: String,
    pub priority: String,
    pub queue: String,
    pub reason: String,
    pub customer_id: Option<String>,
    pub session_id: Option<String>,
    pub channel: String,
    pub intent: String,
    pub slots: Value,
    /// The agent working on it.
    pub assignee: Option<String>,
    pub due_at: String,
    pub overdue: bool,
    /// Customer profile, orders, repairs and refunds at hand-off time.
    pub context: Value,
    pub created_at: String,
    pub updated_at: String,
    pub conversation: Vec<ConversationLine>,
    pub history: Vec<TicketEvent>,
}

/// Filters of the ticket list.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub status: Option<String>,
    pub queue: Option<String>,
    pub priority: Option<String>,
    /// Only tickets still new past their pick-up deadline.
    pub overdue: bool,
}

/// Status of a ticket nobody has picked up yet.
pub const STATUS_NEW: &str = "new";

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl Store {
    /// Opens (creating if needed) the database at `url` (e.g. `sqlite://data/kefu.db`) and migrates it.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite://").and_then(|p| std::path::Path::new(p).parent()) {
            if !path.as_os_str().is_empty() {
                std::fs::create_dir_all(path).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
            }
        }
        // NOTE: WAL with synchronous=NORMAL survives a killed process (the
        // committed frames are in the OS), which is the durability acknowledged turns need.
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    /// Records a turn, and the ticket it opened, in one transaction.
    pub async fn record_turn(&self, turn: &NewTurn, ticket: Option<&NewTicket>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let slots = mask_json(&turn.slots).to_string();
        let at = ts(turn.at);
        if let Some(t) = ticket {
            sqlx::query(
                "INSERT INTO tickets (id, status, priority, queue, reason, customer_id, session_id, channel, intent, slots, due_at, created_at, updated_at, context)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&t.id)
            .bind(STATUS_NEW)
            .bind(&t.priority)
            .bind(&t.queue)
            .bind(&t.reason)
            .bind(&turn.customer_id)
            .bind(&turn.session_id)
            .bind(&turn.channel)
            .bind(&turn.intent)
            .bind(&slots)
            .bind(ts(t.due_at))
            .bind(&at)
            .bind(&at)
            .bind(mask_json(&t.context).to_string())
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO ticket_events (id, ticket_id, status, note, at) VALUES (?, ?, ?, ?, ?)")
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(&t.id)
                .bind(STATUS_NEW)
                .bind(format!("opened by hand-off: {}", t.reason))
                .bind(&at)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO turns (trace_id, session_id, customer_id, channel, text, intent, confidence, decision, answer, slots, lead, latency_ms, ticket_id, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&turn.trace_id)
        .bind(&turn.session_id)
        .bind(&turn.customer_id)
        .bind(&turn.channel)
        .bind(mask(&turn.text).as_ref())
        .bind(&turn.intent)
        .bind(turn.confidence)
        .bind(&turn.decision)
        .bind(turn.answer.as_deref().map(|a| mask(a).into_owned()))
        .bind(&slots)
        .bind(turn.lead)
        .bind(turn.latency_ms)
        .bind(ticket.map(|t| t.id.as_str()))
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The ticket with this id, with its conversation and history.
    pub async fn ticket(&self, id: &str, now: DateTime<Utc>) -> Result<Option<Ticket>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM tickets WHERE id = ?").bind(id).fetch_optional(&self.pool).await? else {
            return Ok(None);
        };
        let mut ticket = ticket_from_row(&row, now)?;
        ticket.conversation = self.conversation(ticket.session_id.as_deref(), ticket.customer_id.as_deref(), &ticket.id).await?;
        ticket.history = sqlx::query("SELECT status, note, at FROM ticket_events WHERE ticket_id = ? ORDER BY at")
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok(TicketEvent { status: r.try_get("status")?, note: r.try_get("note")?, at: r.try_get("at")? }))
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(Some(ticket))
    }

    /// The turns that led to a ticket: the customer's turns across channels
    /// when known, the session's otherwise, up to the hand-off.
    async fn conversation(&self, session_id: Option<&str>, customer_id: Option<&str>, ticket_id: &str) -> Result<Vec<ConversationLine>, StoreError> {
        let until: Option<String> = sqlx::query_scalar("SELECT created_at FROM turns WHERE ticket_id = ?").bind(ticket_id).fetch_optional(&self.pool).await?;
        let until = until.unwrap_or_else(|| ts(Utc::now()));
        let rows = match (customer_id, session_id) {
            (Some(c), _) => {
                sqlx::query("SELECT * FROM turns WHERE customer_id = ? AND created_at <= ? ORDER BY created_at").bind(c).bind(&until).fetch_all(&self.pool).await?
            }
            (None, Some(s)) => {
                sqlx::query("SELECT * FROM turns WHERE session_id = ? AND created_at <= ? ORDER BY created_at").bind(s).bind(&until).fetch_all(&self.pool).await?
            }
            (None, None) => sqlx::query("SELECT * FROM turns WHERE ticket_id = ?").bind(ticket_id).fetch_all(&self.pool).await?,
        };
        let mut lines = Vec::with_capacity(rows.len() * 2);
        for row in rows {
            let channel: String = row.try_get("channel")?;
            let at: String = row.try_get("created_at")?;
            let trace_id: String = row.try_get("trace_id")?;
            lines.push(ConversationLine { role: "customer", text: row.try_get("text")?, channel: channel.clone(), at: at.clone(), trace_id: trace_id.clone() });
            if let Some(answer) = row.try_get::<Option<String>, _>("answer")? {
                lines.push(ConversationLine { role: "bot", text: answer, channel, at, trace_id });
            }
        }
        Ok(lines)
    }

    /// Tickets matching `filter`, most urgent first (without conversations).
    pub async fn tickets(&self, filter: &TicketFilter, now: DateTime<Utc>) -> Result<Vec<Ticket>, StoreError> {
        let now_ts = ts(now);
        let rows = sqlx::query(
            "SELECT * FROM tickets
             WHERE (? IS NULL OR status = ?) AND (? IS NULL OR queue = ?) AND (? IS NULL OR priority = ?)
               AND (? = 0 OR (status = 'new' AND due_at < ?))
             ORDER BY due_at",
        )
        .bind(&filter.status)
        .bind(&filter.status)
        .bind(&filter.queue)
        .bind(&filter.queue)
        .bind(&filter.priority)
        .bind(&filter.priority)
        .bind(filter.overdue)
        .bind(&now_ts)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| ticket_from_row(r, now)).collect()
    }

    /// The latest turn of a session: (intent, decision, slots).
    pub async fn last_turn(&self, session_id: &str) -> Result<Option<(String, String, Value)>, StoreError> {
        let row = sqlx::query("SELECT intent, decision, slots FROM turns WHERE session_id = ? ORDER BY created_at DESC LIMIT 1")
            .bind(session_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let slots: String = row.try_get("slots")?;
        Ok(Some((row.try_get("intent")?, row.try_get("decision")?, serde_json::from_str(&slots).unwrap_or(Value::Null))))
    }

    /// Moves a ticket to `to` (assigning it when `assignee` is given), with a
    /// timestamped history entry; refuses moves [`can_move`] does not allow.
    pub async fn move_ticket(&self, id: &str, to: &str, assignee: Option<&str>, note: Option<&str>, at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let from: Option<String> = sqlx::query_scalar("SELECT status FROM tickets WHERE id = ?").bind(id).fetch_optional(&mut *tx).await?;
        let from = from.ok_or_else(|| StoreError::UnknownTicket(id.to_string()))?;
        if !can_move(&from, to) {
            return Err(StoreError::InvalidTransition { from, to: to.to_string() });
        }
        let at = ts(at);
        sqlx::query("UPDATE tickets SET status = ?, assignee = COALESCE(?, assignee), updated_at = ? WHERE id = ?")
            .bind(to)
            .bind(assignee)
            .bind(&at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let note = match (assignee, note) {
            (Some(a), Some(n)) => Some(format!("assigned to {a}: {n}")),
            (Some(a), None) => Some(format!("assigned to {a}")),
            (None, n) => n.map(str::to_string),
        };
        sqlx::query("INSERT INTO ticket_events (id, ticket_id, status, note, at) VALUES (?, ?, ?, ?, ?)")
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(id)
            .bind(to)
            .bind(note.map(|n| mask(&n).into_owned()))
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether a turn with this trace id was recorded.
    pub async fn has_turn(&self, trace_id: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM turns WHERE trace_id = ?").bind(trace_id).fetch_one(&self.pool).await?;
        Ok(n > 0)
    }

    /// The (masked) customer text of a recorded turn.
    pub async fn turn_text(&self, trace_id: &str) -> Result<String, StoreError> {
        sqlx::query_scalar("SELECT text FROM turns WHERE trace_id = ?")
            .bind(trace_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::UnknownTrace(trace_id.to_string()))
    }

    /// Stores a customer's verdict on a turn.
    pub async fn add_feedback(&self, trace_id: &str, useful: bool, comment: Option<&str>, at: DateTime<Utc>) -> Result<String, StoreError> {
        if !self.has_turn(trace_id).await? {
            return Err(StoreError::UnknownTrace(trace_id.to_string()));
        }
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query("INSERT INTO feedback (id, trace_id, useful, comment, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(&id)
            .bind(trace_id)
            .bind(useful)
            .bind(comment.map(|c| mask(c).into_owned()))
            .bind(ts(at))
            .execute(&self.pool)
            .await?;
        Ok(id)
    }

    /// Stores an agent's correction of a turn (or of a free text).
    pub async fn add_correction(&self, trace_id: Option<&str>, text: &str, intent: &str, answer: Option<&str>, note: Option<&str>, at: DateTime<Utc>) -> Result<String, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query("INSERT INTO corrections (id, trace_id, text, intent, answer, note, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&id)
            .bind(trace_id)
            .bind(mask(text).as_ref())
            .bind(intent)
            .bind(answer)
            .bind(note.map(|n| mask(n).into_owned()))
            .bind(ts(at))
            .execute(&self.pool)
            .await?;
        Ok(id)
    }

    /// Every stored text column, for privacy checks.
    pub async fn all_stored_text(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for sql in [
            "SELECT text || ' ' || COALESCE(answer, '') || ' ' || slots FROM turns",
            "SELECT slots || ' ' || context FROM tickets",
            "SELECT COALESCE(comment, '') FROM feedback",
            "SELECT text || ' ' || COALESCE(note, '') FROM corrections",
        ] {
            out.extend(sqlx::query_scalar::<_, String>(sql).fetch_all(&self.pool).await?);
        }
        Ok(out)
    }
}

fn ticket_from_row(row: &sqlx::sqlite::SqliteRow, now: DateTime<Utc>) -> Result<Ticket, StoreError> {
    let status: String = row.try_get("status")?;
    let due_at: String = row.try_get("due_at")?;
    let overdue = status == STATUS_NEW && DateTime::parse_from_rfc3339(&due_at).is_ok_and(|d| d < now);
    let slots: String = row.try_get("slots")?;
    let context: String = row.try_get("context")?;
    Ok(Ticket {
        id: row.try_get("id")?,
        priority: row.try_get("priority")?,
        queue: row.try_get("queue")?,
        reason: row.try_get("reason")?,
        assignee: row.try_get("assignee")?,
        customer_id: row.try_get("customer_id")?,
        session_id: row.try_get("session_id")?,
        channel: row.try_get("channel")?,
        intent: row.try_get("intent")?,
        slots: serde_json::from_str(&slots).unwrap_or(Value::Null),
        context: serde_json::from_str(&context).unwrap_or(Value::Null),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        status,
        due_at,
        overdue,
        conversation: Vec::new(),
        history: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(trace: &str, session: &str, text: &str, at: DateTime<Utc>) -> NewTurn {
        NewTurn {
            trace_id: trace.into(),
            session_id: Some(session.into()),
            customer_id: None,
            channel: "web".into(),
            text: text.into(),
            intent: "order_tracking".into(),
            confidence: 0.9,
            decision: "answer".into(),
            answer: Some("在路上".into()),
            slots: serde_json::json!({"phone": "13812345678"}),
            lead: false,
            latency_ms: 12.0,
            at,
        }
    }

    #[tokio::test]
    async fn records_turns_and_tickets_with_masked_text() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/kefu.db", dir.path().display())).await.unwrap();
        let t0 = Utc::now() - chrono::Duration::hours(3);
        store.record_turn(&turn("a", "s1", "快递到哪了 电话13812345678", t0), None).await.unwrap();
        let ticket = NewTicket { id: "T1".into(), priority: "high".into(), queue: "general".into(), reason: "angry_customer".into(), due_at: t0 + chrono::Duration::hours(2), context: serde_json::json!({"customer": {"phone": "13812345678"}}) };
        let mut second = turn("b", "s1", "垃圾服务", t0 + chrono::Duration::minutes(1));
        second.decision = "handoff".into();
        store.record_turn(&second, Some(&ticket)).await.unwrap();

        let got = store.ticket("T1", Utc::now()).await.unwrap().unwrap();
        assert_eq!((got.status.as_str(), got.priority.as_str(), got.overdue), ("new", "high", true));
        let texts: Vec<&str> = got.conversation.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["快递到哪了 电话138****5678", "在路上", "垃圾服务", "在路上"]);
        assert_eq!(got.history.len(), 1);
        assert_eq!(got.slots["phone"], "138****5678");
        assert_eq!(got.context["customer"]["phone"], "138****5678");
        let (intent, decision, _) = store.last_turn("s1").await.unwrap().unwrap();
        assert_eq!((intent.as_str(), decision.as_str()), ("order_tracking", "handoff"));

        let overdue = store.tickets(&TicketFilter { overdue: true, ..Default::default() }, Utc::now()).await.unwrap();
        assert_eq!(overdue.len(), 1);
        let none = store.tickets(&TicketFilter { queue: Some("sales".into()), ..Default::default() }, Utc::now()).await.unwrap();
        assert!(none.is_empty());
        assert!(store.all_stored_text().await.unwrap().iter().all(|t| !t.contains("13812345678")));
    }

    #[test]
    fn ticket_lifecycle() {
        let path = ["new", "assigned", "in_progress", "waiting_customer", "in_progress", "resolved", "closed"];
        assert!(path.windows(2).all(|w| can_move(w[0], w[1])), "{path:?}");
        for (from, to) in [("new", "resolved"), ("closed", "in_progress"), ("new", "closed"), ("resolved", "new")] {
            assert!(!can_move(from, to), "{from} -> {to}");
        }
        assert!(STATUSES.iter().all(|s| STATUSES.iter().any(|t| can_move(s, t)) || *s == "closed"));
    }

    #[tokio::test]
    async fn moves_tickets_and_records_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/kefu.db", dir.path().display())).await.unwrap();
        let ticket = NewTicket { id: "T9".into(), priority: "normal".into(), queue: "general".into(), reason: "human_requested".into(), due_at: Utc::now(), context: serde_json::json!({}) };
        store.record_turn(&turn("a", "s", "转人工", Utc::now()), Some(&ticket)).await.unwrap();
        store.move_ticket("T9", "assigned", Some("agent-7"), None, Utc::now()).await.unwrap();
        store.move_ticket("T9", "in_progress", None, Some("called 13812345678"), Utc::now()).await.unwrap();
        let err = store.move_ticket("T9", "closed", None, None, Utc::now()).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidTransition { .. }), "{err}");
        assert!(matches!(store.move_ticket("nope", "assigned", None, None, Utc::now()).await, Err(StoreError::UnknownTicket(_))));
        let got = store.ticket("T9", Utc::now()).await.unwrap().unwrap();
        assert_eq!((got.status.as_str(), got.assignee.as_deref(), got.overdue), ("in_progress", Some("agent-7"), false));
        let steps: Vec<&str> = got.history.iter().map(|e| e.status.as_str()).collect();
        assert_eq!(steps, ["new", "assigned", "in_progress"]);
        assert_eq!(got.history[2].note.as_deref(), Some("called 138****5678"));
    }

    #[tokio::test]
    async fn feedback_needs_a_known_trace() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/kefu.db", dir.path().display())).await.unwrap();
        assert!(matches!(store.add_feedback("nope", true, None, Utc::now()).await, Err(StoreError::UnknownTrace(_))));
        store.record_turn(&turn("a", "s", "hi", Utc::now()), None).await.unwrap();
        store.add_feedback("a", false, Some("没用"), Utc::now()).await.unwrap();
        assert!(store.ticket("missing", Utc::now()).await.unwrap().is_none());
    }
}
