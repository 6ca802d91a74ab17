//! The website chat's routes. A browser holds no API key: it starts a
//! session (a signed visitor token, and the shop's customer token for a
//! logged-in customer), then sends messages, rates answers and listens for
//! agents' replies with that identity. Personal data stays masked, and the
//! customer sees only their own conversation; no profile or agent hints.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::access::{Access, Routes};
use super::{events, parse_json, parse_json_or_default, parse_now, ApiError, AppState, ClarifyOption};
use crate::service::turn::{self, Turn};
use crate::service::widget::Visitor;
use crate::store::{ConversationLine, StoreError};

/// The widget's channel name.
const WEB: &str = crate::service::DEFAULT_CHANNEL;

/// Lines of history a returning visitor sees.
const HISTORY_TURNS: i64 = 50;

pub(super) fn routes() -> Routes {
    Routes::new()
        .post("/v1/widget/session", Access::Public, start_session)
        .post("/v1/widget/messages", Access::Visitor, send_message)
        .post("/v1/widget/feedback", Access::Visitor, feedback)
}

/// Routes that stream: outside the request timeout.
pub(super) fn streams() -> Routes {
    Routes::new().get("/v1/widget/events", Access::Visitor, agent_replies)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionRequest {
    /// The visitor token from an earlier visit (kept in the page's local storage).
    visitor: Option<String>,
    /// The shop's token for a logged-in customer.
    customer_token: Option<String>,
}

/// A line of the customer's own conversation.
#[derive(Debug, Serialize)]
struct ChatLine {
    role: &'static str,
    text: String,
    at: String,
    /// For rating a bot answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<String>,
}

impl From<ConversationLine> for ChatLine {
    fn from(line: ConversationLine) -> Self {
        let trace_id = if line.role == "bot" { line.trace_id } else { None };
        ChatLine { role: line.role, text: line.text, at: line.at, trace_id, agent: line.agent }
    }
}

/// `POST /v1/widget/session {"visitor"?, "customer_token"?}`: the visitor's
/// token (a new one when none or a foreign one is given), their history and
/// the cursor their live stream starts after.
async fn start_session(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    // Sessions are free to start, so their rate is bounded per address.
    let client = state.settings.trusted_proxies.client(&parts.headers, &parts.extensions);
    let ip = client.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
    state.gate.spend_as(&format!("address:{ip}"))?;
    let req: SessionRequest = parse_json_or_default(body)?;
    let token = match req.visitor {
        Some(token) if state.widgets.visitor_id(&token).is_ok() => token,
        _ => state.widgets.new_visitor_token(),
    };
    let visitor = state.widgets.identify(&token, req.customer_token.as_deref(), chrono::Utc::now().timestamp())?;
    let cursor = state.store.latest_message_seq().await?;
    let history = state.store.customer_conversation(&visitor.customer_id, HISTORY_TURNS).await?;
    let history: Vec<ChatLine> = history.into_iter().map(ChatLine::from).collect();
    Ok(Json(json!({
        "visitor": token,
        "signed_in": visitor.signed_in,
        "history": history,
        "cursor": cursor,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatRequest {
    text: String,
    /// Reference time for relative dates (tests and replays); now when absent.
    now: Option<String>,
}

/// What the widget shows for a message.
#[derive(Debug, Serialize)]
struct ChatReply {
    /// answer, clarify, handoff or refuse; `handoff` with reason `agent_active` while an agent owns the chat.
    decision: &'static str,
    answer: Option<String>,
    /// For rating the answer.
    trace_id: Option<String>,
    options: Vec<ClarifyOption>,
    /// The ticket a hand-off opened, or the agent's ticket.
    ticket_id: Option<String>,
    reason: Option<&'static str>,
    /// The agent who has the conversation.
    agent: Option<String>,
    lang: crate::corpus::Lang,
}

/// `POST /v1/widget/messages {"text"}`: the bot's answer, or the message handed to the agent who has the chat.
async fn send_message(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ChatReply>, ApiError> {
    let started = Instant::now();
    let req: ChatRequest = parse_json(body)?;
    let engine = state.engine().ok_or_else(ApiError::not_ready)?;
    let message = turn::Message {
        text: req.text,
        session_id: Some(visitor.session_id()),
        customer_id: Some(visitor.customer_id.clone()),
        channel: WEB.to_string(),
        scenario: None,
        now: parse_now(req.now.as_deref())?,
        origin: None,
    };
    let turn = turn::answer(&engine, &state.store, &state.in_flight, &state.settings.turns, message, started).await?;
    Ok(Json(match turn {
        Turn::Answered(turn) => {
            let options = super::clarify_options(&engine, &turn.outcome);
            let outcome = turn.outcome;
            ChatReply {
                decision: outcome.action.as_str(),
                answer: outcome.answer,
                trace_id: Some(turn.trace_id),
                options,
                ticket_id: turn.handoff.as_ref().map(|h| h.ticket_id.clone()),
                reason: turn.handoff.as_ref().map(|h| h.reason.as_str()),
                agent: None,
                lang: outcome.lang,
            }
        }
        Turn::Forwarded(forwarded) => ChatReply {
            decision: crate::policy::Action::Handoff.as_str(),
            answer: None,
            trace_id: None,
            options: Vec::new(),
            ticket_id: Some(forwarded.ticket.id),
            reason: Some(crate::tickets::AGENT_ACTIVE_REASON),
            agent: Some(forwarded.ticket.assignee),
            lang: forwarded.lang,
        },
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RatingRequest {
    trace_id: String,
    useful: bool,
    comment: Option<String>,
}

/// `POST /v1/widget/feedback {"trace_id", "useful"}`: 有用 / 没用 on one of the visitor's own answers.
async fn feedback(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: RatingRequest = parse_json(body)?;
    let owner = state.store.turn_owner(&req.trace_id).await?;
    // Someone else's turn is as unknown as a turn that does not exist.
    if owner.and_then(|(customer, _)| customer).as_deref() != Some(visitor.customer_id.as_str()) {
        return Err(StoreError::UnknownTrace(req.trace_id).into());
    }
    let id = state.store.add_feedback(&req.trace_id, req.useful, req.comment.as_deref(), chrono::Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id, "stored": true}))))
}

#[derive(Debug, Deserialize)]
struct StreamQuery {
    /// Replay agents' messages after this cursor (or the `Last-Event-ID` header).
    after: Option<i64>,
    /// The identity, for `EventSource`, which cannot send headers.
    #[serde(rename = "visitor")]
    _visitor: Option<String>,
    #[serde(rename = "customer_token")]
    _customer_token: Option<String>,
}

/// `GET /v1/widget/events?visitor=&customer_token=&after=`: agents' replies as server-sent `message` events.
async fn agent_replies(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let after = match events::resume_cursor(&headers, q.after) {
        Some(after) => after,
        None => state.store.latest_message_seq().await?,
    };
    let store = state.store.clone();
    let customer = visitor.customer_id;
    Ok(events::follow(&state.store, "message", after, move |after| {
        let (store, customer) = (store.clone(), customer.clone());
        async move {
            let messages = store.agent_messages_after(Some(&customer), None, after, events::PAGE).await?;
            Ok(messages.into_iter().map(|m| (m.seq, m)).collect())
        }
    }))
}
