//! Analytics endpoints for the weekly review: `GET /v1/stats`,
//! `GET /v1/stats/export` (CSV or JSON) and `GET /v1/optimise`, the queue of
//! answers marked not useful. The report is [`crate::service::analytics`]'s,
//! the same the CLI's `kefu stats` prints.

use std::sync::Arc;

use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Json};
use chrono::Utc;
use serde::Deserialize;
use tower::ServiceBuilder;

use super::access::{Access, Routes};
use super::{check_id, ApiError, AppState};
use crate::access::Role;
use crate::analytics::{
    self as report, OptimiseFilter, OptimiseQueue, Period, PeriodError, StatsReport, StatsSettings,
};
use crate::service::analytics;

/// Most question groups a caller may ask for.
const MAX_TOP: usize = 200;

/// The analytics routes, with their own time limit.
///
/// NOTE: merged outside the API's request timeout: grouping a week's
/// questions embeds up to `max_questions` texts, which takes longer than a
/// customer's answer may.
pub(super) fn routes(settings: &StatsSettings) -> Routes {
    let agent = Access::Role(Role::Agent);
    let timeout = settings.timeout;
    Routes::new()
        .get("/v1/stats", agent, get_stats)
        .get("/v1/stats/export", agent, export_stats)
        .get("/v1/optimise", agent, get_optimise)
        .wrap(move |router| {
            router.layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(|err: BoxError| async move {
                        ApiError::from_middleware(&err, "the report took too long; try a shorter period")
                    }))
                    .timeout(timeout),
            )
        })
}

impl From<PeriodError> for ApiError {
    fn from(e: PeriodError) -> Self {
        ApiError::bad_request("invalid_period", e.to_string())
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
    let embed = async |texts: &[String]| state.question_vectors.embed(&engine, texts, settings.max_questions).await;
    let taxonomy = &engine.corpus().taxonomy;
    Ok(analytics::report(&state.store, settings, period, channel.as_deref(), top, taxonomy, embed).await?)
}

/// `GET /v1/stats?from=&to=&channel=&top=`: the weekly review's figures.
pub(super) async fn get_stats(
    State(state): State<Arc<AppState>>,
    query: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Json<StatsReport>, ApiError> {
    let q = read_query(query)?;
    if q.format.is_some() {
        return Err(ApiError::bad_request("invalid_query", "format applies to /v1/stats/export only"));
    }
    Ok(Json(report(&state, q).await?))
}

/// `GET /v1/stats/export?format=csv|json&from=&to=&channel=`: the same report as a download.
pub(super) async fn export_stats(
    State(state): State<Arc<AppState>>,
    query: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
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
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, disposition)],
        body,
    )
        .into_response())
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
    let reports =
        state.store.not_useful_reports(&OptimiseFilter { intent, channel, from: bounds.from, to: bounds.to }).await?;
    Ok(Json(report::optimise_queue(reports)))
}
