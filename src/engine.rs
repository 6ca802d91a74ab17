//! The answer pipeline: validate -> embed -> score intents -> extract slots ->
//! decide -> render. Builds (or loads from its cache) the intent model for a
//! corpus and an encoder. Knows nothing of HTTP.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::time::Instant;

use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::answer::{self, Resolution, Subject};
use crate::connectors::{Connectors, Ctx};
use crate::corpus::{Corpus, DataKind, Decision, Lang, ReplyKey, Role, OOS};
use crate::encoder::{EncoderError, EncoderHandle, TextKind};
use crate::nlu::corrections::{apply_authority, Taught, TaughtExemplar};
use crate::nlu::exasperation::ExasperationModel;
use crate::nlu::intent::{FitOptions, IntentError, IntentModel, Scored, TrainingExample};
use crate::nlu::signals::SignalDetector;
use crate::nlu::slots::{Catalogue, LocatedSlots, SlotExtractor, Slots};
use crate::policy::{self, Action, HandoffReason, PolicySettings, Priority, Reply, Verdict};
use crate::profile::{CustomerHistory, Profile, ProfileInputs, ProfileRules};
use crate::support::fs::{replace_dir, write_atomically, FsError};
use crate::support::progress;
use crate::telemetry;

/// The version an engine built from the corpus alone serves (no retrained version promoted).
pub const BASE_VERSION: &str = "base";

/// Times the bot gives the same answer in a row before the next ask of its
/// question goes to a person: a customer asking a third time has not been helped.
const ANSWERS_BEFORE_HANDOFF: usize = 2;

/// Calibrated confidence in an intent at which an ask-for-a-person phrase its
/// own exemplars use is taken as part of the question, not as an ask (see
/// `Engine::asks_about_agents`).
const AGENT_QUESTION_MIN_CONFIDENCE: f32 = 0.9;

/// Bump when the saved intent model's layout or fitting changes, so old caches are rebuilt.
pub const MODEL_FORMAT: &str = "kefu-intent-model-v5";

/// What is wrong with a request the engine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidKind {
    EmptyText,
    TextTooLong,
    UnknownScenario,
}

impl InvalidKind {
    /// A stable code for API clients.
    pub fn code(self) -> &'static str {
        match self {
            InvalidKind::EmptyText => "empty_text",
            InvalidKind::TextTooLong => "text_too_long",
            InvalidKind::UnknownScenario => "unknown_scenario",
        }
    }
}

/// A request the engine refuses, and why in words.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidInput {
    pub kind: InvalidKind,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    #[error(transparent)]
    Intent(#[from] IntentError),
    #[error("cannot write the model cache: {0}")]
    Cache(#[from] FsError),
}

/// Settings of the engine itself.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Zone that relative dates ("yesterday") are read in.
    pub timezone: Tz,
    pub policy: PolicySettings,
    /// Longest accepted message, in bytes of UTF-8.
    pub max_text_bytes: usize,
    pub fit: FitOptions,
    /// Cosine similarity to an agent-taught exemplar at which the correction
    /// decides the intent (see `nlu::corrections::apply_authority`).
    pub correction_min_similarity: f32,
    /// Tag rules of customer profiles.
    pub profile: ProfileRules,
    /// Labelled examples held out of training (e.g. CLINC150's `val` +
    /// `oos_val`): when given, the intent model's calibration and
    /// out-of-scope threshold are fitted on them instead of by cross-fitting
    /// (see `IntentModel::fit_validated`).
    pub validation: Option<Corpus>,
    /// Add kefu's background out-of-scope lines to a corpus that has
    /// out-of-scope examples of its own (see `nlu::background`).
    pub background_oos: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            timezone: crate::support::time::DEFAULT_TIMEZONE,
            policy: PolicySettings::default(),
            max_text_bytes: 4096,
            fit: FitOptions::default(),
            correction_min_similarity: 0.95,
            profile: ProfileRules::default(),
            validation: None,
            background_oos: true,
        }
    }
}

/// One customer message to answer.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    pub text: &'a str,
    /// Restrict intents to one scenario of the taxonomy.
    pub scenario: Option<&'a str>,
    /// Reference time for relative dates.
    pub now: DateTime<FixedOffset>,
    /// The enterprise's customer id, whose data answers may use.
    pub customer_id: Option<&'a str>,
    /// The previous turn of the same session, if any.
    pub previous: Option<&'a PreviousTurn>,
    /// Id of this turn in logs.
    pub trace_id: &'a str,
}

/// What the engine remembers of the previous turn of a session.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviousTurn {
    pub intent: String,
    pub decision: Action,
    pub slots: Slots,
    /// Intents its clarifying question offered, in order.
    pub options: Vec<String>,
    /// Unhelpful turns in a row (clarify, or marked not useful) ending with it.
    pub unhelpful_streak: usize,
    /// Turns in a row ending with it that gave its answer word for word.
    pub same_answer_in_a_row: usize,
}

impl PreviousTurn {
    /// Whether a message scored as `intent`, naming only `said`, asks again
    /// what the bot has already answered the same way [`ANSWERS_BEFORE_HANDOFF`]
    /// times in a row: that answer is not what the customer needs. A new
    /// order, product or date makes it a new question; an answer that changed
    /// (a ticket moved on) was news, not a repetition.
    fn asked_again(&self, intent: &str, said: &Slots) -> bool {
        let names_something_new = (said.order_id.is_some() && said.order_id != self.slots.order_id)
            || (said.product.is_some() && said.product != self.slots.product)
            || (said.time.is_some() && said.time != self.slots.time);
        self.intent == intent && self.same_answer_in_a_row >= ANSWERS_BEFORE_HANDOFF && !names_something_new
    }
}

/// A retrieved candidate, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub intent: String,
    pub score: f32,
    /// The exemplar that matched.
    pub text: String,
}

/// The engine's answer to one message.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub action: Action,
    /// Intent id or [`OOS`].
    pub intent: String,
    /// Calibrated confidence in `intent`.
    pub confidence: f32,
    pub answer: Option<String>,
    pub slots: Slots,
    pub candidates: Vec<Candidate>,
    pub handoff: Option<(HandoffReason, Priority)>,
    pub lead: bool,
    /// Intents a clarifying question offers, in the order shown.
    pub options: Vec<String>,
    pub lang: Lang,
    /// For a hand-off: the customer's profile, orders, repairs and refunds.
    pub context: Option<serde_json::Value>,
    /// The customer's profile (masked, with tags), when the customer is known.
    pub profile: Option<Profile>,
    /// Hints for the agent and the bot UI from the profile's tags, in the turn's language.
    pub hints: Vec<String>,
}

/// A hand-off's context with the hints for the agent who takes it.
fn with_hints(mut context: serde_json::Value, hints: &[String]) -> serde_json::Value {
    if let Some(map) = context.as_object_mut() {
        map.insert("agent_hints".into(), hints.into());
    }
    context
}

/// Everything needed to answer messages; cheap to share behind an `Arc`.
pub struct Engine {
    corpus: Corpus,
    /// NOTE: behind a lock so that agent corrections join the live index at
    /// once; scoring holds the read side for one `score` call (no await), a
    /// correction the write side for one insertion, so neither waits long.
    model: RwLock<IntentModel>,
    /// Corrections taught since the model was fitted, with their authority.
    taught: RwLock<Taught>,
    /// The model version served ("base" for the model built from the corpus alone).
    version: String,
    encoder: EncoderHandle,
    slots: SlotExtractor,
    signals: SignalDetector,
    /// Exasperation learned from kefu's lines and this corpus's calm ones.
    exasperation: ExasperationModel,
    /// The ask-for-a-person phrases each intent's exemplars use (intents with
    /// the `human_request` role aside): "人工客服什么时候在线" is business hours.
    agent_phrases: HashMap<String, HashSet<String>>,
    settings: EngineSettings,
    /// Enterprise systems for data answers; `None` answers from the corpus only.
    connectors: Option<Connectors>,
    /// kefu's own history of customers (turns, tickets) for profiles and `ticket_status`.
    history: Option<std::sync::Arc<dyn CustomerHistory>>,
    /// Product display names for hints.
    catalogue: Catalogue,
}

impl Engine {
    /// Builds the engine for `corpus`, loading the intent model from `cache_dir`
    /// when one was fitted for this corpus and encoder, fitting and saving it otherwise.
    ///
    /// Blocking: call it outside the async runtime (or in `spawn_blocking`).
    pub fn build(
        corpus: Corpus,
        catalogue: &Catalogue,
        encoder: EncoderHandle,
        settings: EngineSettings,
        cache_dir: &Path,
        show_progress: bool,
    ) -> Result<Engine, EngineError> {
        let key = {
            let mut h = Sha256::new();
            let validation = settings.validation.as_ref().map_or("", |v| v.fingerprint.as_str());
            let fitting = format!("{:?} background_oos={}", settings.fit, settings.background_oos);
            for part in [MODEL_FORMAT, &corpus.fingerprint, &encoder.fingerprint(), &fitting, validation] {
                h.update(part.as_bytes());
                h.update([0]);
            }
            hex::encode(&h.finalize()[..12])
        };
        let dir = cache_dir.join(&key);
        let model = match IntentModel::load(&dir) {
            Ok(model) => {
                tracing::info!(cache = %dir.display(), exemplars = model.exemplars(), "loaded intent model from cache");
                model
            }
            Err(err) => {
                if dir.exists() {
                    tracing::warn!(cache = %dir.display(), error = %err, "cached intent model unusable; refitting");
                }
                let model = Self::fit(&corpus, &settings, &encoder, cache_dir, show_progress)?;
                save_atomically(&model, &dir)?;
                model
            }
        };
        Ok(Self::from_model(corpus, catalogue, encoder, settings, model))
    }

    /// An engine around an already fitted intent model (e.g. a saved model version).
    pub fn from_model(
        corpus: Corpus,
        catalogue: &Catalogue,
        encoder: EncoderHandle,
        settings: EngineSettings,
        model: IntentModel,
    ) -> Engine {
        let signals = SignalDetector::default();
        let exasperation = ExasperationModel::for_corpus(&corpus);
        let mut agent_phrases: HashMap<String, HashSet<String>> = HashMap::new();
        for e in &corpus.examples {
            if e.intent != OOS && corpus.taxonomy.role(&e.intent) != Some(Role::HumanRequest) {
                for phrase in signals.human_phrases(&e.text) {
                    agent_phrases.entry(e.intent.clone()).or_default().insert(phrase);
                }
            }
        }
        Engine {
            slots: SlotExtractor::new(catalogue),
            signals,
            exasperation,
            agent_phrases,
            corpus,
            model: RwLock::new(model),
            taught: RwLock::new(Taught::default()),
            version: BASE_VERSION.to_string(),
            encoder,
            settings,
            connectors: None,
            history: None,
            catalogue: catalogue.clone(),
        }
    }

    /// Names the model version this engine serves.
    pub fn with_version(mut self, version: impl Into<String>) -> Engine {
        self.version = version.into();
        self
    }

    /// The model version served.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The encoder's weights fingerprint.
    pub fn fingerprint(&self) -> String {
        self.encoder.fingerprint()
    }

    /// The slots of `text` with where each was read, `now` as the request's reference time.
    pub fn locate_slots(&self, text: &str, now: DateTime<FixedOffset>) -> LocatedSlots {
        self.slots.locate(text, now.with_timezone(&self.settings.timezone))
    }

    /// Scores a query embedding: the intent model, then the authority of agent-taught exemplars.
    fn score(&self, vector: &[f32], scenario: Option<&str>) -> Result<Scored, EngineError> {
        let mut scored = self.model.read().unwrap_or_else(PoisonError::into_inner).score(vector, scenario)?;
        let taught = self.taught.read().unwrap_or_else(PoisonError::into_inner);
        let allowed = |intent: &str| {
            intent == OOS || scenario.is_none_or(|s| self.corpus.intent(intent).is_some_and(|i| i.scenario == s))
        };
        if let Some((exemplar, similarity)) = taught.nearest(vector, allowed) {
            if similarity >= self.settings.correction_min_similarity {
                apply_authority(&mut scored, exemplar, similarity);
            }
        }
        Ok(scored)
    }

    /// Whether corrections may name this intent: one of the corpus or out-of-scope.
    pub fn knows_intent(&self, intent: &str) -> bool {
        intent == OOS || self.corpus.intent(intent).is_some()
    }

    /// Teaches agent corrections `(text, intent)` to the live engine: each
    /// text is embedded and becomes an exemplar of its intent at once. Texts
    /// naming an unknown intent are skipped. Returns how many were taught.
    pub async fn teach(&self, corrections: Vec<(String, String)>) -> Result<usize, EngineError> {
        let corrections: Vec<(String, String)> = corrections
            .into_iter()
            .map(|(text, intent)| (text.trim().to_string(), intent))
            .filter(|(text, _)| !text.is_empty())
            .collect();
        let texts: Vec<String> = corrections.iter().map(|(text, _)| text.clone()).collect();
        let vectors = self.encoder.embed_all(&texts, TextKind::Query, |_| {}).await?;
        let exemplars = corrections.into_iter().zip(vectors).map(|((text, intent), vector)| TaughtExemplar {
            text,
            intent,
            vector,
        });
        self.teach_vectors(exemplars.collect())
    }

    /// Teaches corrections that are already embedded (e.g. carried over from the engine this one replaces).
    pub fn teach_vectors(&self, exemplars: Vec<TaughtExemplar>) -> Result<usize, EngineError> {
        let mut taught = 0;
        for e in exemplars {
            if !self.knows_intent(&e.intent) {
                tracing::warn!(intent = %e.intent, "correction names an intent the corpus does not have; not taught");
                continue;
            }
            // Each lock is held for one insertion; scoring takes them one after the other too.
            let known = self.model.write().unwrap_or_else(PoisonError::into_inner).teach(
                &e.text,
                &e.intent,
                e.vector.clone(),
            )?;
            if known {
                self.taught.write().unwrap_or_else(PoisonError::into_inner).insert(e.text, e.intent, e.vector);
                taught += 1;
            }
        }
        Ok(taught)
    }

    /// The corrections taught to this engine, with their embeddings.
    pub fn taught(&self) -> Vec<TaughtExemplar> {
        self.taught.read().unwrap_or_else(PoisonError::into_inner).entries().to_vec()
    }

    /// How many corrections were taught to this engine.
    pub fn taught_count(&self) -> usize {
        self.taught.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// The intent taught for exactly this (trimmed) text, if any.
    pub fn taught_intent(&self, text: &str) -> Option<String> {
        self.taught.read().unwrap_or_else(PoisonError::into_inner).intent_of(text.trim()).map(str::to_string)
    }

    fn fit(
        corpus: &Corpus,
        settings: &EngineSettings,
        encoder: &EncoderHandle,
        cache_dir: &Path,
        show_progress: bool,
    ) -> Result<IntentModel, EngineError> {
        let started = Instant::now();
        let embedded = |set: &Corpus| -> Result<Vec<TrainingExample>, EngineError> {
            let vectors = embed_corpus(set, encoder, cache_dir, show_progress)?;
            Ok(set
                .examples
                .iter()
                .zip(vectors)
                .map(|(e, vector)| TrainingExample {
                    text: e.text.clone(),
                    label: e.intent.clone(),
                    group: corpus.intent(&e.intent).map(|i| i.scenario.clone()).unwrap_or_default(),
                    vector,
                })
                .collect())
        };
        let mut examples = embedded(corpus)?;
        if settings.background_oos {
            add_background(&mut examples, encoder, cache_dir, show_progress)?;
        }
        let validation = settings.validation.as_ref().map(embedded).transpose()?.unwrap_or_default();
        let spinner = progress::spinner(show_progress);
        let model = IntentModel::fit_validated(examples, validation, &settings.fit, &|stage| {
            spinner.set_message(stage.to_string())
        })?;
        spinner.finish_and_clear();
        let report = &model.calibration().report;
        tracing::info!(
            exemplars = model.exemplars(),
            seconds = started.elapsed().as_secs_f32(),
            cv_in_scope_accuracy = report.in_scope_accuracy,
            cv_oos_recall = ?report.oos_recall,
            "fitted intent model"
        );
        Ok(model)
    }

    /// Answers with the customer's data from these enterprise systems.
    pub fn with_connectors(mut self, connectors: Connectors) -> Engine {
        self.connectors = Some(connectors);
        self
    }

    /// Reads customers' earlier turns and tickets from this history: for
    /// profiles, and to answer `ticket_status` from the customer's tickets.
    pub fn with_history(mut self, history: std::sync::Arc<dyn CustomerHistory>) -> Engine {
        self.history = Some(history);
        self
    }

    /// The customer's records from the enterprise systems and the history;
    /// `None` for an anonymous turn or when neither source is configured.
    async fn customer_records(&self, customer_id: Option<&str>, ctx: &Ctx<'_>) -> Option<answer::CustomerRecords> {
        let customer_id = customer_id?;
        if self.connectors.is_none() && self.history.is_none() {
            return None;
        }
        Some(answer::gather(self.connectors.as_ref(), self.history.as_deref(), customer_id, ctx).await)
    }

    /// The context a hand-off gathers for `customer_id` (profile, orders,
    /// repairs, refunds), for a ticket opened by hand; `None` when no
    /// enterprise system or history is configured.
    pub async fn customer_context(
        &self,
        customer_id: &str,
        trace_id: &str,
        now: DateTime<Utc>,
    ) -> Option<serde_json::Value> {
        let ctx = Ctx { now, trace_id };
        let records = self.customer_records(Some(customer_id), &ctx).await?;
        let profile = self.profile_of(&records, now);
        // NOTE: a ticket opened by hand has no turn to take a language from; the workspace reads Chinese first.
        let hints = profile.hints(&self.settings.profile, Lang::Zh, now, &|id, lang| self.product_name(id, lang));
        let slots = Slots::default();
        let subject = Subject { customer_id: Some(customer_id), slots: &slots, tz: self.settings.timezone };
        let context = answer::handoff_context(self.connectors.as_ref(), &records, Some(&profile), &subject, &ctx).await;
        Some(with_hints(context, &hints))
    }

    fn profile_of(&self, records: &answer::CustomerRecords, now: DateTime<Utc>) -> Profile {
        let taxonomy = &self.corpus.taxonomy;
        let is_after_sales_intent = |intent: &str| taxonomy.is_after_sales(intent);
        let role_of = |intent: &str| taxonomy.role(intent);
        let inputs = ProfileInputs {
            customer_id: &records.customer_id,
            customer: records.customer.as_ref(),
            orders: records.orders.as_deref(),
            repairs: records.repairs.as_deref(),
            past_turns: records.past_turns.as_deref(),
            is_after_sales_intent: &is_after_sales_intent,
            role_of: &role_of,
            unavailable: &records.unavailable,
            tz: self.settings.timezone,
        };
        Profile::build(&inputs, &self.settings.profile, now)
    }

    /// A catalogue product type's display name: 冰箱, refrigerator.
    fn product_name(&self, id: &str, lang: Lang) -> Option<String> {
        let product = self.catalogue.get(id)?;
        Some(match lang {
            Lang::Zh => product.name_zh.clone(),
            // "TV" stays as it is; "Refrigerator" reads better inside a sentence as "refrigerator".
            Lang::En if product.name_en.chars().any(char::is_lowercase) => product.name_en.to_lowercase(),
            Lang::En => product.name_en.clone(),
        })
    }

    /// Runs one message through the encoder so the first customer does not pay for start-up.
    pub async fn warm_up(&self) -> Result<(), EngineError> {
        self.encoder.embed(vec!["你好".to_string()], TextKind::Query).await?;
        Ok(())
    }

    /// Embeds customer questions (e.g. for grouping them by meaning), one
    /// L2-normalised row per text. Sends small chunks one after another so
    /// live requests keep their turn on the model thread.
    pub async fn embed_queries(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EngineError> {
        Ok(self.encoder.embed_all(texts, TextKind::Query, |_| {}).await?)
    }

    /// Checks a query before any model work: what the API answers with a 4xx.
    pub fn validate(&self, query: &Query<'_>) -> Result<(), InvalidInput> {
        if query.text.trim().is_empty() {
            return Err(InvalidInput { kind: InvalidKind::EmptyText, message: "text is empty".into() });
        }
        if query.text.len() > self.settings.max_text_bytes {
            return Err(InvalidInput {
                kind: InvalidKind::TextTooLong,
                message: format!("text is {} bytes; the limit is {}", query.text.len(), self.settings.max_text_bytes),
            });
        }
        if let Some(s) = query.scenario {
            if !self.corpus.taxonomy.has_scenario(s) {
                let known = self.corpus.scenarios().collect::<Vec<_>>().join(", ");
                return Err(InvalidInput {
                    kind: InvalidKind::UnknownScenario,
                    message: format!("unknown scenario {s:?}; known: {known}"),
                });
            }
        }
        Ok(())
    }

    /// Whether `text`'s ask-for-a-person phrases are only ones the corpus uses
    /// in asking the intent it is confidently scored as: a question about the
    /// agents ("人工客服周末上班吗"), not a request for one. The corpus decides,
    /// not a list: an intent whose exemplars never say "客服人员" does not
    /// excuse "客服人员在吗".
    fn asks_about_agents(&self, scored: &Scored, text: &str) -> bool {
        let Some((intent, _)) = scored.ranked.first() else { return false };
        if scored.out_of_scope || scored.confidence < AGENT_QUESTION_MIN_CONFIDENCE {
            return false;
        }
        let Some(known) = self.agent_phrases.get(intent) else { return false };
        let phrases = self.signals.human_phrases(text);
        !phrases.is_empty() && phrases.iter().all(|p| known.contains(p))
    }

    /// Answers one message.
    pub async fn answer(&self, query: Query<'_>) -> Result<Outcome, EngineError> {
        self.validate(&query)?;
        let text = query.text.trim();
        let ctx = Ctx { now: query.now.with_timezone(&Utc), trace_id: query.trace_id };
        // The customer's records do not depend on the question: fetch them while the encoder works.
        let started = Instant::now();
        let (embedded, records) = tokio::join!(
            async {
                let embedded = self.encoder.embed(vec![text.to_string()], TextKind::Query).await;
                telemetry::stage("embed", started);
                embedded
            },
            async {
                let records = self.customer_records(query.customer_id, &ctx).await;
                telemetry::stage("customer_records", started);
                records
            }
        );
        let vector = embedded?.pop().ok_or_else(|| EncoderError::Inference("the encoder returned no vector".into()))?;
        let understood = Instant::now();
        let scored = self.score(&vector, query.scenario)?;
        let tz = self.settings.timezone;
        let mut slots = self.slots.extract(text, query.now.with_timezone(&tz));
        let said = slots.clone();
        let mut signals = self.signals.detect(text);
        if signals.human_request && self.asks_about_agents(&scored, text) {
            signals.human_request = false;
        }
        signals.exasperated = self.exasperation.is_exasperated(text);
        let taxonomy = &self.corpus.taxonomy;
        let mut verdict = policy::decide(&scored, &signals, taxonomy, &self.settings.policy);
        // Whether this turn answers the bot's own question, so a further question is progress, not a failure.
        let follows_up = match query.previous {
            Some(previous) => self.continue_conversation(previous, text, &mut verdict, &mut slots),
            None => false,
        };
        let lang = Lang::detect(text);
        telemetry::stage("understand", understood);
        let composed = Instant::now();
        let subject = Subject { customer_id: query.customer_id, slots: &slots, tz };
        let mut answer = match self.data_answer(&mut verdict, lang, &subject, &ctx).await {
            Some(answer) => answer,
            None => self.render(&verdict, lang),
        };
        // Two unhelpful turns in a row (clarify, out of scope, or marked not
        // useful) go to a person, and so does a question answered twice already.
        let streak = query.previous.map_or(0, |p| p.unhelpful_streak);
        let unhelpful_now = verdict.action == Action::Clarify && !follows_up;
        let asked_again = verdict.action == Action::Answer
            && !follows_up
            && taxonomy.role(&verdict.intent) != Some(Role::Smalltalk)
            && query.previous.is_some_and(|p| p.asked_again(&verdict.intent, &said));
        if verdict.action != Action::Handoff && (streak >= 2 || (streak >= 1 && unhelpful_now) || asked_again) {
            verdict = policy::escalate_unresolved(verdict, taxonomy);
            answer = self.render(&verdict, lang);
        }
        let (profile, hints) = self.personalise(records.as_ref(), &mut verdict, &slots, lang, ctx.now);
        if let Some(reply) = self.ticket_status_answer(&verdict, text, query.customer_id, lang, &answer, &ctx).await {
            answer = reply;
        }
        let context = match (verdict.action, &records) {
            (Action::Handoff, Some(r)) => {
                let context = answer::handoff_context(self.connectors.as_ref(), r, profile.as_ref(), &subject, &ctx);
                Some(with_hints(context.await, &hints))
            }
            _ => None,
        };
        let options = match (&verdict.reply, verdict.action) {
            (Reply::WhichOf(ids), Action::Clarify) => {
                ids.iter().filter(|id| self.corpus.intent(id).is_some()).cloned().collect()
            }
            _ => Vec::new(),
        };
        telemetry::stage("compose", composed);
        Ok(Outcome {
            options,
            answer: Some(answer),
            // A turn that answers the bot's own question settles the intent the customer chose.
            confidence: if follows_up { 1.0 } else { confidence_in(&verdict, &scored) },
            candidates: candidates(&scored),
            action: verdict.action,
            intent: verdict.intent,
            handoff: verdict.handoff,
            lead: verdict.lead,
            slots,
            lang,
            context,
            profile,
            hints,
        })
    }

    /// The customer's profile and the agent hints its tags give; a hand-off's
    /// priority rises with the profile (VIP, repeat fault).
    fn personalise(
        &self,
        records: Option<&answer::CustomerRecords>,
        verdict: &mut Verdict,
        slots: &Slots,
        lang: Lang,
        now: DateTime<Utc>,
    ) -> (Option<Profile>, Vec<String>) {
        let Some(records) = records else { return (None, Vec::new()) };
        let profile = self.profile_of(records, now);
        let hints = profile.hints(&self.settings.profile, lang, now, &|id, lang| self.product_name(id, lang));
        if let Some((reason, _)) = verdict.handoff {
            let repairs = records.repairs.as_deref().unwrap_or_default();
            let factors = profile.priority_factors(repairs, slots.product.as_deref(), now);
            let role = self.corpus.taxonomy.role(&verdict.intent);
            verdict.handoff = Some((reason, policy::handoff_priority(reason, role, &factors)));
        }
        (Some(profile), hints)
    }

    /// For an answered question with the ticket-status role: the answer from
    /// the customer's tickets, worded around `general` (the intent's own answer).
    async fn ticket_status_answer(
        &self,
        verdict: &Verdict,
        text: &str,
        customer_id: Option<&str>,
        lang: Lang,
        general: &str,
        ctx: &Ctx<'_>,
    ) -> Option<String> {
        let asks_ticket_status = self.corpus.taxonomy.role(&verdict.intent) == Some(Role::TicketStatus);
        let history = self.history.as_ref().filter(|_| verdict.action == Action::Answer && asks_ticket_status)?;
        let title_of = |id: &str| self.corpus.intent(id).map(|i| answer::short_title(i.title(lang)).to_string());
        let wording = answer::TicketWording {
            replies: &self.corpus.replies,
            lang,
            tz: self.settings.timezone,
            title_of: &title_of,
        };
        answer::ticket_status(history.as_ref(), text, customer_id, &wording, general, ctx).await
    }

    /// Carries a conversation on from `previous`: a reply that picks a
    /// numbered option, or gives the order number the bot asked for, settles
    /// the intent, and the previous turn's slots fill what this one lacks.
    /// Returns whether the turn answers the bot's own question.
    fn continue_conversation(
        &self,
        previous: &PreviousTurn,
        text: &str,
        verdict: &mut Verdict,
        slots: &mut Slots,
    ) -> bool {
        let mut follows_up = false;
        if let Some(picked) = picked_option(previous, text) {
            *verdict = policy::settled(picked.to_string(), &self.corpus.taxonomy);
            follows_up = true;
        } else if self.continues_order_question(previous, verdict, slots, text) {
            *verdict = Verdict {
                intent: previous.intent.clone(),
                action: Action::Answer,
                lead: false,
                handoff: None,
                reply: Reply::IntentAnswer,
            };
            follows_up = true;
        }
        // NOTE: a turn that names its own order or product is about that
        // purchase: nothing of the previous one carries over (its date
        // would filter the new product's orders). The phone never carries
        // over: stored slots are masked.
        if slots.order_id.is_none() && slots.product.is_none() {
            slots.merge_missing_from(&Slots { phone: None, ..previous.slots.clone() });
        }
        follows_up
    }

    /// The answer a data intent gets from the enterprise systems; when the
    /// order is ambiguous or not found, a question for it (and the verdict
    /// becomes a clarify). `None` keeps the intent's general answer.
    async fn data_answer(
        &self,
        verdict: &mut Verdict,
        lang: Lang,
        subject: &Subject<'_>,
        ctx: &Ctx<'_>,
    ) -> Option<String> {
        let (Some(connectors), Action::Answer) = (&self.connectors, verdict.action) else {
            return None;
        };
        let data = self.corpus.intent(&verdict.intent)?.data.as_ref()?;
        match answer::resolve(connectors, data, lang, subject, ctx).await {
            Resolution::Answer(text) => Some(text),
            Resolution::WhichOrder(orders) => {
                verdict.action = Action::Clarify;
                Some(self.corpus.replies.render(ReplyKey::WhichOrder, lang, &[("orders", &orders.join("\n"))]))
            }
            Resolution::AskOrderNumber => {
                verdict.action = Action::Clarify;
                Some(self.corpus.replies.render(ReplyKey::AskOrderNumber, lang, &[]))
            }
            Resolution::OrderNotFound(id) => {
                verdict.action = Action::Clarify;
                Some(self.corpus.replies.render(ReplyKey::OrderNotFound, lang, &[("order_id", &id)]))
            }
            Resolution::General => None,
        }
    }

    /// A turn that gives an order number, right after a question about an
    /// order, continues that question when the model cannot place it or when
    /// the bot had asked for the number and the reply is little more than it.
    fn continues_order_question(
        &self,
        previous: &PreviousTurn,
        verdict: &policy::Verdict,
        slots: &Slots,
        text: &str,
    ) -> bool {
        let about_order = self
            .corpus
            .intent(&previous.intent)
            .and_then(|i| i.data.as_ref())
            .is_some_and(|d| d.kind == DataKind::Order);
        let Some(order_id) = &slots.order_id else { return false };
        let asked = previous.decision == Action::Clarify;
        about_order && (verdict.action == Action::Clarify || (asked && is_little_more_than(text, order_id)))
    }

    /// The reply text in the customer's language.
    fn render(&self, verdict: &Verdict, lang: Lang) -> String {
        let intent = self.corpus.intent(&verdict.intent);
        let replies = &self.corpus.replies;
        match &verdict.reply {
            Reply::IntentAnswer => intent.map(|i| i.answer(lang).to_string()).unwrap_or_default(),
            Reply::WhichOf(ids) => {
                let titles: Vec<String> = ids
                    .iter()
                    .filter_map(|id| self.corpus.intent(id))
                    .enumerate()
                    .map(|(n, i)| format!("{}. {}", n + 1, i.title(lang)))
                    .collect();
                replies.render(ReplyKey::Clarify, lang, &[("options", &titles.join("\n"))])
            }
            Reply::Rephrase => replies.render(ReplyKey::Rephrase, lang, &[]),
            Reply::Holding => match (verdict.handoff, intent) {
                (Some((HandoffReason::AngryCustomer, _)), _) => replies.render(ReplyKey::HoldingAngry, lang, &[]),
                (_, Some(i)) if i.decision == Decision::Handoff => i.answer(lang).to_string(),
                _ => replies.render(ReplyKey::Holding, lang, &[]),
            },
        }
    }

    pub fn corpus(&self) -> &Corpus {
        &self.corpus
    }

    /// The live intent model. Hold the guard briefly: corrections wait for it.
    pub fn model(&self) -> RwLockReadGuard<'_, IntentModel> {
        self.model.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The encoder this engine embeds with.
    pub fn encoder(&self) -> &EncoderHandle {
        &self.encoder
    }
}

/// The intent a reply picks from the previous turn's clarifying question.
fn picked_option<'p>(previous: &'p PreviousTurn, text: &str) -> Option<&'p str> {
    if previous.decision != Action::Clarify {
        return None;
    }
    chosen_option(text, previous.options.len()).map(|i| previous.options[i].as_str())
}

/// Which of `count` numbered options a reply picks ("2", "第二个", "选3",
/// "the second one"), when the reply is no more than that; 0-based.
fn chosen_option(text: &str, count: usize) -> Option<usize> {
    let cleaned: String = text
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| !matches!(c, '.' | '。' | '!' | '！' | ',' | '，' | '、' | '#' | ':' | '：' | '?' | '？'))
        .collect();
    let number = if !cleaned.is_ascii() {
        let mut rest = cleaned.replace(char::is_whitespace, "");
        for prefix in ["我选", "我要", "选择", "选", "要", "是", "第"] {
            rest = rest.strip_prefix(prefix).map(str::to_string).unwrap_or(rest);
        }
        for suffix in ["吧", "啊", "呢", "个", "项", "条", "种", "号"] {
            rest = rest.strip_suffix(suffix).map(str::to_string).unwrap_or(rest);
        }
        match rest.as_str() {
            "一" => Some(1),
            "二" | "两" => Some(2),
            "三" => Some(3),
            "四" => Some(4),
            "五" => Some(5),
            digits => digits.parse().ok(),
        }
    } else {
        const FILLER: [&str; 11] =
            ["i", "choose", "pick", "want", "option", "number", "no", "the", "please", "it's", "its"];
        let words: Vec<&str> = cleaned.split_whitespace().filter(|w| !FILLER.contains(w)).collect();
        let word = match words.as_slice() {
            [w] | [w, "one"] => *w,
            _ => return None,
        };
        match word {
            "first" | "1st" | "one" => Some(1),
            "second" | "2nd" | "two" => Some(2),
            "third" | "3rd" | "three" => Some(3),
            "fourth" | "4th" | "four" => Some(4),
            "fifth" | "5th" | "five" => Some(5),
            digits => digits.parse().ok(),
        }
    };
    number.filter(|n| (1..=count).contains(n)).map(|n| n - 1)
}

/// Whether `text` says little besides `id` ("订单号12345", "it's 12345"):
/// at most a few Chinese characters or English words around it.
fn is_little_more_than(text: &str, id: &str) -> bool {
    let rest = text.to_uppercase().replace(id, " ");
    let cjk = rest.chars().filter(|c| c.is_alphabetic() && !c.is_ascii()).count();
    let words = rest.split(|c: char| !c.is_ascii_alphabetic()).filter(|w| !w.is_empty()).count();
    cjk + 2 * words <= 8
}

/// Confidence in the verdict's intent: for out-of-scope, how sure we are that no intent fits.
fn confidence_in(verdict: &Verdict, scored: &Scored) -> f32 {
    let c = if verdict.intent == OOS { 1.0 - scored.confidence } else { scored.confidence };
    c.clamp(0.0, 1.0)
}

/// The best neighbour of each of the top intents, best first.
fn candidates(scored: &Scored) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for n in &scored.neighbours {
        if n.intent != OOS && !out.iter().any(|c| c.intent == n.intent) {
            out.push(Candidate { intent: n.intent.clone(), score: n.similarity, text: n.text.clone() });
        }
        if out.len() == 5 {
            break;
        }
    }
    out
}

/// The corpus's exemplar embeddings, read from the cache when this corpus was
/// embedded by this encoder before, so refitting with other options skips the encoder.
pub fn embed_corpus(
    corpus: &Corpus,
    encoder: &EncoderHandle,
    cache_dir: &Path,
    show_progress: bool,
) -> Result<Vec<Vec<f32>>, EngineError> {
    let texts: Vec<String> = corpus.examples.iter().map(|e| e.text.clone()).collect();
    embed_cached(&texts, &corpus.fingerprint, encoder, cache_dir, show_progress)
}

/// Adds kefu's background out-of-scope lines that suit `examples` (see
/// `nlu::background`) to them; their embeddings are cached like the corpus's.
pub fn add_background(
    examples: &mut Vec<TrainingExample>,
    encoder: &EncoderHandle,
    cache_dir: &Path,
    show_progress: bool,
) -> Result<(), EngineError> {
    // Checked before embedding the set: a corpus without out-of-scope lines never needs it.
    if !crate::nlu::background::applies(examples) {
        return Ok(());
    }
    let texts = crate::nlu::background::texts();
    let fingerprint = hex::encode(Sha256::digest(texts.join("\n").as_bytes()));
    let vectors = embed_cached(&texts, &fingerprint, encoder, cache_dir, show_progress)?;
    let added = crate::nlu::background::negatives(examples, texts.into_iter().zip(vectors).collect());
    tracing::info!(added = added.len(), "background out-of-scope lines");
    examples.extend(added);
    Ok(())
}

/// Embeddings of `texts`, whose content `fingerprint` names, from the cache
/// when this encoder embedded them before.
fn embed_cached(
    texts: &[String],
    fingerprint: &str,
    encoder: &EncoderHandle,
    cache_dir: &Path,
    show_progress: bool,
) -> Result<Vec<Vec<f32>>, EngineError> {
    let key = {
        let mut h = Sha256::new();
        for part in [fingerprint, &encoder.fingerprint()] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex::encode(&h.finalize()[..12])
    };
    let path = cache_dir.join(format!("embeddings-{key}.f32"));
    if let Some(vectors) = read_vectors(&path, texts.len(), encoder.dim()) {
        return Ok(vectors);
    }
    let bar = progress::bar(texts.len() as u64, show_progress, "embedding");
    let vectors = encoder.embed_all_blocking(texts, TextKind::Query, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    let bytes: Vec<u8> = vectors.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
    write_atomically(&path, &bytes)?;
    Ok(vectors)
}

/// `count` rows of `dim` little-endian f32, or `None` when the file is absent or of another shape.
fn read_vectors(path: &Path, count: usize, dim: usize) -> Option<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).ok()?;
    if dim == 0 || bytes.len() != count * dim * 4 {
        return None;
    }
    let floats: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Some(floats.chunks(dim).map(<[f32]>::to_vec).collect())
}

/// Writes the model beside its final folder and swaps it in, so a killed
/// build never leaves a half-written cache behind.
fn save_atomically(model: &IntentModel, dir: &Path) -> Result<(), EngineError> {
    replace_dir(dir, |staging| model.save(staging).map_err(EngineError::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_that_picks_an_option() {
        for (text, want) in [
            ("2", Some(1)),
            ("第二个", Some(1)),
            ("选3", Some(2)),
            ("1。", Some(0)),
            ("the second one", Some(1)),
            ("Option 3", Some(2)),
            ("first", Some(0)),
            ("两", Some(1)),
        ] {
            assert_eq!(chosen_option(text, 3), want, "{text}");
        }
        for text in ["4", "0", "第二个问题是退款", "2 and 3", "我要退货", "12345"] {
            assert_eq!(chosen_option(text, 3), None, "{text}");
        }
    }

    #[test]
    fn a_reply_that_is_just_the_order_number() {
        for text in ["12345", "订单号12345", "我的订单号是 12345", "order number 12345", "it's #12345"] {
            assert!(is_little_more_than(text, "12345"), "{text}");
        }
        for text in ["订单12345能开发票吗，我要公司抬头的增值税专票", "can I get an invoice for order 12345 please"]
        {
            assert!(!is_little_more_than(text, "12345"), "{text}");
        }
    }
}
