//! The HTTP API (axum): `/v1/answer`, tickets, feedback, corrections, health.
//! Handlers translate JSON to engine and store calls and back; they never see
//! a tensor. See `shared/contract.md` for the shapes callers rely on.

mod access;
mod address;
mod admin;
mod analytics;
mod channels;
mod error;
mod events;
mod metrics;
mod pages;
mod rasa;
#[cfg(test)]
mod tests;
mod widget;
mod workspace;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::{BoxError, Extension, Json, Router};
use chrono::{DateTime, FixedOffset, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

pub use access::{Access, RouteSpec, SESSION_COOKIE};
pub use address::TrustedProxies;
pub use error::ApiError;

use crate::access::{Caller, Role};
use crate::engine::{Candidate, Engine};
use crate::privacy::mask;
use crate::service::auth::{AuthSettings, Gatekeeper};
use crate::service::channels::{ChannelAccounts, ChannelHub};
use crate::service::live::LiveEngine;
use crate::service::widget::WidgetGate;
use crate::service::{self, turn};
use crate::store::{AuditFilter, Store, Ticket, TicketFilter};
use crate::tickets::Status;

/// Limits and settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub max_body_bytes: usize,
    pub max_in_flight: usize,
    pub request_timeout: Duration,
    /// Hand-off deadlines and how turns continue a conversation.
    pub turns: turn::TurnSettings,
    /// API keys, sessions, rate limits and login throttling.
    pub auth: AuthSettings,
    /// Session cookies carry `Secure` (the server terminates TLS itself).
    pub secure_cookies: bool,
    /// Reverse proxies believed about the client they forwarded for.
    pub trusted_proxies: TrustedProxies,
    /// Time zone, question grouping and caps of the analytics endpoints.
    pub stats: crate::analytics::StatsSettings,
    pub widget: WidgetSettings,
    /// Messaging platform accounts and how their replies are timed.
    pub channels: ChannelAccounts,
    /// The intent name `/model/parse` gives out-of-scope messages (Rasa's FallbackClassifier's).
    pub rasa_fallback_intent: String,
}

/// The website chat: who may embed it and how shops name their customers.
#[derive(Debug, Clone, Default)]
pub struct WidgetSettings {
    /// Secret of the shop's customer tokens (HS256 JWT); none: anonymous visitors only.
    pub customer_token_secret: Option<String>,
    /// Origins allowed to call the widget's routes from their pages (CORS).
    pub allowed_origins: Vec<String>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            max_body_bytes: 64 * 1024,
            max_in_flight: 256,
            request_timeout: Duration::from_secs(10),
            turns: turn::TurnSettings {
                ticket_sla: chrono::Duration::hours(2),
                conversation_gap: chrono::Duration::minutes(30),
            },
            auth: AuthSettings::default(),
            secure_cookies: false,
            trusted_proxies: TrustedProxies::default(),
            stats: crate::analytics::StatsSettings::default(),
            widget: WidgetSettings::default(),
            channels: ChannelAccounts::default(),
            rasa_fallback_intent: "nlu_fallback".into(),
        }
    }
}

/// Shared state of every handler.
pub struct AppState {
    /// The engine served (none until the model and index are loaded) and its learning loop.
    pub live: Arc<LiveEngine>,
    store: Store,
    /// Who is calling, and whether they may.
    gate: Gatekeeper,
    in_flight: Arc<Semaphore>,
    settings: ApiSettings,
    /// Question embeddings kept between analytics requests.
    question_vectors: service::analytics::QuestionVectors,
    /// Checks the website chat's visitor and customer tokens.
    widgets: WidgetGate,
    /// Messaging platforms' callbacks and the outbox of replies to them.
    channels: Arc<ChannelHub>,
}

impl AppState {
    pub fn new(store: Store, settings: ApiSettings) -> Arc<AppState> {
        let live = Arc::new(LiveEngine::default());
        let in_flight = Arc::new(Semaphore::new(settings.max_in_flight));
        let channels =
            ChannelHub::new(store.clone(), live.clone(), in_flight.clone(), settings.turns, settings.channels.clone());
        Arc::new(AppState {
            widgets: WidgetGate::new(store.vault(), settings.widget.customer_token_secret.clone()),
            live,
            gate: Gatekeeper::new(store.clone(), settings.auth.clone()),
            store,
            in_flight,
            channels,
            settings,
            question_vectors: service::analytics::QuestionVectors::default(),
        })
    }

    fn engine(&self) -> Option<Arc<Engine>> {
        self.live.get()
    }

    /// The platforms' callbacks and outbox, whose sender the server runs.
    pub fn channels(&self) -> Arc<ChannelHub> {
        self.channels.clone()
    }

    /// Whether no API key exists, so only loopback clients are answered.
    pub async fn protected_mode(&self) -> Result<bool, crate::service::auth::AuthError> {
        self.gate.protected_mode().await
    }
}

/// Every route with its access, before the access layer: what the router
/// serves and what the role matrix test walks.
fn routes(state: &Arc<AppState>) -> access::Routes {
    use access::Access::{Public, Role as R};
    let settings = &state.settings;
    let (bot, agent, admin) = (R(Role::Bot), R(Role::Agent), R(Role::Admin));
    access::Routes::new()
        .get("/healthz", Public, healthz)
        .get("/readyz", Public, readyz)
        .get("/openapi.json", Public, openapi)
        .post("/v1/auth/login", Public, access::login)
        .post("/v1/auth/logout", Public, access::logout)
        .get("/v1/auth/me", bot, access::me)
        .post("/v1/answer", bot, answer)
        .post("/v1/feedback", bot, feedback)
        .get("/v1/customers/{id}/conversation", agent, customer_conversation)
        .get("/v1/tickets", agent, list_tickets)
        .post("/v1/tickets", agent, create_ticket)
        .get("/v1/tickets/{id}", agent, get_ticket)
        .post("/v1/tickets/{id}/notes", agent, add_ticket_note)
        .post("/v1/tickets/{id}/assign", agent, assign_ticket)
        .post("/v1/tickets/{id}/status", agent, update_ticket_status)
        .post("/v1/tickets/{id}/reveal", agent, reveal_ticket)
        .post("/v1/corrections", agent, correction)
        .get("/v1/audit", admin, audit)
        .merge(workspace::routes())
        .merge(widget::routes())
        .merge(channels::routes())
        .merge(rasa::routes())
        .wrap(|router| {
            router.layer(DefaultBodyLimit::max(settings.max_body_bytes)).layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(|err: BoxError| async move {
                        ApiError::from_middleware(&err, "the request took too long")
                    }))
                    .timeout(settings.request_timeout),
            )
        })
        // NOTE: merged after the timeout: a retrain runs for minutes.
        .merge(admin::routes())
        .merge(analytics::routes(&settings.stats))
        .merge(workspace::streams())
        .merge(widget::streams())
        .merge(pages::routes())
        .merge(metrics::routes())
}

/// The router with its middleware stack.
pub fn app(state: Arc<AppState>) -> Router {
    let cors = widget_cors(&state.settings.widget);
    routes(&state)
        .into_router(&state)
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(tower::util::option_layer(cors))
        // NOTE: 5xx answers the API means (loading, timed out) are warnings; an
        // internal error is logged as an error where it happens, with its cause.
        .layer(
            TraceLayer::new_for_http()
                // NOTE: the path alone: a query may carry a key (`?token=`) or a visitor token.
                .make_span_with(|request: &axum::http::Request<_>| {
                    tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
                })
                .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
        .with_state(state)
}

/// Lets the pages of `allowed_origins` call the web chat's routes from the
/// browser. Only the chat's headers are allowed, never `Authorization` or
/// cookies, so a page elsewhere can act as a visitor and as nothing else.
fn widget_cors(settings: &WidgetSettings) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{header, HeaderName, HeaderValue, Method};
    let origins: Vec<HeaderValue> =
        settings.allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    (!origins.is_empty()).then(|| {
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                HeaderName::from_static(access::VISITOR_HEADER),
                HeaderName::from_static(access::CUSTOMER_HEADER),
            ])
    })
}

/// The OpenAPI 3.1 description of this API, as served.
const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> axum::response::Response {
    use axum::response::IntoResponse;
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
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

/// [`parse_json`] for requests whose fields are all optional: an empty body is the default.
fn parse_json_or_default<T: DeserializeOwned + Default>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    match &body {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(T::default()),
        _ => parse_json(body),
    }
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let engine = state.engine().ok_or_else(ApiError::not_ready)?;
    let mut ready = json!({"status": "ready", "version": engine.version(), "exemplars": engine.model().exemplars(), "intents": engine.corpus().intents.len()});
    // Still serving (so still ready), but not the version every other replica serves.
    if let Some(lag) = state.live.behind() {
        ready["behind"] = json!(lag);
    }
    Ok(Json(ready))
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
    queue: String,
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

/// A clarifying question's options, numbered as the answer numbers them.
fn clarify_options(engine: &Engine, outcome: &crate::engine::Outcome) -> Vec<ClarifyOption> {
    outcome
        .options
        .iter()
        .enumerate()
        .map(|(n, id)| ClarifyOption {
            number: n + 1,
            intent: id.clone(),
            title: engine.corpus().intent(id).map(|i| i.title(outcome.lang).to_string()).unwrap_or_default(),
        })
        .collect()
}

/// Ids callers pass through: short, printable, no spaces.
fn check_id(field: &'static str, value: &Option<String>) -> Result<(), ApiError> {
    match value {
        Some(v) if v.is_empty() || v.len() > 128 || v.chars().any(|c| c.is_control() || c.is_whitespace()) => {
            Err(ApiError::bad_request(
                "invalid_field",
                format!("{field} must be 1 to 128 printable characters without spaces"),
            ))
        }
        _ => Ok(()),
    }
}

fn parse_now(now: Option<&str>) -> Result<DateTime<FixedOffset>, ApiError> {
    match now {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map_err(|e| ApiError::bad_request("invalid_now", format!("now must be an RFC 3339 time: {e}"))),
        None => Ok(Utc::now().fixed_offset()),
    }
}

async fn answer(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AnswerResponse>, ApiError> {
    let started = Instant::now();
    let req: AnswerRequest = parse_json(body)?;
    for (field, value) in [
        ("session_id", &req.session_id),
        ("customer_id", &req.customer_id),
        ("channel", &req.channel),
        ("scenario", &req.scenario),
    ] {
        check_id(field, value)?;
    }
    let now = parse_now(req.now.as_deref())?;
    let engine = state.engine().ok_or_else(ApiError::not_ready)?;
    let message = turn::Message {
        text: req.text,
        session_id: req.session_id,
        customer_id: req.customer_id,
        channel: req.channel.unwrap_or_else(|| service::DEFAULT_CHANNEL.into()),
        scenario: req.scenario,
        now,
        origin: None,
    };
    let turn = turn::answer(&engine, &state.store, &state.in_flight, &state.settings.turns, message, started).await?;
    Ok(Json(AnswerResponse::of(turn, &engine)))
}

impl AnswerResponse {
    fn of(turn: turn::Turn, engine: &Engine) -> AnswerResponse {
        let turn = match turn {
            turn::Turn::Answered(turn) => turn,
            turn::Turn::Forwarded(forwarded) => return AnswerResponse::forwarded(forwarded),
        };
        let options = clarify_options(engine, &turn.outcome);
        let outcome = turn.outcome;
        let handoff = turn.handoff.map(|h| HandoffInfo {
            reason: h.reason.as_str(),
            priority: h.priority.as_str(),
            ticket_id: h.ticket_id,
            queue: h.queue,
        });
        AnswerResponse {
            decision: outcome.action.as_str(),
            intent: Some(outcome.intent),
            confidence: outcome.confidence,
            answer: outcome.answer,
            slots: outcome.slots.to_json(),
            candidates: outcome.candidates,
            handoff,
            lead: outcome.lead,
            trace_id: turn.trace_id,
            lang: outcome.lang,
            latency_ms: turn.latency_ms,
            profile: outcome.profile,
            agent_hints: outcome.hints,
            options,
        }
    }

    /// An agent owns the conversation: no answer, the ticket that took the message.
    fn forwarded(forwarded: turn::ForwardedMessage) -> AnswerResponse {
        let ticket = forwarded.ticket;
        AnswerResponse {
            decision: crate::policy::Action::Handoff.as_str(),
            intent: None,
            confidence: 0.0,
            answer: None,
            slots: serde_json::Map::new(),
            candidates: Vec::new(),
            handoff: Some(HandoffInfo {
                reason: crate::tickets::AGENT_ACTIVE_REASON,
                priority: ticket.priority.as_str(),
                ticket_id: ticket.id,
                queue: ticket.queue,
            }),
            lead: false,
            trace_id: forwarded.message_id,
            lang: forwarded.lang,
            latency_ms: forwarded.latency_ms,
            profile: None,
            agent_hints: Vec::new(),
            options: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ConversationQuery {
    limit: Option<i64>,
}

/// A customer's one history across sessions and channels.
async fn customer_conversation(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    query: Result<Query<ConversationQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "limit must be between 1 and 1000"));
    }
    check_id("customer_id", &Some(id.clone()))?;
    let conversation = service::tickets::customer_conversation(&state.store, &id, limit, &caller).await?;
    Ok(Json(json!({"customer_id": id, "conversation": conversation})))
}

async fn get_ticket(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Ticket>, ApiError> {
    Ok(Json(service::tickets::read(&state.store, &id, &caller).await?))
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

/// Opens a ticket by hand (an agent, or a front-end's own "contact us" form).
async fn create_ticket(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Ticket>), ApiError> {
    let req: CreateTicketRequest = parse_json(body)?;
    for (field, value) in [
        ("customer_id", &req.customer_id),
        ("session_id", &req.session_id),
        ("channel", &req.channel),
        ("reason", &req.reason),
    ] {
        check_id(field, value)?;
    }
    let engine = state.engine().ok_or_else(ApiError::not_ready)?;
    let request = service::tickets::ManualTicket {
        priority: req.priority.as_deref().map(str::parse).transpose()?,
        customer_id: req.customer_id,
        session_id: req.session_id,
        channel: req.channel,
        intent: req.intent,
        reason: req.reason,
        queue: req.queue,
        note: req.note,
    };
    let created =
        service::tickets::open(&engine, &state.store, state.settings.turns.ticket_sla, request, &caller).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Debug, Deserialize)]
struct NoteRequest {
    note: String,
    /// Whether the customer sees it when asking how the ticket is going; private notes are for agents.
    #[serde(default = "default_true")]
    public: bool,
}

fn default_true() -> bool {
    true
}

/// Adds a note to a ticket's history without changing its status.
async fn add_ticket_note(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Ticket>, ApiError> {
    let req: NoteRequest = parse_json(body)?;
    if req.note.trim().is_empty() || req.note.len() > 4096 {
        return Err(ApiError::bad_request("invalid_note", "note must be 1 to 4096 bytes"));
    }
    Ok(Json(service::tickets::add_note(&state.store, &id, &req.note, req.public, &caller).await?))
}

#[derive(Debug, Default, Deserialize)]
struct AssignRequest {
    /// The caller when omitted.
    agent: Option<String>,
    note: Option<String>,
}

async fn assign_ticket(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Ticket>, ApiError> {
    let req: AssignRequest = parse_json_or_default(body)?;
    check_id("agent", &req.agent)?;
    let ticket = service::tickets::assign(&state.store, &id, req.agent.as_deref(), req.note.as_deref(), &caller);
    Ok(Json(ticket.await?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevealRequest {
    /// Among name, phone, address; all when empty.
    #[serde(default)]
    fields: Vec<String>,
}

/// `POST /v1/tickets/{id}/reveal {"fields"?}`: the customer's personal data in
/// clear, for the agent working the ticket; audited.
async fn reveal_ticket(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: RevealRequest = parse_json_or_default(body)?;
    Ok(Json(service::tickets::reveal(&state.store, &id, &req.fields, &caller).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    actor: Option<String>,
    ticket_id: Option<String>,
    customer_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/audit?actor=&ticket_id=&customer_id=&from=&to=&limit=`: who read,
/// revealed or changed what, newest first.
async fn audit(
    State(state): State<Arc<AppState>>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "limit must be between 1 and 1000"));
    }
    let time = |t: Option<String>| -> Result<Option<DateTime<Utc>>, ApiError> {
        t.filter(|t| !t.is_empty()).map(|t| parse_now(Some(&t)).map(|d| d.with_timezone(&Utc))).transpose()
    };
    let filter = AuditFilter {
        from: time(q.from)?,
        to: time(q.to)?,
        actor: q.actor.filter(|s| !s.is_empty()),
        ticket_id: q.ticket_id.filter(|s| !s.is_empty()),
        customer_id: q.customer_id.filter(|s| !s.is_empty()),
        limit,
    };
    Ok(Json(json!({"entries": state.store.audit(&filter).await?})))
}

#[derive(Debug, Deserialize)]
struct StatusRequest {
    status: String,
    note: Option<String>,
}

async fn update_ticket_status(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Ticket>, ApiError> {
    let req: StatusRequest = parse_json(body)?;
    let status: Status = req.status.parse()?;
    Ok(Json(service::tickets::move_to(&state.store, &id, status, req.note.as_deref(), &caller).await?))
}

#[derive(Debug, Deserialize)]
struct TicketQuery {
    status: Option<String>,
    queue: Option<String>,
    priority: Option<String>,
    /// The customer's phone number, in any spelling.
    phone: Option<String>,
    #[serde(default)]
    overdue: bool,
    /// An agent's name, or `me` for the calling agent.
    assignee: Option<String>,
    /// Only tickets nobody is working on.
    #[serde(default)]
    unassigned: bool,
    channel: Option<String>,
    customer_id: Option<String>,
    limit: Option<i64>,
}

async fn list_tickets(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<TicketQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let empty_is_none = |v: Option<String>| v.filter(|s| !s.is_empty());
    let filter = TicketFilter {
        status: empty_is_none(q.status).as_deref().map(str::parse).transpose()?,
        queue: empty_is_none(q.queue),
        priority: empty_is_none(q.priority).as_deref().map(str::parse).transpose()?,
        overdue: q.overdue,
        phone: empty_is_none(q.phone),
        assignee: match empty_is_none(q.assignee) {
            Some(me) if me == "me" => Some(caller.agent_name().ok_or(service::ServiceError::NoAgent)?.to_string()),
            other => other,
        },
        unassigned: q.unassigned,
        channel: empty_is_none(q.channel),
        customer_id: empty_is_none(q.customer_id),
        limit: match q.limit {
            Some(n) if !(1..=1000).contains(&n) => {
                return Err(ApiError::bad_request("invalid_query", "limit must be between 1 and 1000"))
            }
            other => other,
        },
    };
    let tickets = service::tickets::list(&state.store, &filter, &caller).await?;
    Ok(Json(json!({"tickets": tickets})))
}

#[derive(Debug, Deserialize)]
struct FeedbackRequest {
    trace_id: String,
    useful: bool,
    comment: Option<String>,
}

async fn feedback(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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

async fn correction(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: CorrectionRequest = parse_json(body)?;
    let engine = state.engine().ok_or_else(ApiError::not_ready)?;
    if !engine.knows_intent(&req.intent) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_intent",
            format!("{:?} is not an intent of the taxonomy", req.intent),
        ));
    }
    let text = match (&req.trace_id, &req.text) {
        (Some(trace), None) => state.store.turn_text(trace).await?,
        (_, Some(text)) if !text.trim().is_empty() => text.clone(),
        _ => return Err(ApiError::bad_request("invalid_request", "give a trace_id or a non-empty text")),
    };
    if let Some(trace) = &req.trace_id {
        if !state.store.has_turn(trace).await? {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_trace_id",
                format!("no turn has trace id {trace:?}"),
            ));
        }
    }
    let id = state
        .store
        .add_correction(
            req.trace_id.as_deref(),
            &text,
            &req.intent,
            req.answer.as_deref(),
            req.note.as_deref(),
            Utc::now(),
        )
        .await?;
    crate::telemetry::correction();
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
