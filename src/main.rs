//! The `kefu` binary: configuration, tracing, engine construction, and the
//! `serve`, `eval`, `model`, `index`, `load`, `retrain`, `versions`, `rollback`, `stats`, `keys` and `agent` commands.

mod access_cli;
mod loadtest;
mod practice;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, FixedOffset, Utc};
use clap::{Parser, Subcommand};

use kefu::api::{self, ApiSettings, AppState};
use kefu::config::{Config, ConfigArgs, LogFormat};
use kefu::connectors::{self, Connectors};
use kefu::corpus::Corpus;
use kefu::encoder::{import, onnx, Backend, BatchOptions, BertEncoder, EncoderHandle};
use kefu::engine::{Engine, EngineSettings};
use kefu::eval::{self, Prediction, SetRole};
use kefu::learning::finetune::{self, FinetuneOptions};
use kefu::learning::versions::{self, VersionStore};
use kefu::learning::{Trainer, TrainerSettings};
use kefu::nlu::intent::FitOptions;
use kefu::nlu::slots::Catalogue;
use kefu::policy::PolicySettings;
use kefu::store::Store;
use kefu::support::progress;

#[derive(Parser)]
#[command(name = "kefu", version, about = "Intent-and-answer engine for customer service")]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API on the corpus and model of the configuration.
    Serve {
        /// Listen address, e.g. 127.0.0.1:8080.
        #[arg(long, env = "KEFU_ADDR")]
        addr: Option<std::net::SocketAddr>,
        /// Serve this corpus folder (the same as --corpus-dir).
        #[arg(long)]
        corpus: Option<PathBuf>,
    },
    /// Evaluate the engine on a labelled set.
    Eval(EvalArgs),
    /// Install and list models.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Fit (or load from cache) the intent model of the corpus and report on it.
    Index {
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Load-test a running server's /v1/answer.
    Load(loadtest::LoadArgs),
    /// Fit a new model version on the corpus plus agent corrections; promote it
    /// only if the eval gate passes (a running server follows the version pointer).
    Retrain {
        /// Print the version report as JSON.
        #[arg(long)]
        json: bool,
        /// Largest drop of any gated metric allowed (default: the gate_tolerance setting).
        #[arg(long)]
        tolerance: Option<f64>,
    },
    /// List the model versions, newest first.
    Versions {
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make the previous promoted version current (a running server follows the pointer).
    Rollback {
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// API keys and data keys: add, list, revoke, rotate, rotate-data.
    Keys {
        #[command(subcommand)]
        command: access_cli::KeysCommand,
    },
    /// Agent accounts of the workspace: add, list, disable, passwd.
    Agent {
        #[command(subcommand)]
        command: access_cli::AgentCommand,
    },
    /// Analytics of a period from the configured database (as GET /v1/stats), as a summary, JSON or CSV.
    Stats(StatsArgs),
    /// Send realistic demo customers (a VIP with a repeat fault, an angry parcel
    /// chaser, a sales lead) to a running server's practice channel, for agents to rehearse on.
    Practice(practice::PracticeArgs),
    /// The website chat: mint a customer token as a shop's backend would (for the demo and tests).
    Widget {
        #[command(subcommand)]
        command: access_cli::WidgetCommand,
    },
}

#[derive(clap::Args)]
struct StatsArgs {
    /// Start: an RFC 3339 time or a YYYY-MM-DD day (default: 7 days before the end).
    #[arg(long)]
    from: Option<String>,
    /// End: an RFC 3339 time, or a YYYY-MM-DD day, included (default: now).
    #[arg(long)]
    to: Option<String>,
    /// Only turns of this channel.
    #[arg(long)]
    channel: Option<String>,
    /// Question groups to list.
    #[arg(long, default_value_t = kefu::analytics::DEFAULT_TOP_QUESTIONS)]
    top: usize,
    /// text (a summary), json or csv (default: from the extension of --out, else text).
    #[arg(long, value_enum)]
    format: Option<kefu::analytics::ExportFormat>,
    /// Write to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Do not group questions by meaning (skips loading the model).
    #[arg(long)]
    no_groups: bool,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// Labelled test set: JSONL, CSV (text,label) or CLINC150 data_full.json.
    #[arg(long, required_unless_present = "compare")]
    test: Option<PathBuf>,
    /// Show what changed between two `--json` reports of the same test set: BEFORE AFTER.
    #[arg(long, num_args = 2, value_names = ["BEFORE", "AFTER"], conflicts_with_all = ["test", "train", "corpus"])]
    compare: Option<Vec<PathBuf>>,
    /// Evaluate the engine built from this corpus folder (default: the configured corpus).
    #[arg(long, conflicts_with = "train")]
    corpus: Option<PathBuf>,
    /// Build a throw-away engine whose intents and exemplars are the labelled lines of this file.
    #[arg(long)]
    train: Option<PathBuf>,
    /// Reference time for relative dates of lines without their own `now`.
    #[arg(long)]
    now: Option<DateTime<FixedOffset>>,
    /// Write the report as JSON to this file (with every wrong line and the reliability bins); with
    /// --compare, the comparison.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a page to this file: the figures, a reliability diagram, per-intent precision and recall,
    /// the confusion matrix and every wrong line.
    #[arg(long)]
    html: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Download and import a known model into the models folder.
    Fetch {
        /// multilingual-e5-small or all-minilm-l6-v2.
        #[arg(default_value = "multilingual-e5-small")]
        name: String,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the models that are installed.
    List,
    /// Time the configured encoder on texts: one per call (p50/p99) and batched (texts/s).
    Bench {
        /// Texts, one per line, or JSON lines with a "text" field.
        #[arg(long, default_value = "eval/dev.jsonl")]
        texts: PathBuf,
        /// Texts per call in the batched pass.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fine-tune the configured model on labelled utterances (contrastive
    /// pairs, CPU) and install the result as a new model; select it with --model.
    Finetune(FinetuneArgs),
}

#[derive(clap::Args)]
struct FinetuneArgs {
    /// Name of the new model folder under the models folder.
    #[arg(long)]
    name: String,
    /// Labelled utterances: JSONL, CSV, or CLINC150 data_full.json (its train + oos_train splits).
    /// Default: the configured corpus.
    #[arg(long)]
    train: Option<PathBuf>,
    /// Passes over the examples.
    #[arg(long)]
    epochs: Option<usize>,
    /// Top transformer layers that learn.
    #[arg(long)]
    trainable_layers: Option<usize>,
    /// Stop after this many minutes, keeping what was learnt.
    #[arg(long)]
    budget_minutes: Option<u64>,
    /// Peak learning rate.
    #[arg(long)]
    learning_rate: Option<f64>,
    /// Weight of the intent-prototype classification loss beside the ranking loss (0: ranking only).
    #[arg(long)]
    class_weight: Option<f32>,
    /// Seed of the batch order (give a new one when continuing from an earlier fine-tune).
    #[arg(long)]
    seed: Option<u64>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let config = cli.config.resolve()?;
    init_tracing(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Serve { addr, corpus } => {
            let corpus_dir = corpus.unwrap_or(config.corpus_dir.clone());
            runtime.block_on(serve(Config { addr: addr.unwrap_or(config.addr), corpus_dir, ..config }))
        }
        Command::Eval(args) => run_eval(&config, args, &runtime),
        Command::Model { command: ModelCommand::Fetch { name, json } } => run_model_fetch(&config, &name, json),
        Command::Model { command: ModelCommand::Finetune(args) } => run_finetune(&config, args),
        Command::Model { command: ModelCommand::List } => run_model_list(&config),
        Command::Model { command: ModelCommand::Bench { texts, batch, json } } => {
            run_model_bench(&config, &texts, batch, json)
        }
        Command::Index { json } => run_index(&config, json),
        Command::Load(args) => runtime.block_on(loadtest::run(args)),
        Command::Practice(args) => runtime.block_on(practice::run(args)),
        Command::Keys { command } => runtime.block_on(async {
            let store = open_store(&config).await?;
            access_cli::run_keys(&config, &store, command).await
        }),
        Command::Agent { command } => {
            runtime.block_on(async { access_cli::run_agent(&open_store(&config).await?, command).await })
        }
        Command::Retrain { json, tolerance } => runtime.block_on(retrain(config, json, tolerance)),
        Command::Stats(args) => run_stats(&config, args, &runtime),
        Command::Widget { command } => access_cli::run_widget(&config, command),
        Command::Versions { json } => run_versions(&config, json),
        Command::Rollback { json } => runtime.block_on(rollback(&config, json)),
    }
}

/// `kefu model fetch NAME`: downloads and imports a known model.
fn run_model_fetch(config: &Config, name: &str, json: bool) -> Result<()> {
    let summary = import::fetch(name.parse()?, &config.models_dir, !json)?;
    // The library of the fast backend comes with every model unless candle is chosen.
    let runtime = match config.engine.backend {
        Backend::Candle => None,
        Backend::Auto | Backend::Onnx => Some(import::fetch_runtime(&config.models_dir, !json)?),
    };
    if json {
        let mut value = serde_json::to_value(&summary)?;
        value["runtime"] = serde_json::to_value(&runtime)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let bytes: u64 = summary.files.iter().map(|f| f.bytes).sum();
        println!(
            "installed {} into {} ({} files, {:.0} MB, dim {}) from {} in {:.1}s",
            summary.name,
            summary.dir.display(),
            summary.files.len(),
            bytes as f64 / 1e6,
            summary.dim,
            summary.source,
            summary.seconds
        );
        if let Some(runtime) = runtime {
            println!(
                "installed ONNX Runtime as {} ({:.0} MB) from {} in {:.1}s",
                runtime.library.display(),
                runtime.bytes as f64 / 1e6,
                runtime.source,
                runtime.seconds
            );
        }
    }
    Ok(())
}

/// `kefu model bench`: the encoder's speed on the texts of a file.
fn run_model_bench(config: &Config, path: &Path, batch: usize, json: bool) -> Result<()> {
    let content = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let texts: Vec<String> = content
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(object)) => object.get("text").and_then(|t| t.as_str()).map(String::from),
            _ => Some(line.to_owned()),
        })
        .collect::<Option<_>>()
        .with_context(|| format!("{}: a JSON line without a \"text\" field", path.display()))?;
    if texts.is_empty() {
        bail!("{} holds no texts", path.display());
    }
    let encoder = load_encoder(config, !json)?;
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let bar = progress::bar(2 * texts.len() as u64, !json, "encoding");
    let timing = kefu::encoder::timing::time_encoder(&encoder, &texts, batch, &bar)?;
    bar.finish_and_clear();
    let runtime = encoder.runtime_name();
    if json {
        let mut value = serde_json::to_value(&timing)?;
        value["backend"] = runtime.into();
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "{runtime}: {} texts; one per call p50 {:.2} ms, p99 {:.2} ms; batches of {}: {:.0} texts/s",
            timing.texts, timing.single_ms_p50, timing.single_ms_p99, timing.batch, timing.batched_texts_per_second
        );
    }
    Ok(())
}

/// `kefu model list`: the model directories installed.
fn run_model_list(config: &Config) -> Result<()> {
    let entries =
        std::fs::read_dir(&config.models_dir).with_context(|| format!("reading {}", config.models_dir.display()))?;
    for entry in entries.flatten() {
        if entry.path().join("config.json").exists() {
            println!("{}", entry.file_name().to_string_lossy());
        }
    }
    Ok(())
}

/// `kefu index`: fits (or loads) the corpus's intent model and reports its cross-validated figures.
fn run_index(config: &Config, json: bool) -> Result<()> {
    let started = Instant::now();
    let corpus = Corpus::load(&config.corpus_dir)?;
    let engine = build_engine(config, corpus, &config.corpus_dir, !json)?;
    let model = engine.model();
    let cal = model.calibration();
    let summary = serde_json::json!({
        "intents": engine.corpus().intents.len(),
        "exemplars": model.exemplars(),
        "cv_in_scope_accuracy": cal.report.in_scope_accuracy,
        "cv_oos_recall": cal.report.oos_recall,
        "oos_threshold": cal.oos_threshold,
        "knn_weight": cal.knn_weight,
        "seconds": started.elapsed().as_secs_f32(),
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "intent model: {} intents, {} exemplars; cross-validated in-scope accuracy {:.3}, oos recall {}; ready in {:.1}s",
            summary["intents"],
            summary["exemplars"],
            cal.report.in_scope_accuracy,
            cal.report.oos_recall.map_or("n/a".into(), |r| format!("{r:.3}")),
            started.elapsed().as_secs_f32()
        );
    }
    Ok(())
}

/// `kefu versions`: every model version, newest first.
fn run_versions(config: &Config, json: bool) -> Result<()> {
    let store = VersionStore::new(&config.learning.versions_dir);
    let (reports, current) = (store.list()?, store.current()?);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"current": current, "versions": reports.iter().rev().collect::<Vec<_>>()})
            )?
        );
    } else {
        print!("{}", versions::table(&reports, current.as_deref()));
    }
    Ok(())
}

/// `kefu rollback`: the previous promoted version becomes current, under
/// the learning lock, so it never races a retrain or another rollback.
async fn rollback(config: &Config, json: bool) -> Result<()> {
    let store = open_store(config).await?;
    let _learning = learning_lock(&store).await?;
    let outcome = VersionStore::new(&config.learning.versions_dir).rollback(Utc::now())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        println!(
            "rolled back {} -> {}; a running server switches within {}s (or POST /v1/admin/reload)",
            outcome.from,
            kefu::learning::describe(&outcome.to),
            config.learning.versions_poll_secs
        );
    }
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn,hnsw_rs=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Installs the configured model when it is missing and is one we know how to fetch.
fn ensure_model(config: &Config, show_progress: bool) -> Result<()> {
    if !config.fetch_missing_model {
        return Ok(());
    }
    let library = onnx::runtime_library(&config.models_dir);
    if config.engine.backend != Backend::Candle && !library.is_file() {
        tracing::info!(library = %library.display(), "ONNX Runtime not installed; fetching it");
        match import::fetch_runtime(&config.models_dir, show_progress) {
            Ok(summary) => tracing::info!(library = %summary.library.display(), "ONNX Runtime installed"),
            // Auto falls back to candle, which needs nothing more.
            Err(e) if config.engine.backend == Backend::Auto => {
                tracing::warn!("cannot install ONNX Runtime, the encoder runs on candle: {e}")
            }
            Err(e) => return Err(e).context("installing ONNX Runtime for --backend onnx"),
        }
    }
    let dir = config.model_dir();
    if dir.exists() {
        return Ok(());
    }
    tracing::info!(model = %config.model, "model not installed; fetching it");
    let known = config.model.parse().with_context(|| format!("model directory {} is missing", dir.display()))?;
    let summary = import::fetch(known, &config.models_dir, show_progress)
        .with_context(|| format!("installing model {} into {}", config.model, config.models_dir.display()))?;
    tracing::info!(model = %summary.name, dir = %summary.dir.display(), seconds = summary.seconds, "model installed");
    Ok(())
}

/// Loads the encoder and builds (or loads) the engine for `corpus`. Blocking.
fn build_engine(config: &Config, corpus: Corpus, catalogue_dir: &Path, show_progress: bool) -> Result<Engine> {
    let (handle, catalogue, settings) = engine_parts(config, catalogue_dir, show_progress)?;
    Ok(Engine::build(corpus, &catalogue, handle, settings, &config.cache_dir(), show_progress)?)
}

/// The learning loop over the configured corpus, encoder and versions folder. Blocking.
fn trainer(config: &Config, show_progress: bool) -> Result<Trainer> {
    let (handle, catalogue, settings) = engine_parts(config, &config.corpus_dir, show_progress)?;
    let paths = TrainerSettings {
        corpus_dir: config.corpus_dir.clone(),
        cache_dir: config.cache_dir(),
        versions_dir: config.learning.versions_dir.clone(),
        eval_sets: config.learning.gate_eval_sets.clone(),
        gate_tolerance: config.learning.gate_tolerance,
    };
    Ok(Trainer::new(paths, catalogue, handle, settings))
}

/// The model thread's queue and batch limits of the configuration.
fn batch_options(config: &Config) -> BatchOptions {
    BatchOptions {
        queue_capacity: config.engine.encoder_queue,
        max_batch_requests: config.engine.batch_max_requests,
        cache_entries: config.engine.embedding_cache,
        ..BatchOptions::default()
    }
}

/// The configured encoder, installed if missing. Blocking.
fn load_encoder(config: &Config, show_progress: bool) -> Result<BertEncoder> {
    ensure_model(config, show_progress)?;
    let encoder = BertEncoder::load_on(&config.model_dir(), &config.encoder_runtime())?;
    tracing::info!(model = %config.model, runtime = encoder.runtime_name(), "encoder loaded");
    kefu::support::memory::release_freed();
    Ok(encoder)
}

/// The configured encoder, installed if missing, on its model thread. Blocking.
fn start_encoder(config: &Config, show_progress: bool) -> Result<EncoderHandle> {
    Ok(EncoderHandle::spawn(Box::new(load_encoder(config, show_progress)?), batch_options(config)))
}

/// The encoder (model thread started), catalogue and engine settings of the configuration. Blocking.
fn engine_parts(
    config: &Config,
    catalogue_dir: &Path,
    show_progress: bool,
) -> Result<(EncoderHandle, Catalogue, EngineSettings)> {
    let handle = start_encoder(config, show_progress)?;
    // A deployment without a catalogue sells no products the product slot could name.
    let catalogue_path = catalogue_dir.join("catalogue.toml");
    let catalogue = if catalogue_path.exists() { Catalogue::load(&catalogue_path)? } else { Catalogue::empty() };
    let settings = EngineSettings {
        timezone: config.tz()?,
        policy: PolicySettings {
            min_answer_confidence: config.engine.min_answer_confidence,
            ..PolicySettings::default()
        },
        max_text_bytes: config.api.max_text_bytes,
        fit: FitOptions { oos_weight: config.engine.oos_weight, ..FitOptions::default() },
        profile: config.profile.clone(),
        correction_min_similarity: config.engine.correction_min_similarity,
        background_oos: config.engine.background_oos,
        ..EngineSettings::default()
    };
    Ok((handle, catalogue, settings))
}

/// How often a server re-reads the corrections in case another replica's signal was lost.
const CORRECTIONS_CATCH_UP: Duration = Duration::from_secs(30);

async fn serve(config: Config) -> Result<()> {
    // Metrics recorded before the recorder is installed would be lost.
    if config.api.metrics {
        tokio::spawn(kefu::telemetry::run_upkeep(kefu::telemetry::install()));
    }
    let store = open_store(&config).await?;
    // Other replicas on the same PostgreSQL signal their corrections and changes.
    tokio::spawn(store.clone().listen_to_replicas());
    // Overdue pushes need only the store, so they start before the model loads.
    if let Some(webhook) = config.webhook_settings()? {
        let notifier = kefu::overdue::SlaNotifier::new(store.clone(), webhook, Arc::new(kefu::overdue::SystemClock))?;
        kefu::overdue::spawn(notifier, Duration::from_secs(config.overdue.check_interval_secs));
    }
    let auth = config.auth_settings()?;
    let settings = ApiSettings {
        max_body_bytes: config.api.max_body_bytes,
        max_in_flight: config.api.max_in_flight,
        request_timeout: Duration::from_millis(config.api.request_timeout_ms),
        turns: kefu::service::turn::TurnSettings {
            ticket_sla: chrono::Duration::minutes(config.tickets.sla_minutes.into()),
            conversation_gap: chrono::Duration::minutes(config.tickets.conversation_gap_minutes.into()),
        },
        auth,
        secure_cookies: config.security.tls_cert.is_some(),
        trusted_proxies: config.trusted_proxies()?,
        stats: config.stats_settings()?,
        widget: config.widget_settings(),
        channels: config.channel_accounts()?,
        rasa_fallback_intent: config.api.rasa_fallback_intent.clone(),
    };
    let state = AppState::new(store.clone(), settings);
    // Replies to messaging platforms leave from the outbox, whatever the model's state.
    tokio::spawn(state.channels().run_sender());
    if state.protected_mode().await? {
        tracing::warn!(
            addr = %config.addr,
            "protected mode: no API key exists, so only clients on this machine (loopback) are answered; \
             add keys with `kefu keys add` or api_keys (KEFU_API_KEYS) to serve a network"
        );
    }
    let tls = match (&config.security.tls_cert, &config.security.tls_key) {
        (Some(cert), Some(key)) => Some(
            axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| format!("loading the TLS certificate {} and key {}", cert.display(), key.display()))?,
        ),
        _ => None,
    };
    let listener = std::net::TcpListener::bind(config.addr).with_context(|| format!("binding {}", config.addr))?;
    listener.set_nonblocking(true)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(addr = %listener.local_addr()?, scheme, "listening; loading model and index (/readyz turns 200 when done)");

    // NOTE: the port opens before the model loads so that /healthz answers at
    // once and /readyz reports loading (503) instead of refusing connections.
    let (failed_tx, mut failed_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
    let loading_state = state.clone();
    // Profiles and ticket_status answers read the customer's turns and tickets from the store.
    let history: Arc<dyn kefu::profile::CustomerHistory> = Arc::new(store.clone());
    tokio::spawn(async move {
        let poll = Duration::from_secs(config.learning.versions_poll_secs);
        match load_and_warm_up(config, history, &store, &loading_state).await {
            Ok(()) => {
                tracing::info!("ready");
                // Learns the corrections other replicas store, and follows
                // `kefu rollback` / `kefu retrain` run beside the server or on another replica.
                tokio::spawn(loading_state.live.clone().follow_corrections(store.clone(), CORRECTIONS_CATCH_UP));
                if !poll.is_zero() {
                    tokio::spawn(loading_state.live.clone().follow_current_version(store, poll));
                }
            }
            Err(err) => drop(failed_tx.send(err)),
        }
    });

    let app = api::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = async move {
        match tls {
            Some(tls) => {
                let handle = axum_server::Handle::new();
                let stopper = handle.clone();
                tokio::spawn(async move {
                    shutdown_signal().await;
                    stopper.graceful_shutdown(Some(Duration::from_secs(10)));
                });
                axum_server::from_tcp_rustls(listener, tls).handle(handle).serve(app).await
            }
            None => {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await
            }
        }
    };
    tokio::select! {
        result = server => result.context("serving HTTP"),
        Ok(err) = &mut failed_rx => Err(err.context("loading the engine")),
    }
}

/// Builds the engine of the current model version (the corpus model when no
/// version is current) off the async threads, connects the enterprise systems,
/// runs one warm-up query, replays the stored corrections, and installs it with
/// the learning loop.
async fn load_and_warm_up(
    config: Config,
    history: Arc<dyn kefu::profile::CustomerHistory>,
    store: &Store,
    state: &AppState,
) -> Result<()> {
    let connectors = enterprise_systems(&config).await?;
    let trainer = tokio::task::spawn_blocking(move || trainer(&config, false))
        .await
        .context("engine loading panicked")??
        .with_serving(move |engine| engine.with_connectors(connectors.clone()).with_history(history.clone()));
    let trainer = Arc::new(trainer);
    let loader = trainer.clone();
    let engine = tokio::task::spawn_blocking(move || loader.current_engine(false))
        .await
        .context("engine loading panicked")??;
    // A fit from scratch frees its embeddings and folds.
    kefu::support::memory::release_freed();
    state.live.install(store, &trainer, engine).await?;
    state.live.set_trainer(trainer);
    Ok(())
}

/// `kefu retrain`: fits, gates and saves a version, with progress and a short summary.
async fn retrain(config: Config, json: bool, tolerance: Option<f64>) -> Result<()> {
    if let Some(t) = tolerance {
        if !(t.is_finite() && (0.0..=1.0).contains(&t)) {
            bail!("--tolerance must be within 0..1, got {t}");
        }
    }
    let store = open_store(&config).await?;
    let _learning = learning_lock(&store).await?;
    let show = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let versions_dir = config.learning.versions_dir.clone();
    let trainer = Arc::new(
        tokio::task::spawn_blocking(move || trainer(&config, show)).await.context("loading the encoder panicked")??,
    );
    let retrained = trainer.retrain(&store, tolerance, show).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&retrained.report)?);
    } else {
        print!("{}", retrained.report);
        println!("report: {}", versions_dir.join(&retrained.report.version).join("report.json").display());
    }
    Ok(())
}

/// The lock retraining and version switching take on the database (on
/// PostgreSQL, across every replica and command).
async fn learning_lock(store: &Store) -> Result<kefu::store::ClusterLock> {
    store
        .try_learning_lock()
        .await?
        .context("another kefu is retraining or rolling back on this database; try again when it is done")
}

/// The enterprise systems data answers use: the HTTP systems when configured, the seeded demo database otherwise.
async fn enterprise_systems(config: &Config) -> Result<Connectors> {
    Ok(match &config.enterprise.http {
        Some(http) => connectors::http::http_connectors(http)?,
        None => connectors::demo::demo_connectors(&config.enterprise.database_url)
            .await
            .with_context(|| format!("opening the demo enterprise database {}", config.enterprise.database_url))?,
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// `kefu stats`: the store's figures, the questions embedded by the bare encoder (no engine fit), the report.
fn run_stats(config: &Config, args: StatsArgs, runtime: &tokio::runtime::Runtime) -> Result<()> {
    use kefu::analytics::{self, ExportFormat, Period};
    let started = Instant::now();
    let settings = config.stats_settings()?;
    let period = Period::parse(args.from.as_deref(), args.to.as_deref(), settings.timezone, Utc::now())?;
    let format =
        args.format.or_else(|| args.out.as_deref().and_then(ExportFormat::from_path)).unwrap_or(ExportFormat::Text);
    let show = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // The bare encoder groups the questions: no intent model is needed for a report.
    let encoder = if args.no_groups { None } else { Some(start_encoder(config, show)?) };
    let embed = async |texts: &[String]| match &encoder {
        Some(encoder) => {
            let bar = progress::bar(texts.len() as u64, show, "embedding");
            let vectors = encoder.embed_all(texts, kefu::encoder::TextKind::Query, |n| bar.inc(n as u64)).await;
            bar.finish_and_clear();
            Ok(vectors?)
        }
        None => Ok(Vec::new()),
    };
    // The corpus names each intent's scenario.
    let taxonomy = Corpus::load(&config.corpus_dir)?.taxonomy;
    let report = runtime.block_on(async {
        let store = open_store(config).await?;
        let channel = args.channel.as_deref();
        anyhow::Ok(
            kefu::service::analytics::report(&store, &settings, period, channel, args.top, &taxonomy, embed).await?,
        )
    })?;
    let bytes = analytics::render(&report, format)?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "{} turns from {} to {}: {} question groups, {} corrections; written to {} in {:.1}s",
                report.turns,
                report.from,
                report.to,
                report.top_questions.len(),
                report.corrections_total,
                path.display(),
                started.elapsed().as_secs_f32()
            );
        }
        None => std::io::Write::write_all(&mut std::io::stdout(), &bytes)?,
    }
    Ok(())
}

fn run_finetune(config: &Config, args: FinetuneArgs) -> Result<()> {
    let lines: Vec<(String, String)> = match &args.train {
        Some(path) => eval::load_labelled(path, SetRole::Train)?.into_iter().map(|l| (l.text, l.intent)).collect(),
        None => Corpus::load(&config.corpus_dir)?.examples.into_iter().map(|e| (e.text, e.intent)).collect(),
    };
    let examples: Vec<(&str, &str)> = lines.iter().map(|(t, i)| (t.as_str(), i.as_str())).collect();
    let defaults = FinetuneOptions::default();
    let opts = FinetuneOptions {
        epochs: args.epochs.unwrap_or(defaults.epochs),
        trainable_layers: args.trainable_layers.unwrap_or(defaults.trainable_layers),
        time_budget_seconds: args.budget_minutes.map_or(defaults.time_budget_seconds, |m| m * 60),
        learning_rate: args.learning_rate.unwrap_or(defaults.learning_rate),
        class_weight: args.class_weight.unwrap_or(defaults.class_weight),
        seed: args.seed.unwrap_or(defaults.seed),
        ..defaults
    };
    ensure_model(config, !args.json)?;
    let report = finetune::finetune(&config.model_dir(), &config.models_dir, &args.name, &examples, &opts, !args.json)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "fine-tuned {} into {} on {} examples ({} intents): {} steps, {:.2} epochs{}, loss {:.3} -> {:.3}, in {:.0}s; use it with --model {}",
            report.base,
            report.dir.display(),
            report.examples,
            report.intents,
            report.steps,
            report.epochs_completed,
            if report.stopped_by_budget { " (time budget reached)" } else { "" },
            report.first_loss,
            report.last_loss,
            report.seconds,
            report.name
        );
    }
    Ok(())
}

fn run_eval(config: &Config, args: EvalArgs, runtime: &tokio::runtime::Runtime) -> Result<()> {
    if let Some([before, after]) = args.compare.as_deref() {
        let read = |path: &Path| -> Result<eval::EvalReport> {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a `kefu eval --json` report", path.display()))
        };
        let comparison = eval::Comparison::new(&read(before)?, &read(after)?);
        print!("{comparison}");
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_vec_pretty(&comparison)?)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("comparison written to {}", path.display());
        }
        return Ok(());
    }
    let test = args.test.context("--test is required")?;
    let lines = eval::load_labelled(&test, SetRole::Test)?;
    let (corpus, catalogue_dir, validation) = match (&args.train, &args.corpus) {
        (Some(train), _) => {
            let train_lines = eval::load_labelled(train, SetRole::Train)?;
            // Thresholds are fitted on the file's validation split when it has
            // one (CLINC150: val + oos_val), never on the test lines.
            let validation = eval::load_validation(train)?
                .map(|lines| Corpus::from_labelled(lines.iter().map(|l| (l.text.as_str(), l.intent.as_str()))))
                .transpose()?;
            (
                Corpus::from_labelled(train_lines.iter().map(|l| (l.text.as_str(), l.intent.as_str())))?,
                config.corpus_dir.clone(),
                validation,
            )
        }
        (None, Some(dir)) => (Corpus::load(dir)?, dir.clone(), None),
        (None, None) => (Corpus::load(&config.corpus_dir)?, config.corpus_dir.clone(), None),
    };
    let show = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (handle, catalogue, settings) = engine_parts(config, &catalogue_dir, show)?;
    let engine = Engine::build(
        corpus,
        &catalogue,
        handle,
        EngineSettings { validation, ..settings },
        &config.cache_dir(),
        show,
    )?;

    let bar = progress::bar(lines.len() as u64, show, "evaluating");
    let default_now = args.now.unwrap_or_else(|| Utc::now().fixed_offset());
    let predictions: Vec<Prediction> = runtime.block_on(async {
        let mut out = Vec::with_capacity(lines.len());
        for line in &lines {
            let prediction = kefu::learning::predict(&engine, line, default_now)
                .await
                .with_context(|| format!("answering {:?}", line.text))?;
            out.push(prediction);
            bar.inc(1);
        }
        Ok::<_, anyhow::Error>(out)
    })?;
    bar.finish_and_clear();
    let report = eval::score(&lines, &predictions)?;
    println!("{report}");
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    if let Some(path) = args.html {
        std::fs::write(&path, eval::html::render(&report, &test.display().to_string()))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("page written to {}", path.display());
    }
    Ok(())
}

/// Opens the configured database; errors name it without its password.
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let (vault, created) = config.vault().context("loading the data keys")?;
    if let Some(file) = created {
        tracing::warn!(file = %file.display(), "made a new data key for personal data at rest; back the file up, without it the stored texts cannot be read");
    }
    Store::open(&config.store.database_url, Arc::new(vault))
        .await
        .with_context(|| format!("opening the database {}", kefu::store::redacted_url(&config.store.database_url)))
}
