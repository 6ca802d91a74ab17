//! The learning loop: corrections that take effect at once, and retraining
//! into model versions behind an eval gate.
//!
//! A retrain fits a candidate intent model on the corpus plus the accepted
//! corrections (every stored correction except a held-out slice), evaluates
//! it and the version being served on the project's eval sets and on the
//! held-out corrections, and promotes it only when no gated metric drops by
//! more than the tolerance ([`gate`]). Every candidate is kept as a version
//! ([`versions`]) with its report. Live corrections are in [`taught`].

pub mod finetune;
pub mod gate;
pub mod versions;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use indicatif::ProgressBar;
use sha2::{Digest, Sha256};

use crate::corpus::{Corpus, CorpusError, OOS};
use crate::encoder::{EncoderError, EncoderHandle, TextKind};
use crate::engine::{add_background, embed_corpus, Engine, EngineError, EngineSettings, Query, MODEL_FORMAT};
use crate::eval::{self, EvalError, LabelledLine, Prediction, SetRole};
use crate::nlu::intent::{IntentError, IntentModel, TrainingExample};
use crate::nlu::slots::Catalogue;
use crate::policy::Action;
use crate::store::{Store, StoreError, StoredCorrection};
use crate::support::progress;
use crate::support::retry::{retry, Backoff};
use gate::{GateDecision, Measured};
use versions::{
    new_version_id, SetMetrics, TrainingSummary, VersionCorrection, VersionError, VersionReport, VersionStatus,
    VersionStore, BASE_VERSION,
};

/// One correction in this many (by a stable hash of its text) is held out of
/// training so the gate can measure how well a candidate generalises to corrections it never saw.
pub const HELD_OUT_EVERY: u64 = 5;

/// The eval-set name of the held-out corrections in reports.
pub const HELD_OUT_SET: &str = "held_out_corrections";

/// Answers evaluated at once, so that the encoder can batch them.
const EVAL_CONCURRENCY: usize = 8;

/// The encoder queue is shared with live traffic: wait for room (up to 5 s)
/// rather than fail a retrain or a replay.
const WAIT_FOR_ENCODER: Backoff = Backoff { retries: 100, first: std::time::Duration::from_millis(50), growth: 1 };

fn encoder_busy(err: &EngineError) -> bool {
    matches!(err, EngineError::Encoder(EncoderError::Busy))
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Intent(#[from] IntentError),
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error("the eval gate needs at least one eval set (setting gate_eval_sets)")]
    NoEvalSet,
    #[error("version {version} cannot be served: {reason}")]
    Incompatible { version: String, reason: String },
    #[error("a training task stopped unexpectedly: {0}")]
    Task(String),
}

impl From<EncoderError> for TrainError {
    fn from(e: EncoderError) -> Self {
        TrainError::Engine(EngineError::Encoder(e))
    }
}

impl From<tokio::task::JoinError> for TrainError {
    fn from(e: tokio::task::JoinError) -> Self {
        TrainError::Task(e.to_string())
    }
}

/// Where the learning loop reads and writes, and how strict its gate is.
#[derive(Debug, Clone)]
pub struct TrainerSettings {
    pub corpus_dir: PathBuf,
    /// The corpus model and embedding cache (see [`Engine::build`]).
    pub cache_dir: PathBuf,
    pub versions_dir: PathBuf,
    /// Labelled sets (the `kefu eval` formats) the gate compares versions on.
    pub eval_sets: Vec<PathBuf>,
    /// Largest drop of any gated metric a candidate may show and still be promoted.
    pub gate_tolerance: f64,
}

/// Builds engines for the served version and retrains new ones. Shares the
/// server's encoder, so a retrain embeds through the same model thread.
pub struct Trainer {
    settings: TrainerSettings,
    catalogue: Catalogue,
    encoder: EncoderHandle,
    engine_settings: EngineSettings,
    /// What a served engine gets beyond the model (enterprise systems, customer history).
    prepare: Option<Box<dyn Fn(Engine) -> Engine + Send + Sync>>,
    versions: VersionStore,
}

/// The outcome of a retrain.
pub struct Retrained {
    pub report: VersionReport,
    /// The promoted engine (without connectors or live corrections: see
    /// [`Trainer::for_serving`] and [`sync_corrections`]); `None` when rejected.
    pub engine: Option<Engine>,
}

/// What the candidate was trained on.
struct CandidateModel {
    model: IntentModel,
    corpus: Corpus,
    corrections: Vec<VersionCorrection>,
    training: TrainingSummary,
}

/// Whether a correction is in the held-out slice: the same answer for the same text, always.
pub fn is_held_out(text: &str) -> bool {
    let digest = Sha256::digest(text.trim().as_bytes());
    let n = u64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8]));
    n % HELD_OUT_EVERY == 0
}

impl Trainer {
    pub fn new(
        settings: TrainerSettings,
        catalogue: Catalogue,
        encoder: EncoderHandle,
        engine_settings: EngineSettings,
    ) -> Trainer {
        let versions = VersionStore::new(&settings.versions_dir);
        Trainer { settings, catalogue, encoder, engine_settings, prepare: None, versions }
    }

    /// How an engine is readied for serving (e.g. `with_connectors`): applied by [`Trainer::for_serving`].
    pub fn with_serving(mut self, prepare: impl Fn(Engine) -> Engine + Send + Sync + 'static) -> Trainer {
        self.prepare = Some(Box::new(prepare));
        self
    }

    pub fn versions(&self) -> &VersionStore {
        &self.versions
    }

    pub fn settings(&self) -> &TrainerSettings {
        &self.settings
    }

    /// Readies an engine about to be served (see [`Trainer::with_serving`]).
    pub fn for_serving(&self, engine: Engine) -> Engine {
        match &self.prepare {
            Some(prepare) => prepare(engine),
            None => engine,
        }
    }

    /// The engine of the current version: its saved model when the pointer
    /// names one that fits this corpus and encoder, else the model built from
    /// the corpus (fitted once, then cached). Without connectors or live
    /// corrections. Blocking.
    pub fn current_engine(&self, show_progress: bool) -> Result<Engine, TrainError> {
        match self.named_engine(show_progress) {
            Ok(engine) => Ok(engine),
            Err(err) => {
                tracing::warn!(error = %err, "cannot serve the current version; serving the model built from the corpus");
                self.corpus_engine(Corpus::load(&self.settings.corpus_dir)?, show_progress)
            }
        }
    }

    /// The engine of the version the pointer names (the corpus model when it
    /// names none), or why that version cannot be served. Blocking.
    pub fn named_engine(&self, show_progress: bool) -> Result<Engine, TrainError> {
        let corpus = Corpus::load(&self.settings.corpus_dir)?;
        match self.versions.current()? {
            Some(id) => self.version_engine(&corpus, &id),
            None => self.corpus_engine(corpus, show_progress),
        }
    }

    fn corpus_engine(&self, corpus: Corpus, show_progress: bool) -> Result<Engine, TrainError> {
        Ok(Engine::build(
            corpus,
            &self.catalogue,
            self.encoder.clone(),
            self.engine_settings.clone(),
            &self.settings.cache_dir,
            show_progress,
        )?)
    }

    fn version_engine(&self, corpus: &Corpus, id: &str) -> Result<Engine, TrainError> {
        let report = self.versions.report(id)?;
        let incompatible =
            |reason: &str| Err(TrainError::Incompatible { version: id.to_string(), reason: reason.to_string() });
        if report.model_format != MODEL_FORMAT {
            return incompatible("its model was saved in another format");
        }
        if report.encoder_fingerprint != self.encoder.fingerprint() {
            return incompatible("it was trained with another encoder model");
        }
        if report.corpus_fingerprint != corpus.fingerprint {
            return incompatible("the corpus has changed since it was trained; run kefu retrain");
        }
        let model = self.versions.load_model(id)?;
        tracing::info!(version = %id, exemplars = model.exemplars(), "loaded model version");
        Ok(Engine::from_model(
            corpus.clone(),
            &self.catalogue,
            self.encoder.clone(),
            self.engine_settings.clone(),
            model,
        )
        .with_version(id))
    }

    /// Retrains, gates and saves a new version; makes it current when the gate promotes it.
    /// `tolerance` overrides the configured one.
    pub async fn retrain(
        self: &Arc<Self>,
        store: &Store,
        tolerance: Option<f64>,
        show_progress: bool,
    ) -> Result<Retrained, TrainError> {
        let started = Instant::now();
        let created_at = Utc::now();
        let tolerance = tolerance.unwrap_or(self.settings.gate_tolerance);
        if self.settings.eval_sets.is_empty() {
            return Err(TrainError::NoEvalSet);
        }
        // Read the eval sets first: a missing file should fail before minutes of fitting.
        let eval_sets = self.eval_sets()?;
        let stored = store.latest_corrections().await?;

        let this = self.clone();
        let candidate = tokio::task::spawn_blocking(move || this.fit_candidate(stored, show_progress)).await??;
        let this = self.clone();
        let baseline = Arc::new(tokio::task::spawn_blocking(move || this.current_engine(show_progress)).await??);
        let CandidateModel { model, corpus, corrections, training } = candidate;
        let candidate = Arc::new(Engine::from_model(
            corpus,
            &self.catalogue,
            self.encoder.clone(),
            self.engine_settings.clone(),
            model,
        ));

        let held_out: Vec<LabelledLine> = corrections
            .iter()
            .filter(|c| c.held_out)
            .map(|c| LabelledLine {
                text: c.text.clone(),
                intent: c.intent.clone(),
                decision: None,
                slots: None,
                now: None,
            })
            .collect();
        let mut sets = eval_sets;
        sets.push((HELD_OUT_SET.to_string(), held_out));
        let (baseline_metrics, candidate_metrics, measured) =
            compare(&baseline, &candidate, &sets, show_progress).await?;
        let decision: GateDecision = gate::decide(&measured, tolerance);

        let id = new_version_id(created_at);
        let promoted_at = decision.promote.then(Utc::now);
        let report = VersionReport {
            version: id.clone(),
            status: if decision.promote { VersionStatus::Promoted } else { VersionStatus::Rejected },
            created_at,
            promoted_at,
            rolled_back_at: None,
            baseline_version: baseline.version().to_string(),
            model_format: MODEL_FORMAT.to_string(),
            corpus_fingerprint: candidate.corpus().fingerprint.clone(),
            encoder_fingerprint: self.encoder.fingerprint(),
            training,
            baseline: baseline_metrics,
            candidate: candidate_metrics,
            gate: decision,
            seconds: started.elapsed().as_secs_f64(),
        };
        drop(baseline);
        self.save_version(&report, corrections, &candidate).await?;
        tracing::info!(version = %id, status = report.status.as_str(), reason = %report.gate.reason, seconds = report.seconds, "retrained");
        let engine = match report.status {
            VersionStatus::Promoted => {
                let engine = Arc::try_unwrap(candidate)
                    .map_err(|_| TrainError::Task("the candidate engine is still shared".into()))?;
                Some(engine.with_version(&id))
            }
            _ => None,
        };
        Ok(Retrained { report, engine })
    }

    /// The gate's eval sets, named by their file stems.
    fn eval_sets(&self) -> Result<Vec<(String, Vec<LabelledLine>)>, TrainError> {
        let mut sets = Vec::new();
        for path in &self.settings.eval_sets {
            let name =
                path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned());
            sets.push((name, eval::load_labelled(path, SetRole::Test)?));
        }
        Ok(sets)
    }

    /// Keeps the version's report and corrections (and its model when
    /// promoted, since a rejected model is never served), and points `current`
    /// at a promoted one.
    async fn save_version(
        self: &Arc<Self>,
        report: &VersionReport,
        corrections: Vec<VersionCorrection>,
        candidate: &Arc<Engine>,
    ) -> Result<(), TrainError> {
        let (this, saved, to_save) = (self.clone(), report.clone(), candidate.clone());
        tokio::task::spawn_blocking(move || -> Result<(), TrainError> {
            let promote = saved.status == VersionStatus::Promoted;
            let write_model = |dir: &std::path::Path| to_save.model().save(dir);
            this.versions.create(&saved, &corrections, promote.then_some(&write_model as versions::ModelWriter))?;
            if promote {
                this.versions.set_current(Some(&saved.version))?;
            }
            Ok(())
        })
        .await?
    }

    /// Embeds and fits: corpus (embeddings from the cache) plus the accepted corrections. Blocking.
    fn fit_candidate(&self, stored: Vec<StoredCorrection>, show_progress: bool) -> Result<CandidateModel, TrainError> {
        let started = Instant::now();
        let corpus = Corpus::load(&self.settings.corpus_dir)?;
        let known = |intent: &str| intent == OOS || corpus.intent(intent).is_some();
        let skipped = stored.iter().filter(|c| !known(&c.intent)).count();
        let corrections: Vec<VersionCorrection> = stored
            .into_iter()
            .filter(|c| known(&c.intent))
            .map(|c| VersionCorrection { held_out: is_held_out(&c.text), text: c.text, intent: c.intent })
            .collect();
        let group = |label: &str| corpus.intent(label).map(|i| i.scenario.clone()).unwrap_or_default();

        let vectors = embed_corpus(&corpus, &self.encoder, &self.settings.cache_dir, show_progress)?;
        // NOTE: a correction of a text the corpus also lists overrides the
        // corpus label (the agent's word is the latest); a held-out one removes
        // it too, or the gate would test the candidate on its own training data.
        let corrected: HashSet<&str> = corrections.iter().map(|c| c.text.as_str()).collect();
        let mut examples: Vec<TrainingExample> = corpus
            .examples
            .iter()
            .zip(vectors)
            .filter(|(e, _)| !corrected.contains(e.text.trim()))
            .map(|(e, vector)| TrainingExample {
                text: e.text.clone(),
                label: e.intent.clone(),
                group: group(&e.intent),
                vector,
            })
            .collect();
        let corpus_examples = examples.len();
        let accepted: Vec<&VersionCorrection> = corrections.iter().filter(|c| !c.held_out).collect();
        let bar = progress::bar(accepted.len() as u64, show_progress && !accepted.is_empty(), "corrections");
        let texts: Vec<String> = accepted.iter().map(|c| c.text.clone()).collect();
        let vectors = self.encoder.embed_all_blocking(&texts, TextKind::Query, |n| bar.inc(n as u64))?;
        for (c, vector) in accepted.iter().zip(vectors) {
            examples.push(TrainingExample {
                text: c.text.clone(),
                label: c.intent.clone(),
                group: group(&c.intent),
                vector,
            });
        }
        bar.finish_and_clear();
        if self.engine_settings.background_oos {
            add_background(&mut examples, &self.encoder, &self.settings.cache_dir, show_progress)?;
        }

        let spinner = progress::spinner(show_progress);
        let fit_started = Instant::now();
        let model =
            IntentModel::fit(examples, &self.engine_settings.fit, &|stage| spinner.set_message(stage.to_string()))?;
        spinner.finish_and_clear();
        let report = &model.calibration().report;
        let training = TrainingSummary {
            corpus_examples,
            corrections_used: accepted.len(),
            corrections_held_out: corrections.len() - accepted.len(),
            corrections_skipped: skipped,
            exemplars: model.exemplars(),
            cv_in_scope_accuracy: report.in_scope_accuracy,
            cv_oos_recall: report.oos_recall,
            fit_seconds: fit_started.elapsed().as_secs_f64(),
        };
        tracing::info!(
            corpus_examples,
            corrections = accepted.len(),
            seconds = started.elapsed().as_secs_f32(),
            "fitted a candidate intent model"
        );
        Ok(CandidateModel { model, corpus, corrections, training })
    }
}

/// Runs every line through `engine` (a few at a time, so the encoder batches
/// Runs the baseline and the candidate over each named set (the last being the
/// held-out corrections, scored by accuracy only) and lists what the gate compares.
async fn compare(
    baseline: &Arc<Engine>,
    candidate: &Arc<Engine>,
    sets: &[(String, Vec<LabelledLine>)],
    show_progress: bool,
) -> Result<(BTreeMap<String, SetMetrics>, BTreeMap<String, SetMetrics>, Vec<Measured>), TrainError> {
    let total: usize = sets.iter().map(|(_, lines)| lines.len()).sum();
    let bar = progress::bar(2 * total as u64, show_progress, "evaluating");
    let (mut baseline_metrics, mut candidate_metrics, mut measured) = (BTreeMap::new(), BTreeMap::new(), Vec::new());
    for (name, lines) in sets {
        if lines.is_empty() {
            measured.push(Measured { metric: format!("{name}/accuracy"), baseline: None, candidate: None });
            continue;
        }
        let lines = Arc::new(lines.clone());
        let b = evaluate(baseline, &lines, &bar).await?;
        let c = evaluate(candidate, &lines, &bar).await?;
        if name == HELD_OUT_SET {
            measured.push(Measured { metric: format!("{name}/accuracy"), baseline: b.accuracy, candidate: c.accuracy });
        } else {
            for (metric, bv, cv) in [
                ("intent_accuracy", b.intent_accuracy, c.intent_accuracy),
                ("decision_accuracy", b.decision_accuracy, c.decision_accuracy),
                ("oos_recall", b.oos_recall, c.oos_recall),
            ] {
                measured.push(Measured { metric: format!("{name}/{metric}"), baseline: bv, candidate: cv });
            }
        }
        baseline_metrics.insert(name.clone(), b);
        candidate_metrics.insert(name.clone(), c);
    }
    bar.finish_and_clear();
    Ok((baseline_metrics, candidate_metrics, measured))
}

/// them) and scores the predictions with the `kefu eval` rules.
async fn evaluate(
    engine: &Arc<Engine>,
    lines: &Arc<Vec<LabelledLine>>,
    bar: &ProgressBar,
) -> Result<SetMetrics, TrainError> {
    let now = Utc::now().fixed_offset();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..EVAL_CONCURRENCY.min(lines.len()) {
        let (engine, lines, bar) = (engine.clone(), lines.clone(), bar.clone());
        workers.spawn(async move {
            let mut out = Vec::new();
            for i in (worker..lines.len()).step_by(EVAL_CONCURRENCY) {
                out.push((i, predict(&engine, &lines[i], now).await?));
                bar.inc(1);
            }
            Ok::<_, TrainError>(out)
        });
    }
    let mut indexed = Vec::with_capacity(lines.len());
    while let Some(done) = workers.join_next().await {
        indexed.extend(done??);
    }
    indexed.sort_by_key(|(i, _)| *i);
    let predictions: Vec<Prediction> = indexed.into_iter().map(|(_, p)| p).collect();
    let report = eval::score(lines, &predictions)?;
    let right = lines.iter().zip(&predictions).filter(|(l, p)| l.intent == p.intent).count();
    Ok(SetMetrics {
        n: report.n,
        intent_accuracy: (report.in_scope > 0).then_some(report.intent_accuracy),
        decision_accuracy: report.decision_accuracy,
        oos_recall: report.oos_recall,
        accuracy: Some(right as f64 / lines.len() as f64),
    })
}

/// One line as `kefu eval` runs it: no customer, no session, the line's own `now` if it has one.
pub async fn predict(
    engine: &Engine,
    line: &LabelledLine,
    default_now: chrono::DateTime<chrono::FixedOffset>,
) -> Result<Prediction, TrainError> {
    let started = Instant::now();
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let query = Query {
        text: &line.text,
        scenario: None,
        now: line.now.unwrap_or(default_now),
        customer_id: None,
        previous: None,
        trace_id: &trace_id,
    };
    let answered = retry(WAIT_FOR_ENCODER, || engine.answer(query.clone()), encoder_busy, |_, _, _| {}).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match answered {
        Ok(outcome) => Ok(Prediction {
            intent: outcome.intent,
            decision: outcome.action,
            lead: outcome.lead,
            slots: outcome.slots.to_json(),
            latency_ms,
            confidence: outcome.confidence,
        }),
        // A line the engine refuses (empty, oversize) is one it does not answer.
        Err(EngineError::Invalid(_)) => Ok(Prediction {
            intent: OOS.into(),
            decision: Action::Clarify,
            lead: false,
            slots: serde_json::Map::new(),
            latency_ms,
            confidence: 0.0,
        }),
        Err(err) => Err(err.into()),
    }
}

/// Teaches the live engine every stored correction it does not hold yet
/// (the latest per text); returns how many were taught. Used on start, so
/// corrections survive a restart, and around every engine swap.
pub async fn sync_corrections(engine: &Engine, store: &Store) -> Result<usize, TrainError> {
    let missing: Vec<(String, String)> = store
        .latest_corrections()
        .await?
        .into_iter()
        .filter(|c| {
            engine.knows_intent(&c.intent) && engine.taught_intent(&c.text).as_deref() != Some(c.intent.as_str())
        })
        .map(|c| (c.text, c.intent))
        .collect();
    Ok(retry(WAIT_FOR_ENCODER, || engine.teach(missing.clone()), encoder_busy, |_, _, _| {}).await?)
}

/// The version a report names for people: `base` or the id.
pub fn describe(version: &str) -> &str {
    if version == BASE_VERSION {
        "base (corpus only)"
    } else {
        version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::vector::unit;

    #[test]
    fn held_out_slice_is_stable_and_about_one_in_five() {
        let texts: Vec<String> = (0..2000).map(|i| format!("问题 {i}")).collect();
        let held: Vec<bool> = texts.iter().map(|t| is_held_out(t)).collect();
        assert_eq!(held, texts.iter().map(|t| is_held_out(t)).collect::<Vec<_>>());
        assert_eq!(is_held_out(" 问题 7 "), is_held_out("问题 7"), "trimmed like the engine trims");
        let share = held.iter().filter(|&&h| h).count() as f64 / texts.len() as f64;
        assert!((0.17..0.23).contains(&share), "{share}");
    }

    /// Teaching joins the live index at once and relabels a text taught twice.
    #[test]
    fn teaching_adds_and_relabels_exemplars() {
        let dim = 8;
        let axis = |a: usize, jitter: f32| {
            unit((0..dim).map(|i| if i == a { 1.0 } else { jitter * ((i * 7 + a) % 5) as f32 / 5.0 }).collect())
        };
        let mut examples = Vec::new();
        for (class, label) in ["hours", "refund"].iter().enumerate() {
            for j in 0..12 {
                examples.push(TrainingExample {
                    text: format!("{label} {j}"),
                    label: label.to_string(),
                    group: "g".into(),
                    vector: axis(class, 0.05 * j as f32),
                });
            }
        }
        for j in 0..12 {
            examples.push(TrainingExample {
                text: format!("oos {j}"),
                label: OOS.into(),
                group: String::new(),
                vector: axis(2 + j % 6, 0.05),
            });
        }
        let mut model = IntentModel::fit(examples, &Default::default(), &|_| {}).unwrap();
        let before = model.exemplars();
        assert!(!model.teach("x", "no_such_intent", axis(0, 0.0)).unwrap());
        assert!(model.teach("钱退哪了", "refund", axis(7, 0.0)).unwrap());
        assert_eq!(model.exemplars(), before + 1);
        let hits = model.score(&axis(7, 0.0), None).unwrap();
        assert_eq!(hits.neighbours[0].text, "钱退哪了");
        assert_eq!(hits.neighbours[0].intent, "refund");
        assert!(model.teach("钱退哪了", "hours", axis(7, 0.0)).unwrap());
        assert_eq!(model.exemplars(), before + 1, "relabelled, not duplicated");
        assert_eq!(model.score(&axis(7, 0.0), None).unwrap().neighbours[0].intent, "hours");
    }
}
