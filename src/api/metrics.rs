//! `GET /metrics`: Prometheus's text exposition of [`crate::telemetry`], and
//! the layer that counts and times every routed request.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::access::{Access, Routes};
use super::{ApiError, AppState};
use crate::telemetry;

pub(super) fn routes() -> Routes {
    Routes::new().get("/metrics", Access::Public, render)
}

/// Counts the request by method, route template and status, and times it.
pub(super) async fn record(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    // NOTE: the template ("/v1/tickets/{id}"), never the path: labels stay bounded and hold no ids.
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_default();
    let response = next.run(request).await;
    telemetry::http_request(&method, &route, response.status().as_u16(), started.elapsed());
    response
}

/// The exposition, with the figures read at scrape time (ticket load, model) brought up to date.
async fn render(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let exporter = telemetry::exporter().ok_or_else(|| ApiError::not_found("metrics are off (api.metrics = false)"))?;
    let loads = state.store.queue_load(Utc::now()).await?;
    telemetry::tickets(&loads.iter().map(|l| (l.queue.as_str(), l.open, l.overdue)).collect::<Vec<_>>());
    if let Some(engine) = state.engine() {
        telemetry::model(engine.version(), &engine.fingerprint());
    }
    let body = exporter.render();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response())
}
