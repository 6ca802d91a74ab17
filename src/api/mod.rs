//! The HTTP API (axum): `/v1/answer`, tickets, feedback, corrections, health.
//! Handlers translate JSON to engine and store calls and back; they never see
//! a tensor. See `shared/contract.md` for the shapes callers rely on.

mod admin;
mod error;
mod stats;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{BoxError, Json, Router};
use chrono::{DateTime, FixedOffset, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;

pub use admin::{follow_current_version, install};
pub use error::ApiError;

use crate::engine::{self, Candidate, Engine, PreviousTurn};
use crate::policy;
use crate::privacy::mask;
use crate::store::{new_ticket_id, NewTicket, NewTurn, Store, Ticket, TicketAbout, TicketFilter, STATUSES};

/// Limits and settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub max_body_bytes: usize,
    pub max_in_flight: usize,
    pub request_timeout: Duration,
    /// Time within which a new ticket must be picked up.
    pub ticket_sla: chrono::Duration,
    /// How old a customer's last turn may be for a new session to continue it.
    pub conversation_gap: chrono::Duration,
    /// Bearer token the admin routes require; open when unset.
    pub admin_token: Option<String>,
    /// Time zone, question grouping and caps of the analytics endpoints.
    pub stats: crate::stats::StatsSettings,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            max_body_bytes: 64 * 1024,
            max_in_flight: 256,
            request_timeout: Duration::from_secs(10),
            ticket_sla: chrono::Duration::hours(2),
            conversation_gap: chrono::Duration::minutes(30),
            admin_token: None,
            stats: crate::stats::StatsSettings::default(),
        }
    }
}

/// Shared state of every handler.
pub struct AppState {
    /// `None` until the model and index are loaded.
    engine: RwLock<Option<Arc<Engine>>>,
    store: Store,
    in_flight: Arc<Semaphore>,
    settings: ApiSettings,
    /// Retraining and version switching; set once the engine is loaded.
    trainer: std::sync::OnceLock<Arc<crate::train::Trainer>>,
    /// Held by a retrain, reload or rollback: one engine swap at a time.
    learning: Arc<tokio::sync::Mutex<()>>,
    /// Question embeddings kept between analytics requests.
    question_vectors: stats::QuestionVectors,
}

impl AppState {
    pub fn new(store: Store, settings: ApiSettings) -> Arc<AppState> {
        Arc::new(AppState {
            engine: RwLock::new(None),
            store,
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
            settings,
            trainer: std::sync::OnceLock::new(),
            learning: Arc::new(tokio::sync::Mutex::new(())),
            question_vectors: stats::QuestionVectors::default(),
        })
    }

    /// Installs a loaded engine; `/readyz` turns 200.
    pub fn set_engine(&self, engine: Arc<Engine>) {
        // A poisoned lock only means a writer panicked mid-swap; the Option inside is still whole.
        *self.engine.write().unwrap_or_else(|e| e.into_inner()) = Some(engine);
    }

    fn engine(&self) -> Option<Arc<Engine>> {
        self.engine.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Enables the admin routes of the learning loop (retrain, reload, rollback).
    pub fn set_trainer(&self, trainer: Arc<crate::train::Trainer>) {
        let _ = self.trainer.set(trainer);
    }

    fn trainer(&self) -> Option<Arc<crate::train::Trainer>> {
        self.trainer.get().cloned()
    }
}

/// The router with its middleware stack.
pub fn app(state: Arc<AppState>) -> Router {
    let settings = state.settings.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/answer", post(answer))
        .route("/v1/customers/{id}/conversation", get(customer_conversation))
        .route("/v1/tickets", get(list_tickets).post(create_ticket))
        .route("/v1/tickets/{id}/notes", post(add_ticket_note))
        .route("/v1/tickets/{id}", get(get_ticket))
        .route("/v1/tickets/{id}/assign", post(assign_ticket))
        .route("/v1/tickets/{id}/status", post(update_ticket_status))
        .route("/v1/feedback", post(feedback))
        .route("/v1/corrections", post(correction))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|err: BoxError| async move { ApiError::from_middleware(&err, "the request took too long") }))
                .timeout(settings.request_timeout),
        )
        // NOTE: merged after the timeout: a retrain runs for minutes.
        .merge(admin::routes(&state))
        .merge(stats::routes(&settings.stats))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Parses a JSON body ourselves so that every failure is a JSON 4xx.
fn parse_json<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "body_too_large", "the request body is too large")
        } else {
            ApiError::new(status, "bad_body", rejection.body_text())
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let engine = state.engine().ok_or_else(ApiError::not_ready)?;
    Ok(Json(json!({"status": "ready", "version": engine.version(), "exemplars": engine.model().exemplars(), "intents": engine.corpus().intents.len()})))
}

#[derive(Debug, Deserialize)]
struct AnswerRequest {
    text: String,
    session_id: Option<String>,
    customer_id: Option<String>,
    channel: Option<String>,
    scenario: Option<String>,
    now: Option<String>,
}

#[derive(Debug, Serialize)]
struct HandoffInfo {
    reason: &'static str,
    priority: &'static str,
    ticket_id: String,
    queue: &'static str,
}

#[derive(Debug, Serialize)]
struct AnswerResponse {
    decision: &'static str,
    intent: Option<String>,
    confidence: f32,
    answer: Option<String>,
    slots: serde_json::Map<String, Value>,
    candidates: Vec<Candidate>,
    handoff: Option<HandoffInfo>,
    lead: bool,
    trace_id: String,
    /// Language the answer is in ("zh" or "en").
    lang: crate::corpus::Lang,
    latency_ms: f64,
    /// The customer's profile (masked, with tags) when `customer_id` was given.
    profile: Option<crate::profile::Profile>,
    /// Hints for the agent and the bot UI from the profile's tags.
    agent_hints: Vec<String>,
    /// For a clarifying question: the intents offered, numbered from 1 as in
    /// the answer; the customer may reply with the number.
    options: Vec<ClarifyOption>,
}

#[derive(Debug, Serialize)]
struct ClarifyOption {
    number: usize,
    intent: String,
    title: String,
}

/// Ids callers pass through: short, printable, no spaces.
fn check_id(field: &'static str, value: &Option<String>) -> Result<(), ApiError> {
    match value {
        Some(v) if v.is_empty() || v.len() > 128 || v.chars().any(|c| c.is_control() || c.is_whitespace()) => {
            Err(ApiError::bad_request("invalid_field", format!("{field} must be 1 to 128 printable characters without spaces")))
        }
        _ => Ok(()),
    }
}

fn parse_now(now: Option<&str>) -> Result<DateTime<FixedOffset>, ApiError> {
    match now {
        Some(s) => DateTime::parse_from_rfc3339(s).map_err(|e| ApiError::bad_request("invalid_now", format!("now must be an RFC 3339 time: {e}"))),
        None => Ok(Utc::now().fixed_offset()),
    }
}

async fn answer(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Result<Json<AnswerResponse>, ApiError> {
    let started = Instant::now();
    let req: AnswerRequest = parse_json(body)?;
    for (field, value) in [("session_id", &req.session_id), ("customer_id", &req.customer_id), ("channel", &req.channel), ("scenario", &req.scenario)] {
        check_id(field, value)?;
    }
    let now = parse_now(req.now.as_deref())?;
    let engine = state.engine().ok_or_else(ApiError::not_ready)?;
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let previous = previous_turn(&state, req.session_id.as_deref(), req.customer_id.as_deref()).await?;
    let query = engine::Query {
        text: &req.text,
        scenario: req.scenario.as_deref(),
        now,
        customer_id: req.customer_id.as_deref(),
        previous: previous.as_ref(),
        trace_id: &trace_id,
    };
    engine.validate(&query)?;
    let _permit = state.in_flight.clone().try_acquire_owned().map_err(|_| ApiError::busy())?;

    let outcome = engine.answer(query).await?;
    let handoff = outcome.handoff.map(|(reason, priority)| {
        let scenario = engine.corpus().intent(&outcome.intent).map(|i| i.scenario.as_str());
        HandoffInfo { reason: reason.as_str(), priority: priority.as_str(), ticket_id: new_ticket_id(), queue: policy::queue_for(&outcome.intent, scenario) }
    });
    let slots = outcome.slots.to_json();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let turn = NewTurn {
        trace_id: trace_id.clone(),
        session_id: req.session_id,
        customer_id: req.customer_id,
        channel: req.channel.unwrap_or_else(|| "web".into()),
        text: req.text,
        intent: outcome.intent.clone(),
        confidence: outcome.confidence,
        decision: outcome.action.as_str().into(),
        answer: outcome.answer.clone(),
        slots: Value::Object(slots.clone()),
        lead: outcome.lead,
        latency_ms,
        options: outcome.options.clone(),
        // Turns are ordered by when they happened, not by the caller's reference time.
        at: Utc::now(),
    };
    let ticket = handoff.as_ref().map(|h| NewTicket {
        id: h.ticket_id.clone(),
        priority: h.priority.into(),
        queue: h.queue.into(),
        reason: h.reason.into(),
        due_at: Utc::now() + state.settings.ticket_sla,
        context: outcome.context.clone().unwrap_or_else(|| json!({})),
    });
    state.store.record_turn(&turn, ticket.as_ref()).await?;
    tracing::info!(%trace_id, intent = %outcome.intent, decision = outcome.action.as_str(), confidence = outcome.confidence, latency_ms, text = %mask(&turn.text), "answered");
    let options = outcome
        .options
        .iter()
        .enumerate()
        .map(|(n, id)| ClarifyOption {
            number: n + 1,
            intent: id.clone(),
            title: engine.corpus().intent(id).map(|i| i.title(outcome.lang).to_string()).unwrap_or_default(),
        })
        .collect();
    Ok(Json(AnswerResponse {
        decision: outcome.action.as_str(),
        intent: Some(outcome.intent),
        confidence: outcome.confidence,
        answer: outcome.answer,
        slots,
        candidates: outcome.candidates,
        handoff,
        lead: outcome.lead,
        trace_id,
        lang: outcome.lang,
        latency_ms,
        profile: outcome.profile,
        agent_hints: outcome.hints,
        options,
    }))
}

/// The turn this one follows: the session's last, or, for a session without
/// turns yet, the customer's last on any channel if it is recent.
async fn previous_turn(state: &AppState, session_id: Option<&str>, customer_id: Option<&str>) -> Result<Option<PreviousTurn>, ApiError> {
    let mut last = match session_id {
        Some(session) => state.store.last_turn(session).await?,
        None => None,
    };
    if let (None, Some(customer)) = (&last, customer_id) {
        last = state.store.last_turn_of_customer(customer, Utc::now() - state.settings.conversation_gap).await?;
    }
    Ok(last.map(|last| PreviousTurn {
        intent: last.intent,
        decision: last.decision,
        slots: serde_json::from_value(last.slots).unwrap_or_default(),
        options: last.options,
        unhelpful_streak: last.unhelpful_streak,
    }))
}

#[derive(Debug, Deserialize)]
struct ConversationQuery {
    limit: Option<i64>,
}

/// A customer's one history across sessions and channels.
async fn customer_conversation(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    query: Result<Query<ConversationQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "limit must be between 1 and 1000"));
    }
    let conversation = state.store.customer_conversation(&id, limit).await?;
    Ok(Json(json!({"customer_id": id, "conversation": conversation})))
}

async fn get_ticket(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<Ticket>, ApiError> {
    let ticket = state.store.ticket(&id, Utc::now()).await?.ok_or_else(|| ApiError::not_found(format!("no ticket {id:?}")))?;
    Ok(Json(ticket))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTicketRequest {
    customer_id: Option<String>,
    session_id: Option<String>,
    channel: Option<String>,
    /// Taxonomy intent the ticket is about; decides the queue when none is given.
    intent: Option<String>,
    reason: Option<String>,
    priority: Option<String>,
    queue: Option<String>,
    note: Option<String>,
}

/// Queues agents work from.
const QUEUES: [&str; 4] = ["after_sales", "sales", "billing", "general"];
const PRIORITIES: [&str; 3] = ["normal", "high", "urgent"];

/// Opens a ticket by hand (an agent, or a front-end's own "contact us" form).
async fn create_ticket(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Result<(StatusCode, Json<Ticket>), ApiError> {
    let req: CreateTicketRequest = parse_json(body)?;
    for (field, value) in [("customer_id", &req.customer_id), ("session_id", &req.session_id), ("channel", &req.channel), ("reason", &req.reason)] {
        check_id(field, value)?;
    }
    let engine = state.engine().ok_or_else(ApiError::not_ready)?;
    let intent = req.intent.unwrap_or_else(|| "request_human".to_string());
    let Some(known) = engine.corpus().intent(&intent) else {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_intent", format!("{intent:?} is not an intent of the taxonomy")));
    };
    let queue = req.queue.unwrap_or_else(|| policy::queue_for(&intent, Some(&known.scenario)).to_string());
    let priority = req.priority.unwrap_or_else(|| "normal".to_string());
    if !QUEUES.contains(&queue.as_str()) {
        return Err(ApiError::bad_request("invalid_queue", format!("queue must be one of {}", QUEUES.join(", "))));
    }
    if !PRIORITIES.contains(&priority.as_str()) {
        return Err(ApiError::bad_request("invalid_priority", format!("priority must be one of {}", PRIORITIES.join(", "))));
    }
    let now = Utc::now();
    let id = new_ticket_id();
    // The agent gets the same customer context a hand-off gathers.
    let context = match &req.customer_id {
        Some(customer) => engine.customer_context(customer, &id, now).await,
        None => None,
    };
    let ticket = NewTicket {
        id,
        priority,
        queue,
        reason: req.reason.unwrap_or_else(|| "manual".to_string()),
        due_at: now + state.settings.ticket_sla,
        context: context.unwrap_or_else(|| json!({})),
    };
    let about = TicketAbout {
        customer_id: req.customer_id.as_deref(),
        session_id: req.session_id.as_deref(),
        channel: req.channel.as_deref().unwrap_or("web"),
        intent: &intent,
        slots: "{}",
    };
    state.store.create_ticket(&ticket, &about, req.note.as_deref(), now).await?;
    let Json(created) = get_ticket(State(state), Path(ticket.id)).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Debug, Deserialize)]
struct NoteRequest {
    note: String,
}

/// Adds a note to a ticket's history without changing its status.
async fn add_ticket_note(State(state): State<Arc<AppState>>, Path(id): Path<String>, body: Result<Bytes, BytesRejection>) -> Result<Json<Ticket>, ApiError> {
    let req: NoteRequest = parse_json(body)?;
    if req.note.trim().is_empty() || req.note.len() > 4096 {
        return Err(ApiError::bad_request("invalid_note", "note must be 1 to 4096 bytes"));
    }
    state.store.add_ticket_note(&id, &req.note, Utc::now()).await?;
    get_ticket(State(state), Path(id)).await
}

#[derive(Debug, Deserialize)]
struct AssignRequest {
    agent: String,
    note: Option<String>,
}

async fn assign_ticket(State(state): State<Arc<AppState>>, Path(id): Path<String>, body: Result<Bytes, BytesRejection>) -> Result<Json<Ticket>, ApiError> {
    let req: AssignRequest = parse_json(body)?;
    check_id("agent", &Some(req.agent.clone()))?;
    state.store.move_ticket(&id, "assigned", Some(&req.agent), req.note.as_deref(), Utc::now()).await?;
    get_ticket(State(state), Path(id)).await
}

#[derive(Debug, Deserialize)]
struct StatusRequest {
    status: String,
    note: Option<String>,
}

async fn update_ticket_status(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Ticket>, ApiError> {
    let req: StatusRequest = parse_json(body)?;
    if !STATUSES.contains(&req.status.as_str()) {
        return Err(ApiError::bad_request("invalid_status", format!("status must be one of {}", STATUSES.join(", "))));
    }
    state.store.move_ticket(&id, &req.status, None, req.note.as_deref(), Utc::now()).await?;
    get_ticket(State(state), Path(id)).await
}

#[derive(Debug, Deserialize)]
struct TicketQuery {
    status: Option<String>,
    queue: Option<String>,
    priority: Option<String>,
    #[serde(default)]
    overdue: bool,
}

async fn list_tickets(
    State(state): State<Arc<AppState>>,
    query: Result<Query<TicketQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let empty_is_none = |v: Option<String>| v.filter(|s| !s.is_empty());
    let filter = TicketFilter { status: empty_is_none(q.status), queue: empty_is_none(q.queue), priority: empty_is_none(q.priority), overdue: q.overdue };
    let tickets = state.store.tickets(&filter, Utc::now()).await?;
    Ok(Json(json!({"tickets": tickets})))
}

#[derive(Debug, Deserialize)]
struct FeedbackRequest {
    trace_id: String,
    useful: bool,
    comment: Option<String>,
}

async fn feedback(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: FeedbackRequest = parse_json(body)?;
    let id = state.store.add_feedback(&req.trace_id, req.useful, req.comment.as_deref(), Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id, "stored": true}))))
}

#[derive(Debug, Deserialize)]
struct CorrectionRequest {
    trace_id: Option<String>,
    text: Option<String>,
    intent: String,
    answer: Option<String>,
    note: Option<String>,
}

async fn correction(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: CorrectionRequest = parse_json(body)?;
    let engine = state.engine().ok_or_else(ApiError::not_ready)?;
    if !engine.knows_intent(&req.intent) {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_intent", format!("{:?} is not an intent of the taxonomy", req.intent)));
    }
    let text = match (&req.trace_id, &req.text) {
        (Some(trace), None) => state.store.turn_text(trace).await?,
        (_, Some(text)) if !text.trim().is_empty() => text.clone(),
        _ => return Err(ApiError::bad_request("invalid_request", "give a trace_id or a non-empty text")),
    };
    if let Some(trace) = &req.trace_id {
        if !state.store.has_turn(trace).await? {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_trace_id", format!("no turn has trace id {trace:?}")));
        }
    }
    let id = state.store.add_correction(req.trace_id.as_deref(), &text, &req.intent, req.answer.as_deref(), req.note.as_deref(), Utc::now()).await?;
    // The correction takes effect at once. The engine is read after storing,
    // so one swapped in meanwhile learns it from the store instead. The masked
    // text is taught, as stored, so a restart replays exactly the same exemplar.
    let taught = match state.engine() {
        Some(engine) => match engine.teach(vec![(mask(&text).into_owned(), req.intent.clone())]).await {
            Ok(n) => n > 0,
            Err(err) => {
                tracing::warn!(correction = %id, error = %err, "correction stored but not taught to the live engine; it applies on the next restart or version swap");
                false
            }
        },
        None => false,
    };
    Ok((StatusCode::CREATED, Json(json!({"id": id, "stored": true, "taught": taught}))))
}
