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
    /// Minutes within which a new hand-off ticket must be picked up.
    pub ticket_sla_minutes: u32,
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
    /// Messages waiting for the model thread before callers get 429.
    pub encoder_queue: usize,
    /// Most messages embedded in one batch.
    pub batch_max_requests: usize,
    pub log_format: LogFormat,
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
            enterprise_database_url: "sqlite://data/demo.db".into(),
            enterprise_http: None,
            fetch_missing_model: true,
            timezone: "Asia/Shanghai".into(),
            max_text_bytes: 4096,
            max_body_bytes: 64 * 1024,
            max_in_flight: 256,
            request_timeout_ms: 10_000,
            min_answer_confidence: 0.5,
            oos_weight: 0.2,
            encoder_queue: 512,
            batch_max_requests: 32,
            log_format: LogFormat::Text,
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
        config.validate()?;
        Ok(config)
    }
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

    /// The time zone, parsed.
    pub fn tz(&self) -> Result<chrono_tz::Tz, ConfigError> {
        self.timezone
            .parse()
            .map_err(|_| ConfigError::Invalid { field: "timezone", message: format!("{:?} is not an IANA time zone", self.timezone) })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.tz()?;
        if !(self.oos_weight >= 0.0 && self.oos_weight.is_finite()) {
            return Err(ConfigError::Invalid { field: "oos_weight", message: "must be a finite number >= 0".into() });
        }
        if !(0.0..=1.0).contains(&self.min_answer_confidence) {
            return Err(ConfigError::Invalid { field: "min_answer_confidence", message: "must be within 0..1".into() });
        }
        for (field, value) in [("max_in_flight", self.max_in_flight), ("max_text_bytes", self.max_text_bytes), ("encoder_queue", self.encoder_queue), ("batch_max_requests", self.batch_max_requests)] {
            if value == 0 {
                return Err(ConfigError::Invalid { field, message: "must be at least 1".into() });
            }
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
    fn bad_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kefu.toml");
        std::fs::write(&path, "timezone = \"Mars/Olympus\"\n").unwrap();
        let err = ConfigArgs { config: Some(path.clone()), ..Default::default() }.resolve().unwrap_err();
        assert!(err.to_string().contains("timezone"), "{err}");
        std::fs::write(&path, "no_such_setting = 1\n").unwrap();
        let err = ConfigArgs { config: Some(path), ..Default::default() }.resolve().unwrap_err();
        assert!(err.to_string().contains("no_such_setting"), "{err}");
    }
}
