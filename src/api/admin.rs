//! Admin routes of the learning loop: retrain behind the eval gate, reload
//! the current version, roll back, and say which version is served. The
//! swaps themselves are [`crate::service::live`]'s.
//!
//! NOTE: these routes sit outside the request timeout: a retrain runs for
//! minutes. Only one retrain, reload or rollback runs at a time (409 otherwise).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::Request;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{parse_json, ApiError, AppState};
use crate::engine::BASE_VERSION;
use crate::learning::versions::{VersionError, VersionReport};
use crate::learning::TrainError;
use crate::service::live::LiveError;

/// Largest admin request body: a few settings.
const MAX_ADMIN_BODY: usize = 4096;

pub(super) fn routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/admin/retrain", post(retrain))
        .route("/v1/admin/reload", post(reload))
        .route("/v1/admin/rollback", post(rollback))
        .route("/v1/admin/version", get(version))
        .route("/v1/admin/versions", get(versions))
        .layer(DefaultBodyLimit::max(MAX_ADMIN_BODY))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin_token))
}

/// With `admin_token` set, admin routes need `Authorization: Bearer <token>`.
async fn require_admin_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(token) = &state.settings.admin_token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "admin routes need Authorization: Bearer <admin token>",
            ));
        }
    }
    Ok(next.run(request).await)
}

impl From<LiveError> for ApiError {
    fn from(e: LiveError) -> Self {
        match e {
            LiveError::NotReady => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", e.to_string()),
            LiveError::Busy => ApiError::new(StatusCode::CONFLICT, "learning_busy", e.to_string()),
            LiveError::Learning(e) => e.into(),
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
    let req: RetrainRequest = match &body {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => RetrainRequest::default(),
        _ => parse_json(body)?,
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiSettings;
    use crate::store::Store;
    use tower::ServiceExt;

    async fn status_of(router: &Router, auth: Option<&str>) -> StatusCode {
        let mut request = axum::http::Request::get("/v1/admin/versions");
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        router.clone().oneshot(request.body(axum::body::Body::empty()).unwrap()).await.unwrap().status()
    }

    #[tokio::test]
    async fn admin_routes_need_the_token_when_one_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/kefu.db", dir.path().display())).await.unwrap();
        let state = AppState::new(store, ApiSettings { admin_token: Some("s3cret".into()), ..ApiSettings::default() });
        let router = routes(&state).with_state(state);
        assert_eq!(status_of(&router, None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status_of(&router, Some("Bearer wrong")).await, StatusCode::UNAUTHORIZED);
        // Past the check: no engine is loaded yet, so the route itself answers (not 401).
        assert_ne!(status_of(&router, Some("Bearer s3cret")).await, StatusCode::UNAUTHORIZED);
    }
}
