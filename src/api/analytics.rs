//! Analytics endpoints for the weekly review: `GET /v1/stats`,
//! `GET /v1/stats/export` (CSV or JSON) and `GET /v1/optimise`, the queue of
//! answers marked not useful. Figures come from the store, question grouping
//! from the engine's encoder (through `Engine::embed_queries`), the rest from
//! [`crate::analytics`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{BoxError, Json, Router};
use chrono::Utc;
use serde::Deserialize;
use tower::ServiceBuilder;

use super::{check_id, ApiError, AppState};
use crate::analytics::{self as report, OptimiseFilter, OptimiseQueue, Period, PeriodError, StatsReport, StatsSettings};
use crate::engine::{Engine, EngineError};

/// Most question groups a caller may ask for.
const MAX_TOP: usize = 200;

/// The analytics routes, with their own time limit.
///
/// NOTE: merged outside the API's request timeout: grouping a week's
/// questions embeds up to `max_questions` texts, which takes longer than a
/// customer's answer may.
pub(super) fn routes(settings: &StatsSettings) -> Router<Arc<AppState>> {
    Router::new().route("/v1/stats", get(get_stats)).route("/v1/stats/export", get(export_stats)).route("/v1/optimise", get(get_optimise)).layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|err: BoxError| async move { ApiError::from_middleware(&err, "the report took too long; try a shorter period") }))
            .timeout(settings.timeout),
    )
}

impl From<PeriodError> for ApiError {
    fn from(e: PeriodError) -> Self {
        ApiError::bad_request("invalid_period", e.to_string())
    }
}

/// Embeddings of the question texts of earlier reports, so that asking again
/// (another channel, the export after the JSON) only embeds what is new.
/// They belong to one engine: a swapped engine (a new model version) starts afresh.
#[derive(Default)]
pub(super) struct QuestionVectors {
    cached: Mutex<CachedVectors>,
}

#[derive(Default)]
struct CachedVectors {
    /// NOTE: a `Weak` keeps the engine's allocation, so its address cannot be
    /// reused by a later engine while this is held: the pointer comparison is sound.
    engine: Weak<Engine>,
    vectors: HashMap<String, Vec<f32>>,
}

impl QuestionVectors {
    /// The embeddings of `texts`, in order; those not cached are embedded by `engine`.
    /// Keeps at most a few reports' worth (`4 * max_questions` texts).
    async fn embed(&self, engine: &Arc<Engine>, texts: &[String], max_questions: usize) -> Result<Vec<Vec<f32>>, EngineError> {
        let mut known: HashMap<String, Vec<f32>> = HashMap::new();
        let mut missing: Vec<String> = Vec::new();
        {
            let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
            if !Weak::ptr_eq(&cached.engine, &Arc::downgrade(engine)) {
                *cached = CachedVectors { engine: Arc::downgrade(engine), vectors: HashMap::new() };
            }
            for text in texts {
                match cached.vectors.get(text) {
                    Some(v) => drop(known.insert(text.clone(), v.clone())),
                    None => missing.push(text.clone()),
                }
            }
        }
        let fresh = engine.embed_queries(&missing).await?;
        known.extend(missing.into_iter().zip(fresh));
        let vectors: Vec<Vec<f32>> = texts.iter().map(|t| known.get(t).cloned().unwrap_or_default()).collect();
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        // Another request may have swapped in a newer engine meanwhile; then these are stale.
        if Weak::ptr_eq(&cached.engine, &Arc::downgrade(engine)) {
            if cached.vectors.len() + known.len() > 4 * max_questions.max(1) {
                cached.vectors.clear();
            }
            cached.vectors.extend(known);
        }
        Ok(vectors)
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct StatsQuery {
    from: Option<String>,
    to: Option<String>,
    channel: Option<String>,
    /// Question groups to list (default 20).
    top: Option<usize>,
    /// Export only: csv (default) or json.
    format: Option<String>,
}

fn read_query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(q)| q).map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|s| !s.is_empty())
}

/// The report of the period the query names.
async fn report(state: &AppState, q: StatsQuery) -> Result<StatsReport, ApiError> {
    let channel = non_empty(q.channel);
    check_id("channel", &channel)?;
    let top = q.top.unwrap_or(report::DEFAULT_TOP_QUESTIONS);
    if !(1..=MAX_TOP).contains(&top) {
        return Err(ApiError::bad_request("invalid_query", format!("top must be between 1 and {MAX_TOP}")));
    }
    let settings = &state.settings.stats;
    let period = Period::parse(q.from.as_deref(), q.to.as_deref(), settings.timezone, Utc::now())?;
    // NOTE: checked before the store work: grouping questions needs the encoder.
    let engine = state.engine().ok_or_else(ApiError::not_ready)?;
    let data = state.store.stats_data(period, channel.as_deref(), settings.max_questions).await?;
    let vectors = state.question_vectors.embed(&engine, &report::questions_to_embed(&data), settings.max_questions).await?;
    Ok(report::build_report(period, channel.as_deref(), &data, &vectors, settings, top))
}

/// `GET /v1/stats?from=&to=&channel=&top=`: the weekly review's figures.
pub(super) async fn get_stats(State(state): State<Arc<AppState>>, query: Result<Query<StatsQuery>, QueryRejection>) -> Result<Json<StatsReport>, ApiError> {
    let q = read_query(query)?;
    if q.format.is_some() {
        return Err(ApiError::bad_request("invalid_query", "format applies to /v1/stats/export only"));
    }
    Ok(Json(report(&state, q).await?))
}

/// `GET /v1/stats/export?format=csv|json&from=&to=&channel=`: the same report as a download.
pub(super) async fn export_stats(State(state): State<Arc<AppState>>, query: Result<Query<StatsQuery>, QueryRejection>) -> Result<Response, ApiError> {
    let mut q = read_query(query)?;
    let format = non_empty(q.format.take()).unwrap_or_else(|| "csv".into());
    if format != "csv" && format != "json" {
        return Err(ApiError::bad_request("invalid_format", "format must be csv or json"));
    }
    let report = report(&state, q).await?;
    let day = |stamp: &str| stamp.get(..10).unwrap_or_default().to_string();
    let filename = format!("kefu-stats-{}-{}.{format}", day(&report.from), day(&report.to));
    let disposition = format!("attachment; filename=\"{filename}\"");
    if format == "json" {
        return Ok(([(header::CONTENT_DISPOSITION, disposition)], Json(report)).into_response());
    }
    let mut body = Vec::new();
    report::write_csv(&report, &mut body).map_err(|e| {
        tracing::error!(error = %e, "cannot write the stats CSV");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
    })?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, disposition)], body).into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct OptimiseQuery {
    intent: Option<String>,
    channel: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `GET /v1/optimise?intent=&channel=&from=&to=`: answers marked not useful
/// that no agent has corrected yet, per intent, most reported first. The
/// bounds apply to when the verdicts were given; without them the whole queue.
pub(super) async fn get_optimise(
    State(state): State<Arc<AppState>>,
    query: Result<Query<OptimiseQuery>, QueryRejection>,
) -> Result<Json<OptimiseQueue>, ApiError> {
    let q = read_query(query)?;
    let (intent, channel) = (non_empty(q.intent), non_empty(q.channel));
    check_id("intent", &intent)?;
    check_id("channel", &channel)?;
    let bounds = Period::parse_open(q.from.as_deref(), q.to.as_deref(), state.settings.stats.timezone)?;
    let reports = state.store.not_useful_reports(&OptimiseFilter { intent, channel, from: bounds.from, to: bounds.to }).await?;
    Ok(Json(report::optimise_queue(reports)))
}
