//! The agent workspace's own routes: replying to the customer, handing a
//! conversation back to the bot, the live feed of ticket changes, and the
//! intents an agent picks from when the bot did not understand.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::{Access, Routes};
use super::{events, parse_json, ApiError, AppState};
use crate::access::{Caller, Role};
use crate::service::workspace::{self, SentReply};
use crate::store::Ticket;

pub(super) fn routes() -> Routes {
    let agent = Access::Role(Role::Agent);
    Routes::new()
        .post("/v1/tickets/{id}/messages", agent, send_message)
        .post("/v1/tickets/{id}/release", agent, release)
        .get("/v1/intents", agent, intents)
}

/// Routes that stream: outside the request timeout.
pub(super) fn streams() -> Routes {
    Routes::new().get("/v1/events", Access::Role(Role::Agent), feed)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageRequest {
    text: String,
}

/// `POST /v1/tickets/{id}/messages {"text"}`: the reply goes to the customer
/// on the channel of their latest message; 202 with its delivery.
async fn send_message(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<SentReply>), ApiError> {
    let req: MessageRequest = parse_json(body)?;
    let sent = workspace::reply(&state.store, &state.channels, &id, &req.text, &caller).await?;
    Ok((StatusCode::ACCEPTED, Json(sent)))
}

/// `POST /v1/tickets/{id}/release`: the bot answers the customer again; the ticket waits in its queue.
async fn release(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Ticket>, ApiError> {
    Ok(Json(workspace::release(&state.store, &id, &caller).await?))
}

/// `GET /v1/intents`: every intent with its titles, for the correction picker.
async fn intents(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let engine = state.engine().ok_or_else(ApiError::not_ready)?;
    let intents: Vec<Value> = engine
        .corpus()
        .intents
        .iter()
        .map(|i| json!({"id": i.id, "scenario": i.scenario, "title_zh": i.title_zh, "title_en": i.title_en}))
        .collect();
    Ok(Json(json!({"intents": intents, "out_of_scope": crate::corpus::OOS})))
}

#[derive(Debug, Deserialize)]
struct FeedQuery {
    /// Replay changes after this sequence number (or the `Last-Event-ID` header).
    after: Option<i64>,
}

/// `GET /v1/events`: ticket changes as server-sent `ticket` events, live.
async fn feed(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let after = match events::resume_cursor(&headers, q.after) {
        Some(after) => after,
        None => state.store.latest_feed_seq().await?,
    };
    let store = state.store.clone();
    Ok(events::follow(&state.store, "ticket", after, move |after| {
        let store = store.clone();
        async move { Ok(store.feed_after(after, events::PAGE).await?.into_iter().map(|e| (e.seq, e)).collect()) }
    }))
}
