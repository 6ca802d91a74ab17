//! The `kefu` binary: configuration, tracing, engine construction, and the
//! `serve`, `eval`, `model`, `index` and `load` commands.

mod load;

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
use kefu::encoder::{import, BatchOptions, BertEncoder, EncoderHandle};
use kefu::engine::{progress_bar, Engine, EngineSettings, Query};
use kefu::eval::{self, Prediction, SetRole};
use kefu::nlu::intent::FitOptions;
use kefu::nlu::slots::Catalogue;
use kefu::policy::PolicySettings;
use kefu::store::Store;

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
    Load(load::LoadArgs),
}

#[derive(clap::Args)]
struct EvalArgs {
    /// Labelled test set: JSONL, CSV (text,label) or CLINC150 data_full.json.
    #[arg(long)]
    test: PathBuf,
    /// Evaluate the engine built from this corpus folder (default: the configured corpus).
    #[arg(long, conflicts_with = "train")]
    corpus: Option<PathBuf>,
    /// Build a throw-away engine whose intents and exemplars are the labelled lines of this file.
    #[arg(long)]
    train: Option<PathBuf>,
    /// Reference time for relative dates of lines without their own `now`.
    #[arg(long)]
    now: Option<DateTime<FixedOffset>>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
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
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let config = cli.config.resolve()?;
    init_tracing(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Serve { addr } => runtime.block_on(serve(Config { addr: addr.unwrap_or(config.addr), ..config })),
        Command::Eval(args) => run_eval(&config, args, &runtime),
        Command::Model { command: ModelCommand::Fetch { name, json } } => {
            let summary = import::fetch(name.parse()?, &config.models_dir, !json)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                let bytes: u64 = summary.files.iter().map(|f| f.bytes).sum();
                println!(
                    "installed {} into {} ({} files, {:.0} MB, dim {}) from {} in {:.1}s",
                    summary.name, summary.dir.display(), summary.files.len(), bytes as f64 / 1e6, summary.dim, summary.source, summary.seconds
                );
            }
            Ok(())
        }
        Command::Model { command: ModelCommand::List } => {
            let entries = std::fs::read_dir(&config.models_dir).with_context(|| format!("reading {}", config.models_dir.display()))?;
            for entry in entries.flatten() {
                if entry.path().join("config.json").exists() {
                    println!("{}", entry.file_name().to_string_lossy());
                }
            }
            Ok(())
        }
        Command::Index { json } => {
            let started = Instant::now();
            let corpus = Corpus::load(&config.corpus_dir)?;
            let engine = build_engine(&config, corpus, &config.corpus_dir, !json)?;
            let cal = engine.model().calibration();
            let summary = serde_json::json!({
                "intents": engine.corpus().intents.len(),
                "exemplars": engine.model().exemplars(),
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
                    summary["intents"], summary["exemplars"], cal.report.in_scope_accuracy,
                    cal.report.oos_recall.map_or("n/a".into(), |r| format!("{r:.3}")), started.elapsed().as_secs_f32()
                );
            }
            Ok(())
        }
        Command::Load(args) => runtime.block_on(load::run(args)),
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn,hnsw_rs=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Installs the configured model when it is missing and is one we know how to fetch.
fn ensure_model(config: &Config, show_progress: bool) -> Result<()> {
    let dir = config.model_dir();
    if dir.exists() || !config.fetch_missing_model {
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
    ensure_model(config, show_progress)?;
    let encoder = BertEncoder::load(&config.model_dir())?;
    let handle = EncoderHandle::spawn(
        Box::new(encoder),
        BatchOptions { queue_capacity: config.encoder_queue, max_batch_requests: config.batch_max_requests, ..BatchOptions::default() },
    );
    let catalogue_path = catalogue_dir.join("catalogue.toml");
    let catalogue_path = if catalogue_path.exists() { catalogue_path } else { config.corpus_dir.join("catalogue.toml") };
    let catalogue = Catalogue::load(&catalogue_path)?;
    let settings = EngineSettings {
        timezone: config.tz()?,
        policy: PolicySettings { min_answer_confidence: config.min_answer_confidence, ..PolicySettings::default() },
        max_text_bytes: config.max_text_bytes,
        fit: FitOptions { oos_weight: config.oos_weight, ..FitOptions::default() },
        ..EngineSettings::default()
    };
    Ok(Engine::build(corpus, &catalogue, handle, settings, &config.cache_dir(), show_progress)?)
}

async fn serve(config: Config) -> Result<()> {
    let store = Store::open(&config.database_url).await.with_context(|| format!("opening the database {}", config.database_url))?;
    let settings = ApiSettings {
        max_body_bytes: config.max_body_bytes,
        max_in_flight: config.max_in_flight,
        request_timeout: Duration::from_millis(config.request_timeout_ms),
        ticket_sla: chrono::Duration::minutes(config.ticket_sla_minutes.into()),
    };
    let state = AppState::new(store, settings);
    let listener = tokio::net::TcpListener::bind(config.addr).await.with_context(|| format!("binding {}", config.addr))?;
    tracing::info!(addr = %listener.local_addr()?, "listening; loading model and index (/readyz turns 200 when done)");

    // NOTE: the port opens before the model loads so that /healthz answers at
    // once and /readyz reports loading (503) instead of refusing connections.
    let (failed_tx, mut failed_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
    let loading_state = state.clone();
    tokio::spawn(async move {
        match load_and_warm_up(config).await {
            Ok(engine) => {
                loading_state.set_engine(Arc::new(engine));
                tracing::info!("ready");
            }
            Err(err) => drop(failed_tx.send(err)),
        }
    });

    let server = axum::serve(listener, api::app(state)).with_graceful_shutdown(shutdown_signal());
    tokio::select! {
        result = server => result.context("serving HTTP"),
        Ok(err) = &mut failed_rx => Err(err.context("loading the engine")),
    }
}

/// Builds the engine off the async threads, connects the enterprise systems and runs one warm-up query.
async fn load_and_warm_up(config: Config) -> Result<Engine> {
    let connectors = enterprise_systems(&config).await?;
    let engine = tokio::task::spawn_blocking(move || -> Result<Engine> {
        let corpus = Corpus::load(&config.corpus_dir)?;
        build_engine(&config, corpus, &config.corpus_dir, false)
    })
    .await
    .context("engine loading panicked")??
    .with_connectors(connectors);
    engine.warm_up().await?;
    Ok(engine)
}

/// The enterprise systems data answers use: the HTTP systems when configured, the seeded demo database otherwise.
async fn enterprise_systems(config: &Config) -> Result<Connectors> {
    Ok(match &config.enterprise_http {
        Some(http) => connectors::http::http_connectors(http)?,
        None => connectors::demo::demo_connectors(&config.enterprise_database_url)
            .await
            .with_context(|| format!("opening the demo enterprise database {}", config.enterprise_database_url))?,
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

fn run_eval(config: &Config, args: EvalArgs, runtime: &tokio::runtime::Runtime) -> Result<()> {
    let lines = eval::load_labelled(&args.test, SetRole::Test)?;
    let (corpus, catalogue_dir) = match (&args.train, &args.corpus) {
        (Some(train), _) => {
            let train_lines = eval::load_labelled(train, SetRole::Train)?;
            (Corpus::from_labelled(train_lines.iter().map(|l| (l.text.as_str(), l.intent.as_str())))?, config.corpus_dir.clone())
        }
        (None, Some(dir)) => (Corpus::load(dir)?, dir.clone()),
        (None, None) => (Corpus::load(&config.corpus_dir)?, config.corpus_dir.clone()),
    };
    let show = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let engine = build_engine(config, corpus, &catalogue_dir, show)?;

    let bar = progress_bar(lines.len() as u64, show, "evaluating");
    let default_now = args.now.unwrap_or_else(|| Utc::now().fixed_offset());
    let predictions: Vec<Prediction> = runtime.block_on(async {
        let mut out = Vec::with_capacity(lines.len());
        for line in &lines {
            let started = Instant::now();
            let trace_id = uuid::Uuid::new_v4().simple().to_string();
            let query = Query { text: &line.text, scenario: None, now: line.now.unwrap_or(default_now), customer_id: None, previous: None, trace_id: &trace_id };
            let prediction = match engine.answer(query).await {
                Ok(outcome) => Prediction {
                    intent: outcome.intent,
                    decision: outcome.action.as_str().to_string(),
                    lead: outcome.lead,
                    slots: outcome.slots.to_json(),
                    latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                },
                // A line the engine refuses (empty, oversize) is one it does not answer.
                Err(kefu::engine::EngineError::Invalid(_)) => Prediction {
                    intent: kefu::corpus::OOS.into(),
                    decision: "clarify".into(),
                    latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                    ..Prediction::default()
                },
                Err(err) => bail!("answering {:?}: {err}", line.text),
            };
            out.push(prediction);
            bar.inc(1);
        }
        Ok(out)
    })?;
    bar.finish_and_clear();
    let report = eval::score(&lines, &predictions)?;
    println!("{report}");
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?).with_context(|| format!("writing {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    Ok(())
}
