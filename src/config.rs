//! The one typed configuration: defaults that run the demo, overridden by a
//! TOML file (`--config`, or `kefu.toml` in the working directory), then by
//! environment variables (`KEFU_*`), then by command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting `{field}`: {message}")]
    Invalid { field: &'static str, message: String },
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Every setting of kefu.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub addr: SocketAddr,
    /// Folder of the corpus (taxonomy, scenarios, out-of-scope examples, catalogue).
    pub corpus_dir: PathBuf,
    /// Folder holding model directories.
    pub models_dir: PathBuf,
    /// Model directory name under `models_dir`.
    pub model: String,
    /// Where fitted intent models are cached (default: `<corpus_dir>/.index`).
    pub cache_dir: Option<PathBuf>,
    /// Database URL; SQLite by default.
    pub database_url: String,
    /// The demo enterprise systems' database (orders, stock, refunds, repairs, CRM),
    /// seeded on first start; used unless `enterprise_http` is set.
    pub enterprise_database_url: String,
    /// Real enterprise systems over HTTP, one `[enterprise_http.<system>]` table each
    /// (orders, inventory, refunds, after_sales, crm) with base_url, auth_header, timeout_ms, retries, backoff_ms.
    pub enterprise_http: Option<crate::connectors::http::HttpConnectorSettings>,
    /// Customer profile tag rules, `[[profile.rules]]` tables of tag, metric,
    /// op (> >= < <=), threshold and optional hint_zh / hint_en; given rules
    /// replace the defaults (vip: spend_12m_cny > 10000; frequent_after_sales:
    /// after_sales_contacts_90d >= 2). See `src/profile.rs`.
    pub profile: crate::profile::ProfileRules,
    /// Minutes within which a new hand-off ticket must be picked up.
    pub ticket_sla_minutes: u32,
    /// A customer's new session (say, on another channel) continues their last
    /// turn when it is at most this many minutes old.
    pub conversation_gap_minutes: u32,
    /// Bearer token for the admin routes (retrain, reload, rollback); they are open when unset.
    pub admin_token: Option<String>,
    /// Where overdue tickets are announced (JSON POST, once per ticket); no pushes when unset.
    /// May carry a secret (user info, token): it is never logged whole.
    pub sla_webhook_url: Option<String>,
    /// Seconds between two sweeps for overdue tickets.
    pub sla_check_interval_secs: u64,
    /// Retries of a failed webhook POST within one sweep.
    pub sla_webhook_retries: u32,
    /// Limit for one webhook POST.
    pub sla_webhook_timeout_ms: u64,
    /// Delay before the first retry of a sweep; doubled before each further one.
    pub sla_webhook_backoff_ms: u64,
    /// Sweeps that may fail to deliver a ticket before it is given up on.
    pub sla_webhook_max_attempts: u32,
    /// Install a known model on start when it is missing.
    pub fetch_missing_model: bool,
    /// IANA zone that relative dates are read in.
    pub timezone: String,
    /// Longest accepted message, in bytes.
    pub max_text_bytes: usize,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Requests in flight before new ones get 429.
    pub max_in_flight: usize,
    /// Whole-request timeout.
    pub request_timeout_ms: u64,
    /// Below this calibrated confidence the bot asks instead of answering.
    pub min_answer_confidence: f32,
    /// When fitting the out-of-scope threshold, the weight of out-of-scope
    /// recall against in-scope accuracy (1 = equal).
    pub oos_weight: f32,
    /// Where retrained model versions are kept, with their reports and the `current` pointer.
    pub versions_dir: PathBuf,
    /// Largest drop of any gated metric (intent, decision, oos recall, held-out
    /// corrections) a retrained version may show and still be promoted.
    pub gate_tolerance: f64,
    /// Labelled sets the eval gate compares versions on (the `kefu eval` formats).
    pub gate_eval_sets: Vec<PathBuf>,
    /// Cosine similarity to an agent-corrected text at or above which the
    /// correction decides the intent.
    pub correction_min_similarity: f32,
    /// Seconds between two looks at the version pointer by a running server
    /// (0: only `POST /v1/admin/reload` switches versions).
    pub versions_poll_secs: u64,
    /// Messages waiting for the model thread before callers get 429.
    pub encoder_queue: usize,
    /// Most messages embedded in one batch.
    pub batch_max_requests: usize,
    pub log_format: LogFormat,
    /// Cosine similarity at or above which questions given the same intent are grouped together in `/v1/stats`.
    pub stats_cluster_threshold: f32,
    /// Most distinct question texts (the most recent) grouped per report.
    pub stats_max_questions: usize,
    /// Time limit of an analytics request (`/v1/stats`, its export, `/v1/optimise`).
    pub stats_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            corpus_dir: PathBuf::from("corpus"),
            models_dir: PathBuf::from("models"),
            model: "multilingual-e5-small".into(),
            cache_dir: None,
            database_url: "sqlite://data/kefu.db".into(),
            ticket_sla_minutes: 120,
            conversation_gap_minutes: 30,
            admin_token: None,
            sla_webhook_url: None,
            sla_check_interval_secs: 30,
            sla_webhook_retries: 3,
            sla_webhook_timeout_ms: 5_000,
            sla_webhook_backoff_ms: 500,
            sla_webhook_max_attempts: 100,
            enterprise_database_url: "sqlite://data/demo.db".into(),
            enterprise_http: None,
            profile: crate::profile::ProfileRules::default(),
            fetch_missing_model: true,
            timezone: "Asia/Shanghai".into(),
            max_text_bytes: 4096,
            max_body_bytes: 64 * 1024,
            max_in_flight: 256,
            request_timeout_ms: 10_000,
            min_answer_confidence: 0.5,
            oos_weight: 0.2,
            versions_dir: PathBuf::from("data/versions"),
            gate_tolerance: 0.01,
            gate_eval_sets: vec![PathBuf::from("eval/dev.jsonl")],
            correction_min_similarity: 0.95,
            versions_poll_secs: 5,
            encoder_queue: 512,
            batch_max_requests: 32,
            log_format: LogFormat::Text,
            stats_cluster_threshold: 0.92,
            stats_max_questions: 2000,
            stats_timeout_ms: 120_000,
        }
    }
}

/// Flags (and their environment variables) that override the file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// TOML config file (default: kefu.toml in the working directory, if present).
    #[arg(long, env = "KEFU_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[arg(long, env = "KEFU_CORPUS_DIR", global = true)]
    pub corpus_dir: Option<PathBuf>,
    #[arg(long, env = "KEFU_MODELS_DIR", global = true)]
    pub models_dir: Option<PathBuf>,
    /// Model directory name under the models dir.
    #[arg(long, env = "KEFU_MODEL", global = true)]
    pub model: Option<String>,
    #[arg(long, env = "KEFU_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    #[arg(long, env = "KEFU_ENTERPRISE_DATABASE_URL", global = true)]
    pub enterprise_database_url: Option<String>,
    #[arg(long, env = "KEFU_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    #[arg(long, env = "KEFU_TIMEZONE", global = true)]
    pub timezone: Option<String>,
    #[arg(long, env = "KEFU_LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
    #[arg(long, env = "KEFU_MIN_ANSWER_CONFIDENCE", global = true)]
    pub min_answer_confidence: Option<f32>,
    #[arg(long, env = "KEFU_OOS_WEIGHT", global = true)]
    pub oos_weight: Option<f32>,
    #[arg(long, env = "KEFU_MAX_IN_FLIGHT", global = true)]
    pub max_in_flight: Option<usize>,
    /// Folder of retrained model versions.
    #[arg(long, env = "KEFU_VERSIONS_DIR", global = true)]
    pub versions_dir: Option<PathBuf>,
    /// Largest drop of a gated metric a retrain may show and be promoted.
    #[arg(long, env = "KEFU_GATE_TOLERANCE", global = true)]
    pub gate_tolerance: Option<f64>,
    #[arg(long, env = "KEFU_VERSIONS_POLL_SECS", global = true)]
    pub versions_poll_secs: Option<u64>,
    /// Bearer token the admin routes require.
    #[arg(long, env = "KEFU_ADMIN_TOKEN", global = true, hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Minutes within which a hand-off ticket must be picked up.
    #[arg(long, env = "KEFU_TICKET_SLA_MINUTES", global = true)]
    pub ticket_sla_minutes: Option<u32>,
    /// Webhook that overdue tickets are pushed to (http or https URL).
    #[arg(long, env = "KEFU_SLA_WEBHOOK_URL", global = true, hide_env_values = true)]
    pub sla_webhook_url: Option<String>,
    #[arg(long, env = "KEFU_SLA_CHECK_INTERVAL_SECS", global = true)]
    pub sla_check_interval_secs: Option<u64>,
    #[arg(long, env = "KEFU_SLA_WEBHOOK_RETRIES", global = true)]
    pub sla_webhook_retries: Option<u32>,
    #[arg(long, env = "KEFU_SLA_WEBHOOK_TIMEOUT_MS", global = true)]
    pub sla_webhook_timeout_ms: Option<u64>,
    #[arg(long, env = "KEFU_SLA_WEBHOOK_BACKOFF_MS", global = true)]
    pub sla_webhook_backoff_ms: Option<u64>,
    #[arg(long, env = "KEFU_SLA_WEBHOOK_MAX_ATTEMPTS", global = true)]
    pub sla_webhook_max_attempts: Option<u32>,
}

impl ConfigArgs {
    /// Defaults, then the file, then these flags and environment variables.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let default_file = Path::new("kefu.toml");
        let file = self.config.clone().or_else(|| default_file.exists().then(|| default_file.to_path_buf()));
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse { path, message: e.to_string() })?
            }
            None => Config::default(),
        };
        macro_rules! apply {
            ($($field:ident),*) => { $(if let Some(v) = &self.$field { config.$field = v.clone(); })* };
        }
        apply!(corpus_dir, models_dir, model, database_url, enterprise_database_url, timezone, log_format, min_answer_confidence, oos_weight, max_in_flight);
        if let Some(dir) = &self.cache_dir {
            config.cache_dir = Some(dir.clone());
        }
        apply!(ticket_sla_minutes, sla_check_interval_secs, sla_webhook_retries, sla_webhook_timeout_ms, sla_webhook_backoff_ms, sla_webhook_max_attempts);
        if let Some(url) = &self.sla_webhook_url {
            // An empty value (e.g. KEFU_SLA_WEBHOOK_URL=) turns the pushes off.
            config.sla_webhook_url = Some(url.clone()).filter(|u| !u.trim().is_empty());
        }
        apply!(versions_dir, gate_tolerance, versions_poll_secs);
        if let Some(token) = &self.admin_token {
            config.admin_token = Some(token.clone()).filter(|t| !t.is_empty());
        }
        config.validate()?;
        Ok(config)
    }
}

/// Parses an http(s) URL setting with a host. The messages never repeat the
/// text, since a URL may carry a secret (user info, a token in the query).
pub fn parse_http_url(field: &'static str, text: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(text).map_err(|e| ConfigError::Invalid { field, message: format!("not a URL ({e})") })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::Invalid { field, message: "must be an http or https URL with a host".into() });
    }
    Ok(url)
}

impl Config {
    /// The model directory in use.
    pub fn model_dir(&self) -> PathBuf {
        self.models_dir.join(&self.model)
    }

    /// Where fitted intent models are cached.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| self.corpus_dir.join(".index"))
    }

    /// The SLA webhook; None when no `sla_webhook_url` is set.
    pub fn webhook_settings(&self) -> Result<Option<crate::overdue::WebhookSettings>, ConfigError> {
        let Some(url) = &self.sla_webhook_url else { return Ok(None) };
        Ok(Some(crate::overdue::WebhookSettings {
            url: parse_http_url("sla_webhook_url", url)?,
            retries: self.sla_webhook_retries,
            timeout: std::time::Duration::from_millis(self.sla_webhook_timeout_ms),
            backoff: std::time::Duration::from_millis(self.sla_webhook_backoff_ms),
            max_attempts: self.sla_webhook_max_attempts,
            batch: 100,
        }))
    }

    /// Settings of the analytics (`/v1/stats`, `kefu stats`).
    pub fn stats_settings(&self) -> Result<crate::analytics::StatsSettings, ConfigError> {
        Ok(crate::analytics::StatsSettings {
            timezone: self.tz()?,
            cluster_threshold: self.stats_cluster_threshold,
            max_questions: self.stats_max_questions,
            timeout: std::time::Duration::from_millis(self.stats_timeout_ms),
        })
    }

    /// The time zone, parsed.
    pub fn tz(&self) -> Result<chrono_tz::Tz, ConfigError> {
        self.timezone.parse().map_err(|_| ConfigError::Invalid { field: "timezone", message: format!("{:?} is not an IANA time zone", self.timezone) })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.tz()?;
        self.profile.validate().map_err(|e| ConfigError::Invalid { field: "profile.rules", message: e.to_string() })?;
        if !(self.oos_weight >= 0.0 && self.oos_weight.is_finite()) {
            return Err(ConfigError::Invalid { field: "oos_weight", message: "must be a finite number >= 0".into() });
        }
        if !(0.0..=1.0).contains(&self.min_answer_confidence) {
            return Err(ConfigError::Invalid { field: "min_answer_confidence", message: "must be within 0..1".into() });
        }
        for (field, value) in [
            ("max_in_flight", self.max_in_flight),
            ("max_text_bytes", self.max_text_bytes),
            ("encoder_queue", self.encoder_queue),
            ("batch_max_requests", self.batch_max_requests),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid { field, message: "must be at least 1".into() });
            }
        }
        if let Some(url) = &self.sla_webhook_url {
            parse_http_url("sla_webhook_url", url)?;
        }
        for (field, value) in [
            ("sla_check_interval_secs", self.sla_check_interval_secs),
            ("sla_webhook_timeout_ms", self.sla_webhook_timeout_ms),
            ("sla_webhook_max_attempts", self.sla_webhook_max_attempts.into()),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid { field, message: "must be at least 1".into() });
            }
        }
        if !(self.stats_cluster_threshold > 0.0 && self.stats_cluster_threshold <= 1.0) {
            return Err(ConfigError::Invalid { field: "stats_cluster_threshold", message: "must be within (0, 1]".into() });
        }
        if self.stats_timeout_ms == 0 {
            return Err(ConfigError::Invalid { field: "stats_timeout_ms", message: "must be at least 1".into() });
        }
        if !(self.gate_tolerance.is_finite() && (0.0..=1.0).contains(&self.gate_tolerance)) {
            return Err(ConfigError::Invalid { field: "gate_tolerance", message: "must be within 0..1".into() });
        }
        if self.gate_eval_sets.is_empty() {
            return Err(ConfigError::Invalid { field: "gate_eval_sets", message: "the eval gate needs at least one eval set".into() });
        }
        if !(self.correction_min_similarity > 0.0 && self.correction_min_similarity <= 1.0) {
            return Err(ConfigError::Invalid { field: "correction_min_similarity", message: "must be within (0, 1]".into() });
        }
        if self.max_body_bytes < self.max_text_bytes {
            return Err(ConfigError::Invalid { field: "max_body_bytes", message: "must be at least max_text_bytes".into() });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_checked_and_errors_never_show_secrets() {
        let config = |url: &str| Config { sla_webhook_url: Some(url.into()), ..Config::default() };
        let settings = config("https://hooks.example.com/kefu").webhook_settings().unwrap().unwrap();
        assert_eq!((settings.url.as_str(), settings.retries, settings.max_attempts), ("https://hooks.example.com/kefu", 3, 100));
        assert!(Config::default().webhook_settings().unwrap().is_none(), "no webhook, no pushes");
        for bad in ["ftp://hooks.example.com/x", "hooks.example.com/x", "http://", "mailto:ops@example.com"] {
            assert!(config(bad).webhook_settings().is_err(), "{bad}");
        }
        let err = config("ftp://ops:hunter2@hooks.example.com/x").webhook_settings().unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn defaults_run_the_demo() {
        let config = ConfigArgs::default().resolve().unwrap();
        assert_eq!(config.model_dir(), PathBuf::from("models/multilingual-e5-small"));
        assert_eq!(config.cache_dir(), PathBuf::from("corpus/.index"));
        assert_eq!(config.tz().unwrap(), chrono_tz::Asia::Shanghai);
    }

    #[test]
    fn file_then_flags_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kefu.toml");
        std::fs::write(&path, "model = \"all-minilm-l6-v2\"\ntimezone = \"Europe/Berlin\"\nmax_text_bytes = 100\n").unwrap();
        let args = ConfigArgs { config: Some(path), timezone: Some("UTC".into()), ..Default::default() };
        let config = args.resolve().unwrap();
        assert_eq!(config.model, "all-minilm-l6-v2");
        assert_eq!(config.timezone, "UTC");
        assert_eq!(config.max_text_bytes, 100);
    }

    #[test]
    fn profile_rules_come_from_the_file_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kefu.toml");
        assert_eq!(ConfigArgs::default().resolve().unwrap().profile.rules.len(), 2);
        std::fs::write(&path, "[[profile.rules]]\ntag = \"vip\"\nmetric = \"spend_12m_cny\"\nop = \">=\"\nthreshold = 5000\n").unwrap();
        let config = ConfigArgs { config: Some(path.clone()), ..Default::default() }.resolve().unwrap();
        assert_eq!(config.profile.rules.len(), 1);
        assert_eq!(config.profile.rules[0].threshold, 5000.0);
        std::fs::write(&path, "[[profile.rules]]\ntag = \"vip\"\nmetric = \"spend_12m_cny\"\nop = \">\"\nthreshold = 1\nhint_zh = \"{name}\"\n").unwrap();
        let err = ConfigArgs { config: Some(path), ..Default::default() }.resolve().unwrap_err();
        assert!(err.to_string().contains("profile.rules") && err.to_string().contains("{name}"), "{err}");
    }

    #[test]
    fn bad_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kefu.toml");
        std::fs::write(&path, "timezone = \"Mars/Olympus\"\n").unwrap();
        let err = ConfigArgs { config: Some(path.clone()), ..Default::default() }.resolve().unwrap_err();
        assert!(err.to_string().contains("timezone"), "{err}");
        std::fs::write(&path, "sla_webhook_url = \"ftp://ops:hunter2@hooks.example.com/sla\"\n").unwrap();
        let err = ConfigArgs { config: Some(path.clone()), ..Default::default() }.resolve().unwrap_err().to_string();
        assert!(err.contains("sla_webhook_url") && !err.contains("hunter2"), "{err}");
        std::fs::write(&path, "no_such_setting = 1\n").unwrap();
        let err = ConfigArgs { config: Some(path), ..Default::default() }.resolve().unwrap_err();
        assert!(err.to_string().contains("no_such_setting"), "{err}");
    }
}
