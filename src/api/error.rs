//! The one place where errors become HTTP statuses. Clients get a JSON body
//! `{"error": {"code", "message"}}`; internal details go to the log only.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Json};
use serde_json::json;

use crate::channels::chatwoot::ChatwootError;
use crate::channels::douyin::DouyinError;
use crate::channels::gateway::GatewayError;
use crate::channels::wechat::WechatError;
use crate::encoder::EncoderError;
use crate::engine::{EngineError, InvalidInput, InvalidKind};
use crate::service::channels::ChannelError;
use crate::service::widget::WidgetError;
use crate::service::ServiceError;
use crate::store::StoreError;
use crate::tickets::UnknownValue;

/// An error as the API reports it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds to wait before retrying, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after: None }
    }

    pub fn retry_after(self, seconds: u64) -> Self {
        ApiError { retry_after: Some(seconds), ..self }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn not_ready() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the model and index are still loading")
    }

    pub fn busy() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "busy", "too many requests in flight; retry shortly").retry_after(1)
    }

    /// The answer to a request the middleware failed: `timed_out` when it hit
    /// its time limit, an internal error otherwise.
    pub fn from_middleware(err: &BoxError, timed_out: &'static str) -> Self {
        if err.is::<tower::timeout::error::Elapsed>() {
            Self::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", timed_out)
        } else {
            Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
        }
    }

    fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        match self.retry_after {
            Some(seconds) => (self.status, [(header::RETRY_AFTER, seconds.to_string())], body).into_response(),
            None => (self.status, body).into_response(),
        }
    }
}

impl From<InvalidInput> for ApiError {
    fn from(e: InvalidInput) -> Self {
        let status = match e.kind {
            InvalidKind::TextTooLong => StatusCode::PAYLOAD_TOO_LARGE,
            InvalidKind::EmptyText | InvalidKind::UnknownScenario => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.kind.code(), e.message)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(invalid) => invalid.into(),
            EngineError::Encoder(EncoderError::Busy) => ApiError::busy(),
            other => ApiError::internal(&other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownTrace(id) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_trace_id", format!("no turn has trace id {id:?}"))
            }
            StoreError::UnknownTicket(id) => ApiError::not_found(format!("no ticket {id:?}")),
            e @ StoreError::InvalidTransition { .. } => {
                ApiError::new(StatusCode::CONFLICT, "invalid_transition", e.to_string())
            }
            e @ StoreError::AlreadyAssigned { .. } => {
                ApiError::new(StatusCode::CONFLICT, "already_assigned", e.to_string())
            }
            other => ApiError::internal(&other),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Engine(e) => e.into(),
            ServiceError::Store(e) => e.into(),
            ServiceError::Busy => ApiError::busy(),
            e @ ServiceError::UnknownIntent(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_intent", e.to_string())
            }
            e @ ServiceError::NoIntent => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "missing_intent", e.to_string())
            }
            e @ ServiceError::UnknownQueue { .. } => ApiError::bad_request("invalid_queue", e.to_string()),
            e @ ServiceError::AboutNobody => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "missing_customer", e.to_string())
            }
            e @ ServiceError::NoAgent => ApiError::bad_request("missing_agent", e.to_string()),
            e @ ServiceError::NotYours(_) => ApiError::new(StatusCode::FORBIDDEN, "not_assigned_to_you", e.to_string()),
            e @ ServiceError::NotRevealable(_) => ApiError::bad_request("invalid_field", e.to_string()),
            e @ ServiceError::InvalidReply(_) => ApiError::bad_request("invalid_reply", e.to_string()),
            e @ ServiceError::TicketClosed(_) => ApiError::new(StatusCode::CONFLICT, "ticket_closed", e.to_string()),
            ServiceError::Widget(e) => e.into(),
            ServiceError::Loading => ApiError::not_ready(),
            ServiceError::Channel(e) => e.into(),
            e @ ServiceError::Platform(_) => ApiError::new(StatusCode::BAD_GATEWAY, "platform_failed", e.to_string()),
        }
    }
}

/// A field that names no value of its kind (status, priority, decision).
impl From<UnknownValue> for ApiError {
    fn from(e: UnknownValue) -> Self {
        let code = match e.what {
            "status" => "invalid_status",
            "priority" => "invalid_priority",
            _ => "invalid_field",
        };
        ApiError::bad_request(code, e.to_string())
    }
}

impl From<WidgetError> for ApiError {
    fn from(e: WidgetError) -> Self {
        let code = match e {
            WidgetError::BadVisitor => "bad_visitor",
            WidgetError::BadCustomerToken(_) | WidgetError::NoCustomerTokens => "bad_customer_token",
            WidgetError::ExpiredCustomerToken => "expired_customer_token",
        };
        ApiError::new(StatusCode::UNAUTHORIZED, code, e.to_string())
    }
}

/// A platform callback refused: unknown account 404, bad signature or
/// replayed timestamp 403, anything that is not the platform's message 400.
impl From<ChannelError> for ApiError {
    fn from(e: ChannelError) -> Self {
        match &e {
            ChannelError::UnknownAccount { .. } => ApiError::not_found(e.to_string()),
            ChannelError::Wechat(WechatError::BadSignature | WechatError::StaleTimestamp) => {
                ApiError::new(StatusCode::FORBIDDEN, "bad_signature", e.to_string())
            }
            ChannelError::Wechat(WechatError::BadXml(_) | WechatError::Crypto(_) | WechatError::NotInSafeMode) => {
                ApiError::bad_request("bad_message", e.to_string())
            }
            ChannelError::Gateway(GatewayError::BadSignature | GatewayError::StaleTimestamp) => {
                ApiError::new(StatusCode::FORBIDDEN, "bad_signature", e.to_string())
            }
            ChannelError::Gateway(GatewayError::BadMessage(_)) => ApiError::bad_request("bad_message", e.to_string()),
            ChannelError::Douyin(DouyinError::BadSignature) => {
                ApiError::new(StatusCode::FORBIDDEN, "bad_signature", e.to_string())
            }
            ChannelError::Douyin(DouyinError::BadEvent(_)) => ApiError::bad_request("bad_message", e.to_string()),
            ChannelError::Chatwoot(ChatwootError::BadSignature | ChatwootError::StaleTimestamp) => {
                ApiError::new(StatusCode::FORBIDDEN, "bad_signature", e.to_string())
            }
            ChannelError::Chatwoot(ChatwootError::BadEvent(_)) => ApiError::bad_request("bad_message", e.to_string()),
        }
    }
}
