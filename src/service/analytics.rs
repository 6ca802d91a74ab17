//! The weekly review's report, for the API and the CLI alike: the store's
//! figures for a period, the questions grouped by meaning (embedded by
//! whatever the caller has: the live engine with its cache, or a bare
//! encoder), and the report built from both.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::ServiceError;
use crate::analytics::{build_report, questions_to_embed, Period, StatsReport, StatsSettings};
use crate::corpus::Taxonomy;
use crate::engine::{Engine, EngineError};
use crate::store::Store;

/// The report of `period` (one channel's when given), listing `top` question
/// groups; `embed` turns the question texts into vectors for grouping, and
/// the deployment's `taxonomy` gives each intent its scenario.
pub async fn report(
    store: &Store,
    settings: &StatsSettings,
    period: Period,
    channel: Option<&str>,
    top: usize,
    taxonomy: &Taxonomy,
    embed: impl AsyncFnOnce(&[String]) -> Result<Vec<Vec<f32>>, EngineError>,
) -> Result<StatsReport, ServiceError> {
    let data = store.stats_data(period, channel, settings.max_questions).await?;
    let texts = questions_to_embed(&data);
    let vectors = if texts.is_empty() { Vec::new() } else { embed(&texts).await? };
    let scenario_of = |intent: &str| taxonomy.intent(intent).map(|i| i.scenario.clone());
    Ok(build_report(period, channel, &data, &vectors, settings, top, &scenario_of))
}

/// Embeddings of the question texts of earlier reports, so that asking again
/// (another channel, the export after the JSON) only embeds what is new.
/// They belong to one engine: a swapped engine (a new model version) starts afresh.
#[derive(Default)]
pub struct QuestionVectors {
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
    pub async fn embed(
        &self,
        engine: &Arc<Engine>,
        texts: &[String],
        max_questions: usize,
    ) -> Result<Vec<Vec<f32>>, EngineError> {
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
