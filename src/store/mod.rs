//! Persistence through sqlx: conversation turns, hand-off tickets with their
//! status history, customer feedback and agent corrections. SQLite (WAL) is the
//! embedded default and PostgreSQL works through the same code (sqlx's `Any`
//! driver, chosen by the URL scheme). Every text is masked
//! ([`crate::privacy`]) before it is written, and free texts (what customers
//! and agents wrote, bot answers, ticket context) are sealed by the
//! [`Vault`] as well: the database never holds them in clear.
//!
//! Portable SQL rules: `$N` placeholders (SQLite accepts them too), TEXT
//! RFC 3339 timestamps (which sort as strings), BIGINT flags bound as i64,
//! and `CAST($N AS TEXT) IS NULL` where a parameter's type is otherwise unknown.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor, Row};

use crate::policy::Action;
use crate::privacy::vault::{Vault, VaultError};
use crate::privacy::{mask, mask_json};
use crate::tickets::{Priority, Status};

mod access;
mod analytics;
mod channels;
mod history;
mod learning;
mod overdue;
mod replicas;
mod workspace;
pub use access::{AgentAccount, AgentSession, ApiKeyRecord, AuditEntry, AuditFilter, RotatedRows};
pub use channels::{ChannelWrite, Identity, LatestChannel, Linked, NewInbound, NewOutbound, Outbound, PendingInbound};
pub use learning::StoredCorrection;
pub use overdue::{OverduePush, OverduePushState, QueueLoad};
pub use replicas::ClusterLock;
use workspace::feed;
pub use workspace::{ActiveTicket, Delivery, FeedEntry, MessageRole, NewMessage, StoredMessage};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unknown trace id {0:?}")]
    UnknownTrace(String),
    #[error("no ticket {0:?}")]
    UnknownTicket(String),
    #[error("a ticket cannot go from {from} to {to}")]
    InvalidTransition { from: Status, to: Status },
    #[error("ticket {ticket:?} is already assigned to {owner}")]
    AlreadyAssigned { ticket: String, owner: String },
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// The sealed columns, named as the vault binds each value to its field.
pub(crate) mod sealed {
    pub const TURN_TEXT: &str = "turns.text";
    pub const TURN_ANSWER: &str = "turns.answer";
    pub const TICKET_CONTEXT: &str = "tickets.context";
    pub const EVENT_NOTE: &str = "ticket_events.note";
    pub const FEEDBACK_COMMENT: &str = "feedback.comment";
    pub const CORRECTION_TEXT: &str = "corrections.text";
    pub const CORRECTION_ANSWER: &str = "corrections.answer";
    pub const CORRECTION_NOTE: &str = "corrections.note";
    pub const MESSAGE_TEXT: &str = "messages.text";
    pub const INBOUND_TEXT: &str = "channel_inbound.text";
    pub const OUTBOX_TEXT: &str = "outbox.text";
}

/// Purposes of the vault's keyed hashes.
const QUESTION_KEY: &str = "question";
const ANSWER_KEY: &str = "answer";
const PHONE_KEY: &str = "phone";

/// A phone number as its keyed hash is taken: its last 11 digits (no +86, no separators).
fn phone_digits(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    digits[digits.len().saturating_sub(11)..].iter().collect()
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
    pub decision: Action,
    pub answer: Option<String>,
    pub slots: Value,
    pub lead: bool,
    pub latency_ms: f64,
    /// Intents a clarifying question offered, in order.
    pub options: Vec<String>,
    pub at: DateTime<Utc>,
}

/// What the next turn of a session needs to know of the turns before it.
#[derive(Debug, Clone, PartialEq)]
pub struct LastTurn {
    pub intent: String,
    pub decision: Action,
    pub slots: Value,
    /// Intents its clarifying question offered.
    pub options: Vec<String>,
    /// Unhelpful turns (clarify, or marked not useful) in a row, ending with this one.
    pub unhelpful_streak: usize,
    /// Turns in a row, ending with this one, that gave its answer word for word.
    pub same_answer_in_a_row: usize,
}

/// Most turns a ticket's conversation shows.
const CONVERSATION_LIMIT: i64 = 200;

/// Turns looked at when counting unhelpful turns in a row.
const STREAK_WINDOW: i64 = 3;

/// A ticket opened by a hand-off.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub id: String,
    pub priority: Priority,
    pub queue: String,
    pub reason: String,
    /// Pick-up deadline.
    pub due_at: DateTime<Utc>,
    /// Customer profile, orders, repairs and refunds at hand-off time.
    pub context: Value,
}

/// Who did something to a ticket: "agent:<name>", "key:<id>", "local" (a
/// loopback caller of an unprotected server) or "bot".
pub type Actor<'a> = &'a str;

/// One line of a conversation as an agent reads it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConversationLine {
    /// "customer", "bot" or "agent".
    pub role: &'static str,
    pub text: String,
    pub channel: String,
    pub at: String,
    /// The turn of a customer's or the bot's line (what a correction names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// What the bot understood the turn as, how sure it was, and what it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// The agent who wrote an agent's line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Where an agent's reply stands on its channel: sent, queued or failed, and why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_error: Option<String>,
}

impl From<StoredMessage> for ConversationLine {
    fn from(m: StoredMessage) -> Self {
        let role = match m.role {
            MessageRole::Customer => "customer",
            MessageRole::Agent => "agent",
        };
        ConversationLine {
            role,
            text: m.text,
            channel: m.channel,
            at: m.at,
            trace_id: None,
            intent: None,
            confidence: None,
            decision: None,
            delivery: (m.role == MessageRole::Agent).then_some(m.delivery),
            delivery_error: m.delivery_error,
            agent: m.agent,
        }
    }
}

/// One step of a ticket's status history.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TicketEvent {
    pub status: Status,
    pub note: Option<String>,
    /// Whether the customer sees the note (ticket progress); private notes are for agents.
    pub public: bool,
    /// Who made it (see [`Actor`]); none for events older than attribution.
    pub actor: Option<String>,
    pub at: String,
}

/// A ticket with everything an agent needs.
#[derive(Debug, Clone, Serialize)]
pub struct Ticket {
    pub id: String,
    pub status: Status,
    pub priority: Priority,
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
    /// Customer profile, orders, repairs and refunds at hand-off time. Kept
    /// in clear here (for a reveal) and always shown masked.
    #[serde(serialize_with = "masked_personal")]
    pub context: Value,
    pub created_at: String,
    pub updated_at: String,
    pub conversation: Vec<ConversationLine>,
    pub history: Vec<TicketEvent>,
    /// In lists: the conversation's latest line, so a queue shows what the customer said last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message: Option<ConversationLine>,
}

fn masked_personal<S: serde::Serializer>(value: &Value, serializer: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&crate::privacy::mask_personal(value), serializer)
}

/// Filters of the ticket list.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub status: Option<Status>,
    pub queue: Option<String>,
    pub priority: Option<Priority>,
    /// Only tickets still new past their pick-up deadline.
    pub overdue: bool,
    /// Only tickets of the customer with this phone number (compared by keyed hash).
    pub phone: Option<String>,
    /// Only tickets of this agent.
    pub assignee: Option<String>,
    /// Only tickets nobody is working on (no agent, not resolved or closed).
    pub unassigned: bool,
    pub channel: Option<String>,
    pub customer_id: Option<String>,
    /// At most this many (all when unset).
    pub limit: Option<i64>,
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Reads (and, on PostgreSQL, writes).
    pool: AnyPool,
    /// Writes. On SQLite one connection: writers queue here for their turn
    /// instead of in SQLite's busy handler, which sleeps up to 100 ms between
    /// tries and made the slowest turns under load. On PostgreSQL, `pool`.
    writer: AnyPool,
    backend: Backend,
    vault: Arc<Vault>,
    /// The PostgreSQL URL, for listening to the other replicas.
    url: Option<Arc<str>>,
    /// Moves after each change live streams show (see [`Store::changes`]).
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    /// Moves after each stored correction (see [`Store::corrections_changed`]).
    corrections: Arc<tokio::sync::watch::Sender<u64>>,
}

/// The database behind a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn of(url: &str) -> Result<Backend, StoreError> {
        match url.split_once(':').map(|(scheme, _)| scheme) {
            Some("sqlite") => Ok(Backend::Sqlite),
            Some("postgres" | "postgresql") => Ok(Backend::Postgres),
            _ => Err(StoreError::UnsupportedUrl(redacted_url(url))),
        }
    }
}

/// A column whose text names a value of `T` (a status, a decision).
pub(super) fn decoded<T>(row: &sqlx::any::AnyRow, column: &str) -> Result<T, StoreError>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = row.try_get(column)?;
    text.parse().map_err(|e| decode_error(column, e))
}

pub(super) fn decode_error(column: &str, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Database(sqlx::Error::ColumnDecode { index: column.to_string(), source: Box::new(e) })
}

pub(crate) use crate::support::time::stamp;

/// Most values in one `IN (...)` list: far below any database's limit on bound values.
const KEYS_PER_QUERY: usize = 500;

/// Whose conversation a ticket is: its customer's, else its session's.
fn conversation_key(ticket: &Ticket) -> Option<(&'static str, String)> {
    match (&ticket.customer_id, &ticket.session_id) {
        (Some(customer), _) => Some(("customer_id", customer.clone())),
        (None, Some(session)) => Some(("session_id", session.clone())),
        (None, None) => None,
    }
}

impl Store {
    /// Opens the database at `url` (`sqlite://data/kefu.db`, created if
    /// needed, or `postgres://user:pass@host/db`) and migrates it; `vault`
    /// seals and opens the free texts.
    pub async fn open(url: &str, vault: Arc<Vault>) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        let url = match backend {
            Backend::Sqlite => {
                let path = url.trim_start_matches("sqlite://").split('?').next().unwrap_or_default();
                if let Some(parent) = std::path::Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
                }
                if url.contains("mode=") {
                    url.to_string()
                } else {
                    format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
                }
            }
            Backend::Postgres => url.to_string(),
        };
        let options = |connections: u32| {
            AnyPoolOptions::new().max_connections(connections).acquire_timeout(Duration::from_secs(10)).after_connect(
                move |conn, _| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            // NOTE: WAL with synchronous=NORMAL survives a killed process (committed
                            // frames are in the OS), which is the durability acknowledged turns need.
                            conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;").await?;
                        }
                        Ok(())
                    })
                },
            )
        };
        let pool = options(8).connect(&url).await?;
        let writer = match backend {
            Backend::Sqlite => options(1).connect(&url).await?,
            Backend::Postgres => pool.clone(),
        };
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&writer).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&writer).await?,
        }
        Ok(Store {
            pool,
            writer,
            backend,
            vault,
            url: (backend == Backend::Postgres).then(|| url.into()),
            changes: Arc::new(tokio::sync::watch::Sender::new(0)),
            corrections: Arc::new(tokio::sync::watch::Sender::new(0)),
        })
    }

    /// The vault sealing this store's texts (its keyed hashes sign other things too).
    pub fn vault(&self) -> Arc<Vault> {
        self.vault.clone()
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// once (BEGIN IMMEDIATE): a transaction that reads first and upgrades
    /// later fails at once, whatever the busy timeout, when another connection
    /// wrote in between.
    pub(super) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer.begin().await?,
        })
    }

    /// Opens a sealed column of `row` (legacy clear values pass through).
    pub(super) fn opened(&self, row: &sqlx::any::AnyRow, column: &str, field: &str) -> Result<String, StoreError> {
        let stored: String = row.try_get(column)?;
        Ok(self.vault.open(field, &stored)?)
    }

    /// [`Store::opened`] for a nullable column.
    pub(super) fn opened_optional(
        &self,
        row: &sqlx::any::AnyRow,
        column: &str,
        field: &str,
    ) -> Result<Option<String>, StoreError> {
        let stored: Option<String> = row.try_get(column)?;
        Ok(stored.map(|s| self.vault.open(field, &s)).transpose()?)
    }

    /// The keyed hash that makes two (masked) questions the same for analytics.
    fn question_key(&self, text: &str) -> String {
        self.vault.blind(QUESTION_KEY, text.trim())
    }

    /// The keyed hash that makes two (masked) answers the same for analytics.
    fn answer_key(&self, answer: &str) -> String {
        self.vault.blind(ANSWER_KEY, answer)
    }

    /// The keyed hash a phone number is looked up by.
    fn phone_key(&self, phone: &str) -> String {
        self.vault.blind(PHONE_KEY, &phone_digits(phone))
    }

    /// The phone key of a ticket's context: of its customer's phone, when the CRM gave one.
    fn context_phone_key(&self, context: &Value) -> Option<String> {
        context["customer"]["phone"].as_str().filter(|p| !p.is_empty()).map(|p| self.phone_key(p))
    }

    fn seal_optional(&self, field: &str, plain: Option<&str>) -> Option<String> {
        plain.map(|p| self.vault.seal(field, &mask(p)))
    }

    /// Records a turn, and the ticket it opened, in one transaction.
    pub async fn record_turn(&self, turn: &NewTurn, ticket: Option<&NewTicket>) -> Result<(), StoreError> {
        self.record_turn_with(turn, ticket, None).await
    }

    /// [`Store::record_turn`] with what a platform's turn carries: its route,
    /// the received message it answers and the reply to queue.
    pub async fn record_turn_with(
        &self,
        turn: &NewTurn,
        ticket: Option<&NewTicket>,
        channel: Option<&ChannelWrite<'_>>,
    ) -> Result<(), StoreError> {
        let slots = mask_json(&turn.slots).to_string();
        let at = stamp(turn.at);
        let text = mask(&turn.text);
        let answer = turn.answer.as_deref().map(mask);
        let insert = sqlx::query(
            "INSERT INTO turns (trace_id, session_id, customer_id, channel, text, intent, confidence, decision, answer, slots, lead, latency_ms, ticket_id, created_at, options, text_key, answer_key, route)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(&turn.trace_id)
        .bind(&turn.session_id)
        .bind(&turn.customer_id)
        .bind(&turn.channel)
        .bind(self.vault.seal(sealed::TURN_TEXT, &text))
        .bind(&turn.intent)
        .bind(f64::from(turn.confidence))
        .bind(turn.decision.as_str())
        .bind(answer.as_deref().map(|a| self.vault.seal(sealed::TURN_ANSWER, a)))
        .bind(&slots)
        .bind(i64::from(turn.lead))
        .bind(turn.latency_ms)
        .bind(ticket.map(|t| t.id.as_str()))
        .bind(&at)
        .bind((!turn.options.is_empty()).then(|| Value::from(turn.options.clone()).to_string()))
        .bind(self.question_key(&text))
        .bind(answer.as_deref().map(|a| self.answer_key(a)))
        .bind(channel.map(|c| channels::route_json(c.route)));
        if ticket.is_none() && channel.is_none() {
            // One statement is its own transaction: no BEGIN and COMMIT round trips.
            insert.execute(&self.writer).await?;
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        if let Some(t) = ticket {
            let about = TicketAbout {
                customer_id: turn.customer_id.as_deref(),
                session_id: turn.session_id.as_deref(),
                channel: &turn.channel,
                intent: &turn.intent,
                slots: &slots,
            };
            let opened = format!("opened by hand-off: {}", t.reason);
            self.insert_ticket(&mut tx, t, &about, &at, &opened, "bot").await?;
        }
        insert.execute(&mut *tx).await?;
        if let Some(channel) = channel {
            self.write_channel(&mut tx, channel, None, &at).await?;
        }
        tx.commit().await?;
        if ticket.is_some() {
            self.announce_change();
        }
        Ok(())
    }

    /// Opens a ticket by hand (an agent or a bot front-end), not from a turn.
    pub async fn create_ticket(
        &self,
        ticket: &NewTicket,
        about: &TicketAbout<'_>,
        note: Option<&str>,
        actor: Actor<'_>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let note = note.unwrap_or("opened by hand");
        let slots = mask(about.slots).into_owned();
        self.insert_ticket(&mut tx, ticket, &TicketAbout { slots: &slots, ..*about }, &stamp(at), note, actor).await?;
        tx.commit().await?;
        self.announce_change();
        Ok(())
    }

    /// Adds a timestamped note to a ticket's history without moving it;
    /// a public note is news for the customer, a private one for agents only.
    pub async fn add_ticket_note(
        &self,
        id: &str,
        note: &str,
        public: bool,
        actor: Actor<'_>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let (status, _) = self.status_for_update(&mut tx, id).await?;
        let at = stamp(at);
        sqlx::query("UPDATE tickets SET updated_at = $1 WHERE id = $2").bind(&at).bind(id).execute(&mut *tx).await?;
        self.insert_event(&mut tx, id, status, Some(note), public, actor, &at).await?;
        self.insert_feed(&mut tx, id, feed::NOTE, &at).await?;
        tx.commit().await?;
        self.announce_change();
        Ok(())
    }

    /// The ticket with this id, with its conversation and history.
    pub async fn ticket(&self, id: &str, now: DateTime<Utc>) -> Result<Option<Ticket>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM tickets WHERE id = $1").bind(id).fetch_optional(&self.pool).await?
        else {
            return Ok(None);
        };
        let mut ticket = self.ticket_from_row(&row, now)?;
        ticket.conversation =
            self.conversation(ticket.session_id.as_deref(), ticket.customer_id.as_deref(), &ticket.id).await?;
        ticket.history =
            sqlx::query("SELECT status, note, public, actor, at FROM ticket_events WHERE ticket_id = $1 ORDER BY at")
                .bind(id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| {
                    Ok(TicketEvent {
                        status: decoded(r, "status")?,
                        note: self.opened_optional(r, "note", sealed::EVENT_NOTE)?,
                        public: r.try_get::<i64, _>("public")? != 0,
                        actor: r.try_get("actor")?,
                        at: r.try_get("at")?,
                    })
                })
                .collect::<Result<_, StoreError>>()?;
        Ok(Some(ticket))
    }

    /// A ticket's conversation: its customer's turns and messages across
    /// channels when the customer is known, the session's otherwise.
    async fn conversation(
        &self,
        session_id: Option<&str>,
        customer_id: Option<&str>,
        ticket_id: &str,
    ) -> Result<Vec<ConversationLine>, StoreError> {
        match (customer_id, session_id) {
            (Some(c), _) => self.conversation_of("customer_id", c, CONVERSATION_LIMIT).await,
            (None, Some(s)) => self.conversation_of("session_id", s, CONVERSATION_LIMIT).await,
            (None, None) => {
                let rows = sqlx::query("SELECT * FROM turns WHERE ticket_id = $1")
                    .bind(ticket_id)
                    .fetch_all(&self.pool)
                    .await?;
                self.conversation_lines(&rows)
            }
        }
    }

    /// A customer's conversation across sessions and channels, oldest first:
    /// the last `limit` turns and the messages exchanged with agents since.
    pub async fn customer_conversation(
        &self,
        customer_id: &str,
        limit: i64,
    ) -> Result<Vec<ConversationLine>, StoreError> {
        self.conversation_of("customer_id", customer_id, limit).await
    }

    /// The last `limit` turns where `key` (a column name of ours, never input)
    /// is `value`, with the messages since the first of them, in time order.
    async fn conversation_of(
        &self,
        key: &'static str,
        value: &str,
        limit: i64,
    ) -> Result<Vec<ConversationLine>, StoreError> {
        let mut rows = sqlx::query(&format!("SELECT * FROM turns WHERE {key} = $1 ORDER BY created_at DESC LIMIT $2"))
            .bind(value)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.reverse();
        let mut lines = self.conversation_lines(&rows)?;
        // A full page of turns starts where its first turn does; a shorter one holds every turn.
        let since = match lines.first() {
            Some(first) if rows.len() as i64 == limit => first.at.clone(),
            _ => String::new(),
        };
        let (customer, session) = if key == "customer_id" { (Some(value), None) } else { (None, Some(value)) };
        lines.extend(self.messages_since(customer, session, &since).await?.into_iter().map(ConversationLine::from));
        // Stable: a turn's question stays before its answer.
        lines.sort_by(|a, b| a.at.cmp(&b.at));
        Ok(lines)
    }

    /// Tickets matching `filter`, most urgent first (without conversations).
    pub async fn tickets(&self, filter: &TicketFilter, now: DateTime<Utc>) -> Result<Vec<Ticket>, StoreError> {
        let now_ts = stamp(now);
        let rows = sqlx::query(
            "SELECT * FROM tickets
             WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) AND (CAST($2 AS TEXT) IS NULL OR queue = $2)
               AND (CAST($3 AS TEXT) IS NULL OR priority = $3)
               AND ($4 = 0 OR (status = 'new' AND due_at < $5))
               AND (CAST($6 AS TEXT) IS NULL OR phone_key = $6)
               AND (CAST($7 AS TEXT) IS NULL OR assignee = $7)
               AND ($8 = 0 OR (assignee IS NULL AND status NOT IN ('resolved', 'closed')))
               AND (CAST($9 AS TEXT) IS NULL OR channel = $9)
               AND (CAST($10 AS TEXT) IS NULL OR customer_id = $10)
             ORDER BY due_at LIMIT $11",
        )
        .bind(filter.status.map(Status::as_str))
        .bind(&filter.queue)
        .bind(filter.priority.map(Priority::as_str))
        .bind(i64::from(filter.overdue))
        .bind(&now_ts)
        .bind(filter.phone.as_deref().map(|p| self.phone_key(p)))
        .bind(&filter.assignee)
        .bind(i64::from(filter.unassigned))
        .bind(&filter.channel)
        .bind(&filter.customer_id)
        .bind(filter.limit.unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let mut tickets = rows.iter().map(|r| self.ticket_from_row(r, now)).collect::<Result<Vec<_>, _>>()?;
        let mut last_lines = self.last_lines(&tickets).await?;
        for ticket in &mut tickets {
            ticket.last_message = conversation_key(ticket).and_then(|key| last_lines.remove(&key));
        }
        Ok(tickets)
    }

    /// The newest conversation line of each ticket's customer (or, for a
    /// ticket without one, session): the later of their latest turn and latest
    /// message, as [`Store::conversation_of`] would end. Two queries per
    /// [`KEYS_PER_QUERY`] conversations, however many tickets are listed.
    async fn last_lines(
        &self,
        tickets: &[Ticket],
    ) -> Result<HashMap<(&'static str, String), ConversationLine>, StoreError> {
        let mut newest: HashMap<(&'static str, String), ConversationLine> = HashMap::new();
        for column in ["customer_id", "session_id"] {
            let keys: BTreeSet<String> =
                tickets.iter().filter_map(conversation_key).filter(|(c, _)| *c == column).map(|(_, v)| v).collect();
            let keys: Vec<String> = keys.into_iter().collect();
            for chunk in keys.chunks(KEYS_PER_QUERY) {
                let values = (1..=chunk.len()).map(|i| format!("(${i})")).collect::<Vec<_>>().join(", ");
                // Each value's newest row by an index seek (both databases name
                // a VALUES list's column `column1`); a MAX per group read every
                // index entry of a long history.
                let latest = |table: &str, id: &str, order: &str| {
                    format!(
                        "SELECT x.* FROM (VALUES {values}) AS k JOIN {table} x ON x.{id} =
                           (SELECT y.{id} FROM {table} y WHERE y.{column} = k.column1 ORDER BY y.{order} DESC LIMIT 1)"
                    )
                };
                let (turns_sql, messages_sql) =
                    (latest("turns", "trace_id", "created_at"), latest("messages", "id", "seq"));
                let (mut turns, mut messages) = (sqlx::query(&turns_sql), sqlx::query(&messages_sql));
                for value in chunk {
                    turns = turns.bind(value);
                    messages = messages.bind(value);
                }
                let (turns, messages) = tokio::try_join!(turns.fetch_all(&self.pool), messages.fetch_all(&self.pool))?;
                for row in &turns {
                    let key = (column, row.try_get::<String, _>(column)?);
                    if let Some(line) = self.conversation_lines(std::slice::from_ref(row))?.pop() {
                        newest.insert(key, line);
                    }
                }
                // A message at the same time as the turn came after it.
                for row in &messages {
                    let key = (column, row.try_get::<String, _>(column)?);
                    let line = ConversationLine::from(self.message_from_row(row)?);
                    if newest.get(&key).is_none_or(|turn| line.at >= turn.at) {
                        newest.insert(key, line);
                    }
                }
            }
        }
        Ok(newest)
    }

    /// The latest turn of a session, with how many unhelpful turns led up to it.
    pub async fn last_turn(&self, session_id: &str) -> Result<Option<LastTurn>, StoreError> {
        self.latest_turn("session_id", session_id, "").await
    }

    /// The customer's latest turn since `since`, on any channel: a customer
    /// who asked on WeChat and goes on in the app continues one conversation.
    pub async fn last_turn_of_customer(
        &self,
        customer_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<LastTurn>, StoreError> {
        self.latest_turn("customer_id", customer_id, &stamp(since)).await
    }

    /// `key` is a column name of ours, never input.
    async fn latest_turn(&self, key: &'static str, value: &str, since: &str) -> Result<Option<LastTurn>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT t.intent, t.decision, t.slots, t.options, t.answer_key,
                    (SELECT COUNT(*) FROM feedback f WHERE f.trace_id = t.trace_id AND f.useful = 0) AS not_useful
             FROM turns t WHERE t.{key} = $1 AND t.created_at >= $2 ORDER BY t.created_at DESC LIMIT $3"
        ))
        .bind(value)
        .bind(since)
        .bind(STREAK_WINDOW)
        .fetch_all(&self.pool)
        .await?;
        let Some(row) = rows.first() else { return Ok(None) };
        let answer: Option<String> = row.try_get("answer_key")?;
        let (mut unhelpful, mut repeated) = (Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len()));
        for row in &rows {
            let decision: Action = decoded(row, "decision")?;
            unhelpful.push(decision == Action::Clarify || row.try_get::<i64, _>("not_useful")? > 0);
            let same_answer = answer.is_some() && row.try_get::<Option<String>, _>("answer_key")? == answer;
            repeated.push(decision == Action::Answer && same_answer);
        }
        let json = |col: &str| -> Result<Value, StoreError> {
            let text: Option<String> = row.try_get(col)?;
            Ok(text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null))
        };
        let options = match json("options")? {
            Value::Array(ids) => ids.into_iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        };
        let in_a_row = |flags: &[bool]| flags.iter().take_while(|f| **f).count();
        Ok(Some(LastTurn {
            intent: row.try_get("intent")?,
            decision: decoded(row, "decision")?,
            slots: json("slots")?,
            options,
            unhelpful_streak: in_a_row(&unhelpful),
            same_answer_in_a_row: in_a_row(&repeated),
        }))
    }

    /// Moves a ticket to `to` (assigning it when `assignee` is given), with a
    /// timestamped history entry; refuses moves the lifecycle ([`Status::can_move_to`]) does not allow,
    /// and taking over a ticket another agent is working on.
    pub async fn move_ticket(
        &self,
        id: &str,
        to: Status,
        assignee: Option<&str>,
        note: Option<&str>,
        actor: Actor<'_>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let (from, owner) = self.status_for_update(&mut tx, id).await?;
        if !from.can_move_to(to) {
            return Err(StoreError::InvalidTransition { from, to });
        }
        if let (Some(wanted), Some(owner)) = (assignee, &owner) {
            if wanted != owner && !matches!(from, Status::Resolved | Status::Closed) {
                return Err(StoreError::AlreadyAssigned { ticket: id.to_string(), owner: owner.clone() });
            }
        }
        let at = stamp(at);
        // NOTE: the owner is checked again in the UPDATE, so two agents claiming
        // at once cannot both win, even where the read above took no row lock.
        let updated = sqlx::query(
            "UPDATE tickets SET status = $1, assignee = COALESCE(CAST($2 AS TEXT), assignee), updated_at = $3
             WHERE id = $4 AND (assignee IS NULL OR CAST($2 AS TEXT) IS NULL OR assignee = $2 OR $5 = 1)",
        )
        .bind(to.as_str())
        .bind(assignee)
        .bind(&at)
        .bind(id)
        .bind(i64::from(matches!(from, Status::Resolved | Status::Closed)))
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            let owner =
                sqlx::query_scalar("SELECT assignee FROM tickets WHERE id = $1").bind(id).fetch_one(&mut *tx).await?;
            return Err(StoreError::AlreadyAssigned {
                ticket: id.to_string(),
                owner: Option::<String>::unwrap_or_default(owner),
            });
        }
        let note = match (assignee, note) {
            (Some(a), Some(n)) => Some(format!("assigned to {a}: {n}")),
            (Some(a), None) => Some(format!("assigned to {a}")),
            (None, n) => n.map(str::to_string),
        };
        self.insert_event(&mut tx, id, to, note.as_deref(), true, actor, &at).await?;
        self.insert_feed(&mut tx, id, feed::CHANGED, &at).await?;
        tx.commit().await?;
        self.announce_change();
        Ok(())
    }

    /// A ticket's status and assignee, read inside the transaction that changes the ticket.
    async fn status_for_update(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &str,
    ) -> Result<(Status, Option<String>), StoreError> {
        let row = sqlx::query("SELECT status, assignee FROM tickets WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::UnknownTicket(id.to_string()))?;
        Ok((decoded(&row, "status")?, row.try_get("assignee")?))
    }

    /// Whether a turn with this trace id was recorded.
    pub async fn has_turn(&self, trace_id: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM turns WHERE trace_id = $1")
            .bind(trace_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// The (masked) customer text of a recorded turn.
    pub async fn turn_text(&self, trace_id: &str) -> Result<String, StoreError> {
        let stored: String = sqlx::query_scalar("SELECT text FROM turns WHERE trace_id = $1")
            .bind(trace_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::UnknownTrace(trace_id.to_string()))?;
        Ok(self.vault.open(sealed::TURN_TEXT, &stored)?)
    }

    /// Stores a customer's verdict on a turn.
    pub async fn add_feedback(
        &self,
        trace_id: &str,
        useful: bool,
        comment: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        if !self.has_turn(trace_id).await? {
            return Err(StoreError::UnknownTrace(trace_id.to_string()));
        }
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query("INSERT INTO feedback (id, trace_id, useful, comment, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(trace_id)
            .bind(i64::from(useful))
            .bind(self.seal_optional(sealed::FEEDBACK_COMMENT, comment))
            .bind(stamp(at))
            .execute(&self.writer)
            .await?;
        Ok(id)
    }

    /// Stores an agent's correction of a turn (or of a free text).
    pub async fn add_correction(
        &self,
        trace_id: Option<&str>,
        text: &str,
        intent: &str,
        answer: Option<&str>,
        note: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query("INSERT INTO corrections (id, trace_id, text, intent, answer, note, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&id)
            .bind(trace_id)
            .bind(self.vault.seal(sealed::CORRECTION_TEXT, &mask(text)))
            .bind(intent)
            .bind(self.seal_optional(sealed::CORRECTION_ANSWER, answer))
            .bind(self.seal_optional(sealed::CORRECTION_NOTE, note))
            .bind(stamp(at))
            .execute(&self.writer)
            .await?;
        self.announce_correction();
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

/// Who and what a ticket is about.
#[derive(Debug, Clone, Copy)]
pub struct TicketAbout<'a> {
    pub customer_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub channel: &'a str,
    pub intent: &'a str,
    /// Slots as JSON text.
    pub slots: &'a str,
}

/// A database URL fit for logs and errors: the password replaced by `***`.
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Cannot fail: a URL with a password has a host.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

impl Store {
    async fn insert_ticket(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        t: &NewTicket,
        about: &TicketAbout<'_>,
        at: &str,
        note: &str,
        actor: Actor<'_>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tickets (id, status, priority, queue, reason, customer_id, session_id, channel, intent, slots, due_at, created_at, updated_at, context, phone_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&t.id)
        .bind(Status::New.as_str())
        .bind(t.priority.as_str())
        .bind(&t.queue)
        .bind(&t.reason)
        .bind(about.customer_id)
        .bind(about.session_id)
        .bind(about.channel)
        .bind(about.intent)
        .bind(about.slots)
        .bind(stamp(t.due_at))
        .bind(at)
        .bind(at)
        // NOTE: sealed in clear, not masked: an agent working the ticket may reveal it.
        .bind(self.vault.seal(sealed::TICKET_CONTEXT, &t.context.to_string()))
        .bind(self.context_phone_key(&t.context))
        .execute(&mut **tx)
        .await?;
        self.insert_event(tx, &t.id, Status::New, Some(note), false, actor, at).await?;
        self.insert_feed(tx, &t.id, feed::OPENED, at).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_event(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        ticket_id: &str,
        status: Status,
        note: Option<&str>,
        public: bool,
        actor: Actor<'_>,
        at: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ticket_events (id, ticket_id, status, note, public, actor, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(ticket_id)
        .bind(status.as_str())
        .bind(self.seal_optional(sealed::EVENT_NOTE, note))
        .bind(i64::from(public))
        .bind(actor)
        .bind(at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Customer and bot lines of stored turns, in the turns' order.
    fn conversation_lines(&self, rows: &[sqlx::any::AnyRow]) -> Result<Vec<ConversationLine>, StoreError> {
        let mut lines = Vec::with_capacity(rows.len() * 2);
        for row in rows {
            let customer = ConversationLine {
                role: "customer",
                text: self.opened(row, "text", sealed::TURN_TEXT)?,
                channel: row.try_get("channel")?,
                at: row.try_get("created_at")?,
                trace_id: Some(row.try_get("trace_id")?),
                intent: Some(row.try_get("intent")?),
                confidence: Some(row.try_get::<f64, _>("confidence")? as f32),
                decision: Some(row.try_get("decision")?),
                agent: None,
                delivery: None,
                delivery_error: None,
            };
            let answer = self.opened_optional(row, "answer", sealed::TURN_ANSWER)?;
            let bot = answer.map(|text| ConversationLine { role: "bot", text, ..customer.clone() });
            lines.push(customer);
            lines.extend(bot);
        }
        Ok(lines)
    }

    fn ticket_from_row(&self, row: &sqlx::any::AnyRow, now: DateTime<Utc>) -> Result<Ticket, StoreError> {
        let status: Status = decoded(row, "status")?;
        let due_at: String = row.try_get("due_at")?;
        let overdue = status == Status::New && DateTime::parse_from_rfc3339(&due_at).is_ok_and(|d| d < now);
        let slots: String = row.try_get("slots")?;
        let context = self.opened(row, "context", sealed::TICKET_CONTEXT)?;
        Ok(Ticket {
            id: row.try_get("id")?,
            priority: decoded(row, "priority")?,
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
            last_message: None,
        })
    }
}

/// Stores for tests: a temporary SQLite file always, and a fresh schema in
/// PostgreSQL when `KEFU_TEST_POSTGRES_URL` is set, so the same assertions run
/// against both backends.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub struct TestStore {
        pub store: Store,
        /// What the store was opened with.
        pub url: String,
        pub backend: &'static str,
        _dir: Option<tempfile::TempDir>,
        postgres: Option<(String, String)>,
    }

    impl TestStore {
        /// Another server's handle on the same database.
        pub async fn replica(&self) -> Store {
            Store::open(&self.url, self.store.vault()).await.expect("second handle")
        }

        /// Drops the PostgreSQL schema (the SQLite file goes with its temp dir).
        pub async fn cleanup(self) {
            if let Some((url, schema)) = self.postgres {
                self.store.pool.close().await;
                let admin = AnyPoolOptions::new().max_connections(1).connect(&url).await.expect("postgres");
                admin.execute(format!("DROP SCHEMA {schema} CASCADE").as_str()).await.expect("drop schema");
            }
        }
    }

    /// Records a hand-off turn for customer c1001 at `created` that opens
    /// ticket `id`, due two hours later (the default SLA).
    pub async fn open_handoff_ticket(store: &Store, id: &str, created: DateTime<Utc>) {
        let turn = NewTurn {
            trace_id: format!("trace-{id}"),
            session_id: Some(format!("session-{id}")),
            customer_id: Some("c1001".into()),
            channel: "wechat".into(),
            text: "冰箱又坏了，转人工".into(),
            intent: "repair_request".into(),
            confidence: 0.93,
            decision: crate::policy::Action::Handoff,
            answer: None,
            slots: serde_json::json!({"product": "冰箱"}),
            lead: false,
            latency_ms: 8.0,
            options: Vec::new(),
            at: created,
        };
        let ticket = NewTicket {
            id: id.into(),
            priority: crate::tickets::Priority::High,
            queue: "after_sales".into(),
            reason: "repeat_fault".into(),
            due_at: created + chrono::Duration::hours(2),
            context: serde_json::json!({}),
        };
        store.record_turn(&turn, Some(&ticket)).await.unwrap();
    }

    /// A store in `dir/kefu.db` sealing with a throw-away key.
    pub async fn sqlite_store(dir: &std::path::Path) -> Store {
        Store::open(&format!("sqlite://{}/kefu.db", dir.display()), Arc::new(Vault::ephemeral()))
            .await
            .expect("sqlite store")
    }

    pub async fn test_stores() -> Vec<TestStore> {
        let dir = tempfile::tempdir().expect("temp dir");
        let sqlite = sqlite_store(dir.path()).await;
        let url = format!("sqlite://{}/kefu.db", dir.path().display());
        let mut stores = vec![TestStore { store: sqlite, url, backend: "sqlite", _dir: Some(dir), postgres: None }];
        if let Ok(url) = std::env::var("KEFU_TEST_POSTGRES_URL") {
            sqlx::any::install_default_drivers();
            let schema = format!("kefu_test_{}", uuid::Uuid::new_v4().simple());
            let admin =
                AnyPoolOptions::new().max_connections(1).connect(&url).await.expect("KEFU_TEST_POSTGRES_URL reachable");
            admin.execute(format!("CREATE SCHEMA {schema}").as_str()).await.expect("create schema");
            let sep = if url.contains('?') { '&' } else { '?' };
            let schema_url = format!("{url}{sep}options=-c%20search_path%3D{schema}");
            let store = Store::open(&schema_url, Arc::new(Vault::ephemeral())).await.expect("postgres store");
            stores.push(TestStore {
                store,
                url: schema_url,
                backend: "postgres",
                _dir: None,
                postgres: Some((url, schema)),
            });
        }
        stores
    }
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
            decision: crate::policy::Action::Answer,
            answer: Some("在路上".into()),
            slots: serde_json::json!({"phone": "13812345678"}),
            lead: false,
            latency_ms: 12.0,
            options: Vec::new(),
            at,
        }
    }

    #[tokio::test]
    async fn a_ticket_list_shows_each_conversations_newest_line() {
        for t in testing::test_stores().await {
            let (store, backend) = (&t.store, t.backend);
            let t0 = Utc::now() - chrono::Duration::hours(3);
            let minutes = |m: i64| t0 + chrono::Duration::minutes(m);
            let ticket = |id: &str, at: DateTime<Utc>| NewTicket {
                id: id.into(),
                priority: crate::tickets::Priority::Normal,
                queue: "general".into(),
                reason: "customer_request".into(),
                due_at: at + chrono::Duration::hours(2),
                context: serde_json::json!({}),
            };
            // A customer whose last turn was answered.
            let mut a = turn("a1", "sa", "在吗", minutes(0));
            a.customer_id = Some("ca".into());
            store.record_turn(&a, Some(&ticket("TA", minutes(0)))).await.unwrap();
            let mut later = turn("a2", "sa2", "快递到哪了", minutes(5));
            later.customer_id = Some("ca".into());
            store.record_turn(&later, None).await.unwrap();
            // A customer an agent wrote to after the turn.
            let mut b = turn("b1", "sb", "转人工", minutes(1));
            b.customer_id = Some("cb".into());
            store.record_turn(&b, Some(&ticket("TB", minutes(1)))).await.unwrap();
            let reply = NewMessage {
                ticket_id: Some("TB"),
                customer_id: Some("cb"),
                session_id: Some("sb"),
                channel: "web",
                role: MessageRole::Agent,
                author: Some("agent:li"),
                text: "您好，我来处理",
                delivery: Delivery::Sent,
            };
            store.add_message(&reply, minutes(2)).await.unwrap();
            // A visitor known only by session, whose turn had no answer.
            let mut c = turn("c1", "sc", "我要投诉", minutes(3));
            c.answer = None;
            store.record_turn(&c, Some(&ticket("TC", minutes(3)))).await.unwrap();

            let listed = store.tickets(&TicketFilter::default(), Utc::now()).await.unwrap();
            let last = |id: &str| {
                let ticket = listed.iter().find(|t| t.id == id).unwrap();
                ticket.last_message.clone().map(|line| (line.role, line.text))
            };
            assert_eq!(last("TA"), Some(("bot", "在路上".to_string())), "{backend}");
            assert_eq!(last("TB"), Some(("agent", "您好，我来处理".to_string())), "{backend}");
            assert_eq!(last("TC"), Some(("customer", "我要投诉".to_string())), "{backend}");
            // The same as the conversation each ticket opens on ends with.
            for ticket in &listed {
                let (column, value) = conversation_key(ticket).unwrap();
                let whole = store.conversation_of(column, &value, 1).await.unwrap();
                assert_eq!(ticket.last_message, whole.last().cloned(), "{backend}: {}", ticket.id);
            }
        }
    }

    #[tokio::test]
    async fn records_turns_and_tickets_with_masked_text() {
        for t in testing::test_stores().await {
            let store = &t.store;
            let t0 = Utc::now() - chrono::Duration::hours(3);
            store.record_turn(&turn("a", "s1", "快递到哪了 电话13812345678", t0), None).await.unwrap();
            let ticket = NewTicket {
                id: "T1".into(),
                priority: crate::tickets::Priority::High,
                queue: "general".into(),
                reason: "angry_customer".into(),
                due_at: t0 + chrono::Duration::hours(2),
                context: serde_json::json!({"customer": {"phone": "13812345678"}}),
            };
            let mut second = turn("b", "s1", "垃圾服务", t0 + chrono::Duration::minutes(1));
            second.decision = crate::policy::Action::Handoff;
            store.record_turn(&second, Some(&ticket)).await.unwrap();

            let got = store.ticket("T1", Utc::now()).await.unwrap().unwrap();
            assert_eq!((got.status.as_str(), got.priority.as_str(), got.overdue), ("new", "high", true));
            let texts: Vec<&str> = got.conversation.iter().map(|l| l.text.as_str()).collect();
            assert_eq!(texts, ["快递到哪了 电话138****5678", "在路上", "垃圾服务", "在路上"]);
            assert_eq!(got.history.len(), 1);
            assert_eq!(got.slots["phone"], "138****5678");
            // The context is sealed at rest, clear in memory (for a reveal), masked when shown.
            assert_eq!(got.context["customer"]["phone"], "13812345678");
            assert_eq!(serde_json::to_value(&got).unwrap()["context"]["customer"]["phone"], "138****5678");
            assert!(store.all_stored_text().await.unwrap().iter().all(|t| !t.contains("13812345678")));
            let last = store.last_turn("s1").await.unwrap().unwrap();
            assert_eq!(
                (last.intent.as_str(), last.decision.as_str(), last.unhelpful_streak),
                ("order_tracking", "handoff", 0)
            );

            let overdue =
                store.tickets(&TicketFilter { overdue: true, ..Default::default() }, Utc::now()).await.unwrap();
            assert_eq!(overdue.len(), 1);
            let none = store
                .tickets(&TicketFilter { queue: Some("sales".into()), ..Default::default() }, Utc::now())
                .await
                .unwrap();
            assert!(none.is_empty());
            let by_phone = |phone: &str| TicketFilter { phone: Some(phone.into()), ..Default::default() };
            assert_eq!(store.tickets(&by_phone("+86 138-1234-5678"), Utc::now()).await.unwrap().len(), 1);
            assert!(store.tickets(&by_phone("13912345678"), Utc::now()).await.unwrap().is_empty());
            assert!(store.all_stored_text().await.unwrap().iter().all(|t| !t.contains("13812345678")));
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn moves_tickets_and_records_history() {
        for t in testing::test_stores().await {
            let store = &t.store;
            let ticket = NewTicket {
                id: "T9".into(),
                priority: crate::tickets::Priority::Normal,
                queue: "general".into(),
                reason: "human_requested".into(),
                due_at: Utc::now(),
                context: serde_json::json!({}),
            };
            store.record_turn(&turn("a", "s", "转人工", Utc::now()), Some(&ticket)).await.unwrap();
            store
                .move_ticket("T9", crate::tickets::Status::Assigned, Some("agent-7"), None, "test", Utc::now())
                .await
                .unwrap();
            store
                .move_ticket(
                    "T9",
                    crate::tickets::Status::InProgress,
                    None,
                    Some("called 13812345678"),
                    "test",
                    Utc::now(),
                )
                .await
                .unwrap();
            let err = store
                .move_ticket("T9", crate::tickets::Status::Closed, None, None, "test", Utc::now())
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::InvalidTransition { .. }), "{err}");
            assert!(matches!(
                store.move_ticket("nope", crate::tickets::Status::Assigned, None, None, "test", Utc::now()).await,
                Err(StoreError::UnknownTicket(_))
            ));
            let got = store.ticket("T9", Utc::now()).await.unwrap().unwrap();
            assert_eq!(
                (got.status.as_str(), got.assignee.as_deref(), got.overdue),
                ("in_progress", Some("agent-7"), false)
            );
            let steps: Vec<&str> = got.history.iter().map(|e| e.status.as_str()).collect();
            assert_eq!(steps, ["new", "assigned", "in_progress"]);
            assert_eq!(got.history[2].note.as_deref(), Some("called 138****5678"));
            t.cleanup().await;
        }
    }

    /// Found by schemathesis with two workers: notes and assignments written at
    /// once, each reading the ticket before writing, must all land.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_ticket_changes_all_land() {
        for t in testing::test_stores().await {
            let store = &t.store;
            for i in 0..4 {
                testing::open_handoff_ticket(store, &format!("T{i}"), Utc::now()).await;
            }
            let writers: Vec<_> = (0..32)
                .map(|n| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        let id = format!("T{}", n % 4);
                        if n % 8 == 0 {
                            store
                                .move_ticket(
                                    &id,
                                    crate::tickets::Status::Assigned,
                                    Some("li"),
                                    None,
                                    "test",
                                    Utc::now(),
                                )
                                .await
                        } else {
                            store.add_ticket_note(&id, &format!("note {n}"), true, "test", Utc::now()).await
                        }
                    })
                })
                .collect();
            for writer in writers {
                writer.await.unwrap().unwrap_or_else(|e| panic!("{}: {e}", t.backend));
            }
            let events = events_of_four_tickets(store).await;
            assert_eq!(events, 4 + 32, "{}: every change has its event", t.backend);
            t.cleanup().await;
        }
    }

    async fn events_of_four_tickets(store: &Store) -> usize {
        let mut n = 0;
        for i in 0..4 {
            n += store.ticket(&format!("T{i}"), Utc::now()).await.unwrap().unwrap().history.len();
        }
        n
    }

    #[tokio::test]
    async fn feedback_needs_a_known_trace() {
        for t in testing::test_stores().await {
            let store = &t.store;
            assert!(matches!(
                store.add_feedback("nope", true, None, Utc::now()).await,
                Err(StoreError::UnknownTrace(_))
            ));
            store.record_turn(&turn("a", "s", "hi", Utc::now()), None).await.unwrap();
            store.add_feedback("a", false, Some("没用"), Utc::now()).await.unwrap();
            assert!(store.ticket("missing", Utc::now()).await.unwrap().is_none());
            t.cleanup().await;
        }
    }

    #[test]
    fn database_urls_are_logged_without_passwords() {
        assert_eq!(redacted_url("postgres://kefu:s3cret@db.internal/kefu"), "postgres://kefu:***@db.internal/kefu");
        assert_eq!(redacted_url("sqlite://data/kefu.db"), "sqlite://data/kefu.db");
        assert!(matches!(Backend::of("mysql://x"), Err(StoreError::UnsupportedUrl(_))));
    }

    #[tokio::test]
    async fn counts_unhelpful_turns_in_a_row() {
        for t in testing::test_stores().await {
            let store = &t.store;
            let t0 = Utc::now();
            let mut clarify = turn("c1", "s", "那个", t0);
            clarify.decision = crate::policy::Action::Clarify;
            clarify.options = vec!["order_tracking".into(), "refund_status".into()];
            store.record_turn(&turn("a1", "s", "快递到哪了", t0 - chrono::Duration::seconds(2)), None).await.unwrap();
            store.record_turn(&clarify, None).await.unwrap();
            let last = store.last_turn("s").await.unwrap().unwrap();
            assert_eq!(
                (last.unhelpful_streak, last.options.as_slice()),
                (1, ["order_tracking".to_string(), "refund_status".to_string()].as_slice()),
                "{}",
                t.backend
            );
            // An answer marked not useful counts too.
            store.record_turn(&turn("a2", "s", "退款呢", t0 + chrono::Duration::seconds(1)), None).await.unwrap();
            assert_eq!(store.last_turn("s").await.unwrap().unwrap().unhelpful_streak, 0, "{}", t.backend);
            store.add_feedback("a2", false, None, Utc::now()).await.unwrap();
            let last = store.last_turn("s").await.unwrap().unwrap();
            assert_eq!((last.unhelpful_streak, last.options.len()), (2, 0), "{}", t.backend);
            assert_eq!(last.same_answer_in_a_row, 1, "the clarifying question before it breaks the run");
            store.record_turn(&turn("a3", "s", "退款呢?", t0 + chrono::Duration::seconds(2)), None).await.unwrap();
            assert_eq!(store.last_turn("s").await.unwrap().unwrap().same_answer_in_a_row, 2, "{}", t.backend);
            let mut news = turn("a4", "s", "现在呢", t0 + chrono::Duration::seconds(3));
            news.answer = Some("已签收".into());
            store.record_turn(&news, None).await.unwrap();
            assert_eq!(store.last_turn("s").await.unwrap().unwrap().same_answer_in_a_row, 1, "{}", t.backend);
            assert!(store.last_turn("other").await.unwrap().is_none());
            t.cleanup().await;
        }
    }
}
