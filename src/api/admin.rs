//! Admin routes of the learning loop: retrain behind the eval gate, reload
//! the current version, roll back, and say which version is served. Also the
//! engine swap they share, and the watcher that follows the version pointer
//! (so `kefu rollback` on the command line reaches a running server).
//!
//! NOTE: these routes sit outside the request timeout: a retrain runs for
//! minutes. Only one retrain, reload or rollback runs at a time (409 otherwise).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::Request;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::OwnedMutexGuard;

use super::{parse_json, ApiError, AppState};
use crate::engine::Engine;
use crate::learning::versions::{VersionError, VersionReport, BASE_VERSION};
use crate::learning::{self, TrainError, Trainer};

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
async fn require_admin_token(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Result<Response, ApiError> {
    if let Some(token) = &state.settings.admin_token {
        let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "admin routes need Authorization: Bearer <admin token>"));
        }
    }
    Ok(next.run(request).await)
}

impl From<TrainError> for ApiError {
    fn from(e: TrainError) -> Self {
        match e {
            TrainError::Version(VersionError::NothingToRollBack) => ApiError::new(StatusCode::CONFLICT, "nothing_to_roll_back", e.to_string()),
            TrainError::Version(VersionError::NoSuchVersion(_)) => ApiError::new(StatusCode::CONFLICT, "no_such_version", e.to_string()),
            TrainError::Engine(engine) => engine.into(),
            other => {
                tracing::error!(error = %other, "learning loop failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
            }
        }
    }
}

fn trainer(state: &AppState) -> Result<Arc<Trainer>, ApiError> {
    state.trainer().ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the learning loop is not set up yet"))
}

fn exclusive(state: &AppState) -> Result<OwnedMutexGuard<()>, ApiError> {
    state
        .learning
        .clone()
        .try_lock_owned()
        .map_err(|_| ApiError::new(StatusCode::CONFLICT, "learning_busy", "a retrain, reload or rollback is already running"))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetrainRequest {
    /// Overrides the configured gate tolerance for this retrain.
    tolerance: Option<f64>,
}

async fn retrain(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Result<Json<VersionReport>, ApiError> {
    let req: RetrainRequest = match &body {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => RetrainRequest::default(),
        _ => parse_json(body)?,
    };
    if let Some(t) = req.tolerance {
        if !(t.is_finite() && (0.0..=1.0).contains(&t)) {
            return Err(ApiError::bad_request("invalid_tolerance", "tolerance must be a number within 0..1"));
        }
    }
    let trainer = trainer(&state)?;
    let guard = exclusive(&state)?;
    // NOTE: the work runs in its own task, so a client that hangs up does not
    // abandon a retrain half-way (between saving a version and serving it).
    let task = tokio::spawn(async move {
        let _guard = guard;
        let retrained = trainer.retrain(&state.store, req.tolerance, false).await?;
        if let Some(engine) = retrained.engine {
            install(&state, &trainer, engine).await?;
        }
        Ok::<_, TrainError>(retrained.report)
    });
    let report = task.await.map_err(|e| TrainError::Task(e.to_string()))??;
    Ok(Json(report))
}

async fn reload(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let trainer = trainer(&state)?;
    let _guard = exclusive(&state)?;
    let changed = reload_current(&state, &trainer).await?;
    Ok(Json(json!({"version": served_version(&state), "changed": changed})))
}

async fn rollback(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let trainer = trainer(&state)?;
    let _guard = exclusive(&state)?;
    let t = trainer.clone();
    let rolled = tokio::task::spawn_blocking(move || t.versions().rollback(Utc::now())).await.map_err(TrainError::from)?.map_err(TrainError::from)?;
    reload_current(&state, &trainer).await?;
    Ok(Json(json!({"from": rolled.from, "to": rolled.to, "version": served_version(&state)})))
}

async fn version(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let engine = state.engine().ok_or_else(ApiError::not_ready)?;
    let report = match (engine.version(), state.trainer()) {
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
    let trainer = trainer(&state)?;
    let t = trainer.clone();
    let (reports, current) = tokio::task::spawn_blocking(move || Ok::<_, VersionError>((t.versions().list()?, t.versions().current().ok().flatten())))
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
    Ok(Json(json!({"served": served_version(&state), "current": current, "versions": list})))
}

fn served_version(state: &AppState) -> Option<String> {
    state.engine().map(|e| e.version().to_string())
}

/// Puts `engine` in service: enterprise systems attached, warmed up, every
/// correction taught, then swapped in. Requests in flight finish on the engine
/// they started with (they hold its `Arc`), so none is dropped or failed.
pub async fn install(state: &AppState, trainer: &Trainer, engine: Engine) -> Result<(), TrainError> {
    let engine = trainer.for_serving(engine);
    engine.warm_up().await?;
    if let Some(old) = state.engine() {
        // Already embedded: no need to ask the encoder again.
        engine.teach_vectors(old.taught())?;
    }
    learning::sync_corrections(&engine, &state.store).await?;
    let engine = Arc::new(engine);
    state.set_engine(engine.clone());
    // A correction stored while the swap ran was taught to the old engine only.
    learning::sync_corrections(&engine, &state.store).await?;
    tracing::info!(version = engine.version(), corrections_live = engine.taught_count(), "serving model version");
    Ok(())
}

/// Serves the version the pointer names, if that is not the one served;
/// true when the engine changed.
pub async fn reload_current(state: &AppState, trainer: &Arc<Trainer>) -> Result<bool, TrainError> {
    let pointer = trainer.versions().current().ok().flatten().unwrap_or_else(|| BASE_VERSION.to_string());
    if served_version(state).as_deref() == Some(pointer.as_str()) {
        return Ok(false);
    }
    let t = trainer.clone();
    let engine = tokio::task::spawn_blocking(move || t.current_engine(false)).await??;
    if served_version(state).as_deref() == Some(engine.version()) {
        return Ok(false);
    }
    install(state, trainer, engine).await?;
    Ok(true)
}

/// Follows the version pointer every `every`: when another process (`kefu
/// rollback`, `kefu retrain`) moves it, the server swaps to that version.
pub async fn follow_current_version(state: Arc<AppState>, every: Duration) {
    let mut last_seen: Option<Option<String>> = None;
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(trainer) = state.trainer() else { continue };
        let pointer = match trainer.versions().current() {
            Ok(p) => p,
            Err(err) => {
                tracing::debug!(error = %err, "cannot read the version pointer");
                continue;
            }
        };
        if last_seen.as_ref() == Some(&pointer) {
            continue;
        }
        // Busy (a retrain or rollback is running): look again next time.
        let Ok(_guard) = state.learning.clone().try_lock_owned() else { continue };
        let named = pointer.as_deref().unwrap_or(BASE_VERSION);
        match reload_current(&state, &trainer).await {
            Ok(true) => tracing::info!(version = named, "followed the version pointer"),
            Ok(false) => {}
            Err(err) => tracing::error!(version = named, error = %err, "cannot serve the version the pointer names; keeping the current one"),
        }
        last_seen = Some(pointer);
    }
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
