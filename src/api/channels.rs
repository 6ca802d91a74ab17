//! Messaging platforms' callbacks (`/v1/channels/<platform>/{account}`) and the
//! customers' platform identities. A callback is authenticated by the
//! platform's signature, which the channel service checks before it reads
//! anything else; it never needs an API key.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::{Access, Routes};
use super::{check_id, parse_json, ApiError, AppState};
use crate::access::{Caller, Role};
use crate::channels::wechat::CallbackQuery;
use crate::channels::ReplyRoute;
use crate::channels::{chatwoot, douyin, gateway};
use crate::service::channels::{Accepted, ChatwootOutcome, WECHAT_SUCCESS};

pub(super) fn routes() -> Routes {
    let agent = Access::Role(Role::Agent);
    Routes::new()
        .get("/v1/channels/wechat/{account}", Access::Platform, wechat_verify)
        .post("/v1/channels/wechat/{account}", Access::Platform, wechat_message)
        .get("/v1/channels/wecom/{account}", Access::Platform, wecom_verify)
        .post("/v1/channels/wecom/{account}", Access::Platform, wecom_event)
        .post("/v1/channels/douyin/{account}", Access::Platform, douyin_event)
        .post("/v1/channels/gateway/{account}", Access::Platform, gateway_message)
        .post("/v1/channels/chatwoot/{account}", Access::Platform, chatwoot_event)
        .get("/v1/customers/{id}", agent, customer)
        .post("/v1/customers/{id}/identities", agent, link_identity)
}

/// A platform's plain-text answer (an echo, `success`).
fn plain_text(text: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

fn callback_query(query: Result<Query<CallbackQuery>, QueryRejection>) -> Result<CallbackQuery, ApiError> {
    query.map(|Query(q)| q).map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

/// `GET`: WeChat checks the URL; the `echostr` goes back as it came.
async fn wechat_verify(
    State(state): State<Arc<AppState>>,
    Path(account): Path<String>,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    Ok(plain_text(state.channels.wechat_verify(&account, &callback_query(query)?)?))
}

/// `POST`: a customer's message or action; the answer is a passive reply
/// (sealed in safe mode) or `success` when the reply comes later.
async fn wechat_message(
    State(state): State<Arc<AppState>>,
    Path(account): Path<String>,
    query: Result<Query<CallbackQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let query = callback_query(query)?;
    let body = utf8_body(body)?;
    let reply = state.channels.wechat_message(&account, &query, &body).await?;
    if reply == WECHAT_SUCCESS {
        return Ok(plain_text(reply));
    }
    Ok(([(header::CONTENT_TYPE, "application/xml; charset=utf-8")], reply).into_response())
}

/// `GET`: WeCom checks the URL; the `echostr` goes back decrypted.
async fn wecom_verify(
    State(state): State<Arc<AppState>>,
    Path(account): Path<String>,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    Ok(plain_text(state.channels.wecom_verify(&account, &callback_query(query)?)?))
}

/// `POST`: WeCom's doorbell; kefu pulls the messages and answers `success` at once.
async fn wecom_event(
    State(state): State<Arc<AppState>>,
    Path(account): Path<String>,
    query: Result<Query<CallbackQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let query = callback_query(query)?;
    let body = utf8_body(body)?;
    Ok(plain_text(state.channels.wecom_event(&account, &query, &body).await?))
}

/// `POST`: a signed message from the company's own app or a bridge; 200
/// `{"status": "answered" | "duplicate"}`, the reply posted to the callback URL.
async fn gateway_message(
    State(state): State<Arc<AppState>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let body = body.map_err(|e| ApiError::new(e.status(), "bad_body", e.body_text()))?;
    let accepted = state
        .channels
        .gateway_message(&account, &header(gateway::TIMESTAMP_HEADER), &header(gateway::SIGNATURE_HEADER), &body)
        .await?;
    let status = match accepted {
        Accepted::Answered => "answered",
        Accepted::Duplicate => "duplicate",
    };
    Ok(Json(json!({"status": status})))
}

/// `POST`: a Douyin webhook (signed with the client secret); the challenge
/// answered, messages and comments acknowledged at once and answered later.
async fn douyin_event(
    State(state): State<Arc<AppState>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = body.map_err(|e| ApiError::new(e.status(), "bad_body", e.body_text()))?;
    let signature = header(douyin::SIGNATURE_HEADER).unwrap_or_default();
    let delivery = header(douyin::MESSAGE_ID_HEADER);
    Ok(Json(state.channels.douyin_event(&account, &signature, delivery.as_deref(), &body).await?))
}

/// `POST`: a Chatwoot agent-bot event (signed when the account has a
/// secret); 200 at once with `{"status": "accepted" | "duplicate" |
/// "ignored"}`, the reply posted through Chatwoot's API afterwards.
async fn chatwoot_event(
    State(state): State<Arc<AppState>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let body = body.map_err(|e| ApiError::new(e.status(), "bad_body", e.body_text()))?;
    let (timestamp, signature) = (header(chatwoot::TIMESTAMP_HEADER), header(chatwoot::SIGNATURE_HEADER));
    let outcome = state.channels.chatwoot_event(&account, timestamp, signature, &body).await?;
    Ok(Json(match outcome {
        ChatwootOutcome::Accepted => json!({"status": "accepted"}),
        ChatwootOutcome::Duplicate => json!({"status": "duplicate"}),
        ChatwootOutcome::Ignored(why) => json!({"status": "ignored", "reason": why}),
    }))
}

/// A callback's body as text: too large 413, not UTF-8 400.
fn utf8_body(body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), "bad_body", e.body_text()))?;
    String::from_utf8(body.to_vec()).map_err(|_| ApiError::bad_request("bad_message", "the body is not UTF-8"))
}

/// `GET /v1/customers/{id}`: the customer and their identities on messaging platforms.
async fn customer(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_id("customer_id", &Some(id.clone()))?;
    let identities = crate::service::channels::identities(&state.store, &id, &caller).await?;
    Ok(Json(json!({"customer_id": id, "identities": identities})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    channel: String,
    account: String,
    external_id: String,
}

/// `POST /v1/customers/{id}/identities {"channel", "account", "external_id"}`:
/// this platform identity is this customer from now on; the history kefu kept
/// for the identity alone merges into the customer's.
async fn link_identity(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: LinkRequest = parse_json(body)?;
    for (field, value) in
        [("customer_id", &id), ("channel", &req.channel), ("account", &req.account), ("external_id", &req.external_id)]
    {
        check_id(field, &Some(value.clone()))?;
    }
    let route = ReplyRoute::new(&req.channel, &req.account, &req.external_id);
    let linked = crate::service::channels::link_identity(&state.store, &route, &id, &caller).await?;
    Ok(Json(json!({"customer_id": id, "previous_customer_id": linked.previous, "merged": linked.merged})))
}
