//! Admin routes of the learning loop: retrain behind the eval gate, reload
//! the current version, roll back, and say which version is served. The
//! swaps themselves are [`crate::service::live`]'s.
//!
//! NOTE: these routes sit outside the request timeout: a retrain runs for
//! minutes. Only one retrain, reload or rollback runs at a time (409 otherwise).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::{Access, Routes};
use super::{parse_json_or_default, ApiError, AppState};
use crate::access::Role;
use crate::engine::BASE_VERSION;
use crate::learning::versions::{VersionError, VersionReport};
use crate::learning::TrainError;
use crate::service::live::LiveError;

/// Largest admin request body: a few settings.
const MAX_ADMIN_BODY: usize = 4096;

pub(super) fn routes() -> Routes {
    let admin = Access::Role(Role::Admin);
    Routes::new()
        .post("/v1/admin/retrain", admin, retrain)
        .post("/v1/admin/reload", admin, reload)
        .post("/v1/admin/rollback", admin, rollback)
        .get("/v1/admin/version", admin, version)
        .get("/v1/admin/versions", admin, versions)
        .wrap(|router| router.layer(DefaultBodyLimit::max(MAX_ADMIN_BODY)))
}

impl From<LiveError> for ApiError {
    fn from(e: LiveError) -> Self {
        match e {
            LiveError::NotReady => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", e.to_string()),
            LiveError::Busy => ApiError::new(StatusCode::CONFLICT, "learning_busy", e.to_string()),
            LiveError::Learning(e) => e.into(),
            LiveError::Store(e) => e.into(),
        }
    }
}

impl From<TrainError> for ApiError {
    fn from(e: TrainError) -> Self {
        match e {
            TrainError::Version(VersionError::NothingToRollBack) => {
                ApiError::new(StatusCode::CONFLICT, "nothing_to_roll_back", e.to_string())
            }
            TrainError::Version(VersionError::NoSuchVersion(_)) => {
                ApiError::new(StatusCode::CONFLICT, "no_such_version", e.to_string())
            }
            TrainError::Engine(engine) => engine.into(),
            other => {
                tracing::error!(error = %other, "learning loop failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetrainRequest {
    /// Overrides the configured gate tolerance for this retrain.
    tolerance: Option<f64>,
}

async fn retrain(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<VersionReport>, ApiError> {
    let req: RetrainRequest = parse_json_or_default(body)?;
    if let Some(t) = req.tolerance {
        if !(t.is_finite() && (0.0..=1.0).contains(&t)) {
            return Err(ApiError::bad_request("invalid_tolerance", "tolerance must be a number within 0..1"));
        }
    }
    let report = state.live.clone().retrain(state.store.clone(), req.tolerance).await?;
    Ok(Json(report))
}

async fn reload(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let changed = state.live.reload(&state.store).await?;
    Ok(Json(json!({"version": state.live.version(), "changed": changed})))
}

async fn rollback(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let rolled = state.live.rollback(&state.store).await?;
    Ok(Json(json!({"from": rolled.from, "to": rolled.to, "version": state.live.version()})))
}

async fn version(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let engine = state.engine().ok_or_else(ApiError::not_ready)?;
    let report = match (engine.version(), state.live.trainer()) {
        (BASE_VERSION, _) | (_, None) => None,
        (id, Some(trainer)) => trainer.versions().report(id).ok(),
    };
    Ok(Json(json!({
        "version": engine.version(),
        "exemplars": engine.model().exemplars(),
        "corrections_live": engine.taught_count(),
        "created_at": report.as_ref().map(|r| r.created_at),
        "promoted_at": report.as_ref().and_then(|r| r.promoted_at),
        "gate": report.as_ref().map(|r| r.gate.reason.clone()),
    })))
}

async fn versions(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let t = state.live.trainer().ok_or(LiveError::NotReady)?;
    let (reports, current) = tokio::task::spawn_blocking(move || {
        Ok::<_, VersionError>((t.versions().list()?, t.versions().current().ok().flatten()))
    })
    .await
    .map_err(TrainError::from)?
    .map_err(TrainError::from)?;
    let list: Vec<Value> = reports
        .iter()
        .rev()
        .map(|r| {
            json!({
                "version": r.version,
                "status": r.status,
                "current": current.as_deref() == Some(r.version.as_str()),
                "created_at": r.created_at,
                "promoted_at": r.promoted_at,
                "rolled_back_at": r.rolled_back_at,
                "baseline_version": r.baseline_version,
                "gate": r.gate.reason,
                "candidate": r.candidate,
            })
        })
        .collect();
    Ok(Json(json!({"served": state.live.version(), "current": current, "versions": list})))
}
