//! The one typed configuration: defaults that run the demo, overridden by a
//! TOML file (`--config`, or `kefu.toml` in the working directory), then by
//! environment variables (`KEFU_*`), then by command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// Every setting of kefu: what to serve at the top, then one section per
/// part of the system. Each section's defaults run the demo.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub addr: SocketAddr,
    /// Folder of the corpus (taxonomy, scenarios, out-of-scope examples, replies, catalogue).
    pub corpus_dir: PathBuf,
    /// Folder holding model directories.
    pub models_dir: PathBuf,
    /// Model directory name under `models_dir`.
    pub model: String,
    /// Install a known model on start when it is missing.
    pub fetch_missing_model: bool,
    /// Where fitted intent models are cached (default: `<corpus_dir>/.index`).
    pub cache_dir: Option<PathBuf>,
    /// IANA zone that relative dates are read in and days are counted in.
    pub timezone: String,
    pub log_format: LogFormat,
    pub store: StoreConfig,
    pub enterprise: EnterpriseConfig,
    /// Customer profile tag rules, `[[profile.rules]]` tables of tag, metric,
    /// op (> >= < <=), threshold and optional hint_zh / hint_en; given rules
    /// replace the defaults (vip: spend_12m_cny > 10000; frequent_after_sales:
    /// after_sales_contacts_90d >= 2). See `src/profile.rs`.
    pub profile: crate::profile::ProfileRules,
    pub api: ApiConfig,
    pub engine: EngineConfig,
    pub tickets: TicketsConfig,
    pub overdue: OverdueConfig,
    pub learning: LearningConfig,
    pub analytics: AnalyticsConfig,
    pub security: SecurityConfig,
    pub widget: WidgetConfig,
    pub channels: ChannelsConfig,
}

/// `[channels]`: the messaging platforms kefu receives from and replies to.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelsConfig {
    /// How long a platform's callback waits for the bot before the reply
    /// goes through the outbox instead (WeChat gives up after 5 s); 0 sends
    /// every reply through the outbox.
    pub passive_reply_ms: u64,
    /// Retries of a reply a platform did not take (network, busy), before it is marked failed.
    pub send_retries: u32,
    /// Wait before the first retry; each next one doubles.
    pub send_backoff_ms: u64,
    /// Timeout of one call to a platform's API.
    pub send_timeout_ms: u64,
    /// WeChat Official Accounts, one `[channels.wechat.<account>]` table each;
    /// the callback URL is `/v1/channels/wechat/<account>`.
    pub wechat: std::collections::BTreeMap<String, WechatAccountConfig>,
    /// WeCom 微信客服 accounts, one `[channels.wecom.<account>]` table each;
    /// the callback URL is `/v1/channels/wecom/<account>`.
    pub wecom: std::collections::BTreeMap<String, WecomAccountConfig>,
    /// Signed webhook gateway accounts (the company's own app, bridges), one
    /// `[channels.gateway.<account>]` table each; the URL is `/v1/channels/gateway/<account>`.
    pub gateway: std::collections::BTreeMap<String, GatewayAccountConfig>,
    /// Douyin enterprise accounts, one `[channels.douyin.<account>]` table
    /// each; the webhook URL is `/v1/channels/douyin/<account>`.
    pub douyin: std::collections::BTreeMap<String, DouyinAccountConfig>,
    /// Chatwoot inboxes whose agent bot kefu is, one `[channels.chatwoot.<account>]`
    /// table each; the bot's outgoing URL is `/v1/channels/chatwoot/<account>`.
    pub chatwoot: std::collections::BTreeMap<String, ChatwootAccountConfig>,
}

/// `[channels.chatwoot.<account>]`: one Chatwoot agent bot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatwootAccountConfig {
    /// Chatwoot's base URL (tests point it at a loopback fake).
    pub api_base: String,
    /// The agent bot's access token (`api_access_token`).
    pub api_token: String,
    /// The webhook secret; when set, events must carry a valid `X-Chatwoot-Signature`.
    #[serde(default)]
    pub secret: Option<String>,
}

/// `[channels.douyin.<account>]`: one Douyin enterprise account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DouyinAccountConfig {
    pub client_key: String,
    /// Signs the webhooks and fetches the client token.
    pub client_secret: String,
    /// The enterprise account's own open_id, which reply calls name.
    pub open_id: String,
    /// Where Douyin's API lives (tests point it at a loopback fake).
    #[serde(default = "douyin_api_base")]
    pub api_base: String,
}

fn douyin_api_base() -> String {
    "https://open.douyin.com".into()
}

/// `[channels.gateway.<account>]`: one sender through the signed webhook gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayAccountConfig {
    /// Signs both directions (HMAC-SHA256); at least 16 characters.
    pub secret: String,
    /// Where kefu posts the replies.
    pub callback_url: String,
}

/// `[channels.wecom.<account>]`: one WeCom 微信客服 account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomAccountConfig {
    /// The callback's Token and EncodingAESKey (43 characters) from WeCom's console.
    pub token: String,
    pub encoding_aes_key: String,
    pub corp_id: String,
    /// The 微信客服 application's secret.
    pub secret: String,
    /// The customer-service account (wk...).
    pub open_kfid: String,
    /// Where WeCom's API lives (tests point it at a loopback fake).
    #[serde(default = "wecom_api_base")]
    pub api_base: String,
    /// Where a hand-off sends the customer: `workspace` (kefu's, the
    /// default), `queue` (WeCom's servicers' queue) or `servicer:<userid>`.
    #[serde(default = "workspace_handoff")]
    pub handoff: String,
}

fn wecom_api_base() -> String {
    "https://qyapi.weixin.qq.com".into()
}

fn workspace_handoff() -> String {
    "workspace".into()
}

/// `[channels.wechat.<account>]`: one Official Account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatAccountConfig {
    /// The callback token set in WeChat's console.
    pub token: String,
    /// 43 characters; safe mode (encrypted messages) when set.
    pub encoding_aes_key: Option<String>,
    pub app_id: String,
    pub app_secret: String,
    /// Where WeChat's API lives (tests point it at a loopback fake).
    #[serde(default = "wechat_api_base")]
    pub api_base: String,
    /// Hand-offs go to WeChat's own customer-service desk (transfer_customer_service)
    /// instead of kefu's workspace.
    #[serde(default)]
    pub transfer_to_wechat_desk: bool,
}

/// The accounts of one `[channels.<platform>.*]` section, each name checked
/// and each built by `build`, which names problems through `invalid`.
fn accounts<C, A>(
    field: &'static str,
    configs: &std::collections::BTreeMap<String, C>,
    build: impl Fn(&C, &dyn Fn(String) -> ConfigError) -> Result<A, ConfigError>,
) -> Result<std::collections::BTreeMap<String, Arc<A>>, ConfigError> {
    let mut built = std::collections::BTreeMap::new();
    for (name, config) in configs {
        let invalid = |message: String| ConfigError::Invalid { field, message: format!("account {name:?}: {message}") };
        check_account_name(name).map_err(invalid)?;
        built.insert(name.clone(), Arc::new(build(config, &invalid)?));
    }
    Ok(built)
}

/// Account names are URL segments: letters, digits, - and _.
fn check_account_name(name: &str) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
        return Err("account names are letters, digits, - and _ (they are URL segments)".into());
    }
    Ok(())
}

fn wechat_api_base() -> String {
    "https://api.weixin.qq.com".into()
}

/// `[widget]`: the website chat.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WidgetConfig {
    /// Secret the shop's backend signs customer tokens with (HS256 JWT, `sub`
    /// = customer id, `exp`); none: only anonymous visitors.
    pub customer_token_secret: Option<String>,
    /// Origins of the pages that embed the widget from another host,
    /// comma-separated (`https://shop.example`); none: same origin only.
    pub allowed_origins: Option<String>,
}

/// `[store]`: kefu's own database.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` (WAL) or `postgres://...`.
    pub database_url: String,
}

/// `[enterprise]`: the enterprise systems data answers and profiles read.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnterpriseConfig {
    /// The demo systems' database (orders, stock, refunds, repairs, CRM),
    /// seeded on first start; used unless `http` is set.
    pub database_url: String,
    /// Real systems over HTTP, one `[enterprise.http.<system>]` table each
    /// (orders, inventory, refunds, after_sales, crm) with base_url, auth_header, timeout_ms, retries, backoff_ms.
    pub http: Option<crate::connectors::http::HttpConnectorSettings>,
}

/// `[api]`: limits of the HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Longest accepted message, in bytes.
    pub max_text_bytes: usize,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Requests in flight before new ones get 429.
    pub max_in_flight: usize,
    /// Whole-request timeout.
    pub request_timeout_ms: u64,
    /// An admin API key given alone (the `admin:<token>` of `security.api_keys`); kept for older files.
    pub admin_token: Option<String>,
    /// The intent name the Rasa-compatible `/model/parse` gives out-of-scope messages.
    pub rasa_fallback_intent: String,
    /// Prometheus metrics at `/metrics`; off, nothing is recorded and the route answers 404.
    pub metrics: bool,
}

/// `[engine]`: how the bot decides, and the model thread.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Below this calibrated confidence the bot asks instead of answering.
    pub min_answer_confidence: f32,
    /// When fitting the out-of-scope threshold, the weight of out-of-scope
    /// recall against in-scope accuracy (1 = equal).
    pub oos_weight: f32,
    /// Add kefu's background out-of-scope lines (chit-chat, other apps,
    /// public services) to a corpus that has out-of-scope examples.
    pub background_oos: bool,
    /// Cosine similarity to an agent-corrected text at or above which the
    /// correction decides the intent.
    pub correction_min_similarity: f32,
    /// Messages waiting for the model thread before callers get 429.
    pub encoder_queue: usize,
    /// Most messages embedded in one batch.
    pub batch_max_requests: usize,
    /// What runs the encoder: auto (ONNX Runtime when installed, else candle), candle or onnx.
    pub backend: crate::encoder::Backend,
    /// How ONNX Runtime holds the weights: f32 (the reference) or int8 (faster, smaller).
    pub precision: crate::encoder::Precision,
    /// Texts whose embeddings are kept for reuse; 0 turns the cache off.
    pub embedding_cache: usize,
}

/// `[tickets]`: hand-off deadlines and conversations.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TicketsConfig {
    /// Minutes within which a new hand-off ticket must be picked up.
    pub sla_minutes: u32,
    /// A customer's new session (say, on another channel) continues their last
    /// turn when it is at most this many minutes old.
    pub conversation_gap_minutes: u32,
}

/// `[overdue]`: overdue tickets pushed to a webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverdueConfig {
    /// Where overdue tickets are announced (JSON POST, once per ticket); no pushes when unset.
    /// May carry a secret (user info, token): it is never logged whole.
    pub webhook_url: Option<String>,
    /// Seconds between two sweeps for overdue tickets.
    pub check_interval_secs: u64,
    /// Retries of a failed webhook POST within one sweep.
    pub webhook_retries: u32,
    /// Limit for one webhook POST.
    pub webhook_timeout_ms: u64,
    /// Delay before the first retry of a sweep; doubled before each further one.
    pub webhook_backoff_ms: u64,
    /// Sweeps that may fail to deliver a ticket before it is given up on.
    pub webhook_max_attempts: u32,
}

/// `[learning]`: retrained versions and their gate.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearningConfig {
    /// Where retrained model versions are kept, with their reports and the `current` pointer.
    pub versions_dir: PathBuf,
    /// Largest drop of any gated metric (intent, decision, oos recall, held-out
    /// corrections) a retrained version may show and still be promoted.
    pub gate_tolerance: f64,
    /// Labelled sets the eval gate compares versions on (the `kefu eval` formats).
    pub gate_eval_sets: Vec<PathBuf>,
    /// Seconds between two looks at the version pointer by a running server
    /// (0: only `POST /v1/admin/reload` switches versions).
    pub versions_poll_secs: u64,
}

/// `[analytics]`: the weekly review's report.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyticsConfig {
    /// Cosine similarity at or above which questions given the same intent are grouped together.
    pub cluster_threshold: f32,
    /// Most distinct question texts (the most recent) grouped per report.
    pub max_questions: usize,
    /// Time limit of an analytics request (`/v1/stats`, its export, `/v1/optimise`).
    pub timeout_ms: u64,
}

/// `[security]`: who may call, and the keys of the data at rest.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// API keys as comma-separated `role:secret` pairs (roles bot, agent,
    /// admin), beside those made with `kefu keys add`. With no key at all,
    /// only loopback clients are served.
    pub api_keys: Option<String>,
    /// Data keys sealing personal data at rest, `<id>:<base64 of 32 bytes>`
    /// pairs, comma-separated, the first current; overrides `data_key_file`.
    pub data_key: Option<String>,
    /// File of data keys (one `<id> <base64>` per line, the first current).
    /// Default: `kefu.key` beside a SQLite database, made on first start.
    pub data_key_file: Option<PathBuf>,
    /// Requests per second one key or agent may make on average (0: no limit).
    pub rate_limit_per_second: f64,
    /// Requests one key or agent may make in a burst.
    pub rate_limit_burst: f64,
    /// Hours an agent's login lasts.
    pub session_hours: u32,
    /// Failed logins of one agent name or one address before logins pause.
    pub login_max_failures: u32,
    /// Minutes logins pause after too many failures.
    pub login_lockout_minutes: u32,
    /// PEM certificate chain and private key: `kefu serve` speaks HTTPS itself when both are set.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Reverse proxies (comma-separated addresses or networks, `10.0.0.0/8`)
    /// whose `X-Forwarded-For` names the client for rate limits, login
    /// throttling and protected mode. Default: none; every peer is the client.
    pub trusted_proxies: Option<String>,
}

// NOTE: each default that a module also needs is taken from that module's
// own `Default`, so none is written twice.

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            corpus_dir: PathBuf::from("corpus"),
            models_dir: PathBuf::from("models"),
            model: "multilingual-e5-small".into(),
            fetch_missing_model: true,
            cache_dir: None,
            timezone: crate::support::time::DEFAULT_TIMEZONE.name().into(),
            log_format: LogFormat::Text,
            store: StoreConfig::default(),
            enterprise: EnterpriseConfig::default(),
            profile: crate::profile::ProfileRules::default(),
            api: ApiConfig::default(),
            engine: EngineConfig::default(),
            tickets: TicketsConfig::default(),
            overdue: OverdueConfig::default(),
            learning: LearningConfig::default(),
            analytics: AnalyticsConfig::default(),
            security: SecurityConfig::default(),
            widget: WidgetConfig::default(),
            channels: ChannelsConfig::default(),
        }
    }
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        let settings = crate::service::channels::ChannelSettings::default();
        ChannelsConfig {
            passive_reply_ms: settings.passive_window.as_millis().try_into().unwrap_or(u64::MAX),
            send_retries: settings.backoff.retries,
            send_backoff_ms: settings.backoff.first.as_millis().try_into().unwrap_or(u64::MAX),
            send_timeout_ms: 5000,
            wechat: Default::default(),
            wecom: Default::default(),
            gateway: Default::default(),
            douyin: Default::default(),
            chatwoot: Default::default(),
        }
    }
}

impl Default for SecurityConfig {
    fn default() -> Self {
        let auth = crate::service::auth::AuthSettings::default();
        SecurityConfig {
            api_keys: None,
            data_key: None,
            data_key_file: None,
            rate_limit_per_second: auth.rate_per_second,
            rate_limit_burst: auth.rate_burst,
            session_hours: u32::try_from(auth.session_ttl.num_hours()).unwrap_or(12),
            login_max_failures: auth.login_max_failures,
            login_lockout_minutes: u32::try_from(auth.login_lockout.as_secs() / 60).unwrap_or(15),
            tls_cert: None,
            tls_key: None,
            trusted_proxies: None,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { database_url: "sqlite://data/kefu.db".into() }
    }
}

impl Default for EnterpriseConfig {
    fn default() -> Self {
        EnterpriseConfig { database_url: "sqlite://data/demo.db".into(), http: None }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        let (api, engine) = (crate::api::ApiSettings::default(), crate::engine::EngineSettings::default());
        ApiConfig {
            max_text_bytes: engine.max_text_bytes,
            max_body_bytes: api.max_body_bytes,
            max_in_flight: api.max_in_flight,
            request_timeout_ms: api.request_timeout.as_millis().try_into().unwrap_or(u64::MAX),
            admin_token: None,
            rasa_fallback_intent: api.rasa_fallback_intent,
            metrics: true,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        let (engine, batch) = (crate::engine::EngineSettings::default(), crate::encoder::BatchOptions::default());
        EngineConfig {
            min_answer_confidence: engine.policy.min_answer_confidence,
            oos_weight: engine.fit.oos_weight,
            background_oos: engine.background_oos,
            correction_min_similarity: engine.correction_min_similarity,
            encoder_queue: batch.queue_capacity,
            batch_max_requests: batch.max_batch_requests,
            backend: crate::encoder::Backend::default(),
            precision: crate::encoder::Precision::default(),
            embedding_cache: batch.cache_entries,
        }
    }
}

impl Default for TicketsConfig {
    fn default() -> Self {
        let turns = crate::api::ApiSettings::default().turns;
        TicketsConfig {
            sla_minutes: turns.ticket_sla.num_minutes().try_into().unwrap_or(u32::MAX),
            conversation_gap_minutes: turns.conversation_gap.num_minutes().try_into().unwrap_or(u32::MAX),
        }
    }
}

impl Default for OverdueConfig {
    fn default() -> Self {
        OverdueConfig {
            webhook_url: None,
            check_interval_secs: 30,
            webhook_retries: 3,
            webhook_timeout_ms: 5_000,
            webhook_backoff_ms: 500,
            webhook_max_attempts: 100,
        }
    }
}

impl Default for LearningConfig {
    fn default() -> Self {
        LearningConfig {
            versions_dir: PathBuf::from("data/versions"),
            gate_tolerance: 0.01,
            gate_eval_sets: vec![PathBuf::from("eval/dev.jsonl")],
            versions_poll_secs: 5,
        }
    }
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        let stats = crate::analytics::StatsSettings::default();
        AnalyticsConfig {
            cluster_threshold: stats.cluster_threshold,
            max_questions: stats.max_questions,
            timeout_ms: stats.timeout.as_millis().try_into().unwrap_or(u64::MAX),
        }
    }
}

/// How the text of a flag or `KEFU_*` variable becomes a setting's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    /// Text; empty turns the setting off.
    Optional,
    Number,
    Switch,
    /// Comma-separated paths.
    Paths,
}

/// A setting that a flag `--<name-with-dashes>` and a variable `KEFU_<NAME>` can set.
struct Setting {
    /// Where it lives in the file: `section.field`, or `field` at the top.
    path: &'static str,
    /// The flag's and variable's name, unique across sections. NOTE: these are
    /// the flat keys of kefu.toml files written before the sections; such a
    /// file still works, each key moved to its section.
    name: &'static str,
    kind: Kind,
    /// Its value is never shown in `--help`.
    secret: bool,
}

const fn setting(path: &'static str, name: &'static str, kind: Kind) -> Setting {
    Setting { path, name, kind, secret: false }
}

/// Every setting of [`Config`] but `addr` (a flag of `serve`) and the tables
/// (`profile`, `enterprise.http`), which only the file can hold. A unit test
/// checks that each lands in a field of [`Config`].
const SETTINGS: &[Setting] = &[
    setting("corpus_dir", "corpus_dir", Kind::Text),
    setting("models_dir", "models_dir", Kind::Text),
    setting("model", "model", Kind::Text),
    setting("fetch_missing_model", "fetch_missing_model", Kind::Switch),
    setting("cache_dir", "cache_dir", Kind::Optional),
    setting("timezone", "timezone", Kind::Text),
    setting("log_format", "log_format", Kind::Text),
    setting("store.database_url", "database_url", Kind::Text),
    setting("enterprise.database_url", "enterprise_database_url", Kind::Text),
    setting("api.max_text_bytes", "max_text_bytes", Kind::Number),
    setting("api.max_body_bytes", "max_body_bytes", Kind::Number),
    setting("api.max_in_flight", "max_in_flight", Kind::Number),
    setting("api.request_timeout_ms", "request_timeout_ms", Kind::Number),
    Setting { path: "api.admin_token", name: "admin_token", kind: Kind::Optional, secret: true },
    setting("api.rasa_fallback_intent", "rasa_fallback_intent", Kind::Text),
    setting("api.metrics", "metrics", Kind::Switch),
    setting("engine.min_answer_confidence", "min_answer_confidence", Kind::Number),
    setting("engine.oos_weight", "oos_weight", Kind::Number),
    setting("engine.background_oos", "background_oos", Kind::Switch),
    setting("engine.correction_min_similarity", "correction_min_similarity", Kind::Number),
    setting("engine.encoder_queue", "encoder_queue", Kind::Number),
    setting("engine.batch_max_requests", "batch_max_requests", Kind::Number),
    setting("engine.backend", "backend", Kind::Text),
    setting("engine.precision", "precision", Kind::Text),
    setting("engine.embedding_cache", "embedding_cache", Kind::Number),
    setting("tickets.sla_minutes", "ticket_sla_minutes", Kind::Number),
    setting("tickets.conversation_gap_minutes", "conversation_gap_minutes", Kind::Number),
    Setting { path: "overdue.webhook_url", name: "sla_webhook_url", kind: Kind::Optional, secret: true },
    setting("overdue.check_interval_secs", "sla_check_interval_secs", Kind::Number),
    setting("overdue.webhook_retries", "sla_webhook_retries", Kind::Number),
    setting("overdue.webhook_timeout_ms", "sla_webhook_timeout_ms", Kind::Number),
    setting("overdue.webhook_backoff_ms", "sla_webhook_backoff_ms", Kind::Number),
    setting("overdue.webhook_max_attempts", "sla_webhook_max_attempts", Kind::Number),
    setting("learning.versions_dir", "versions_dir", Kind::Text),
    setting("learning.gate_tolerance", "gate_tolerance", Kind::Number),
    setting("learning.gate_eval_sets", "gate_eval_sets", Kind::Paths),
    setting("learning.versions_poll_secs", "versions_poll_secs", Kind::Number),
    setting("analytics.cluster_threshold", "stats_cluster_threshold", Kind::Number),
    setting("analytics.max_questions", "stats_max_questions", Kind::Number),
    setting("analytics.timeout_ms", "stats_timeout_ms", Kind::Number),
    Setting { path: "security.api_keys", name: "api_keys", kind: Kind::Optional, secret: true },
    Setting { path: "security.data_key", name: "data_key", kind: Kind::Optional, secret: true },
    setting("security.data_key_file", "data_key_file", Kind::Optional),
    setting("security.rate_limit_per_second", "rate_limit_per_second", Kind::Number),
    setting("security.rate_limit_burst", "rate_limit_burst", Kind::Number),
    setting("security.session_hours", "session_hours", Kind::Number),
    setting("security.login_max_failures", "login_max_failures", Kind::Number),
    setting("security.login_lockout_minutes", "login_lockout_minutes", Kind::Number),
    setting("security.tls_cert", "tls_cert", Kind::Optional),
    setting("security.tls_key", "tls_key", Kind::Optional),
    setting("security.trusted_proxies", "trusted_proxies", Kind::Optional),
    Setting { path: "widget.customer_token_secret", name: "widget_secret", kind: Kind::Optional, secret: true },
    setting("widget.allowed_origins", "widget_allowed_origins", Kind::Optional),
    setting("channels.passive_reply_ms", "passive_reply_ms", Kind::Number),
    setting("channels.send_retries", "send_retries", Kind::Number),
    setting("channels.send_backoff_ms", "send_backoff_ms", Kind::Number),
    setting("channels.send_timeout_ms", "send_timeout_ms", Kind::Number),
];

/// Sets `value` at `path` (`section.field` or `field`) in `table`, or removes it when `None`.
fn set_path(table: &mut toml::Table, path: &str, value: Option<toml::Value>) {
    let (section, field) = match path.split_once('.') {
        Some((section, field)) => {
            let entry = table.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            // A section given as something else than a table is left for deserialisation to refuse.
            let Some(section) = entry.as_table_mut() else { return };
            (section, field)
        }
        None => (table, path),
    };
    match value {
        Some(value) => section.insert(field.to_string(), value),
        None => section.remove(field),
    };
}

/// Moves the flat keys of an older kefu.toml (`max_text_bytes = ...`) to their sections.
fn move_flat_keys(table: &mut toml::Table) {
    for s in SETTINGS.iter().filter(|s| s.path != s.name) {
        if let Some(value) = table.remove(s.name) {
            set_path(table, s.path, Some(value));
        }
    }
    // The HTTP enterprise systems moved from `[enterprise_http]` to `[enterprise.http]`.
    if let Some(value) = table.remove("enterprise_http") {
        set_path(table, "enterprise.http", Some(value));
    }
}

/// The config file to read and the settings that flags and `KEFU_*`
/// variables give, which override the file.
#[derive(Debug, Clone, Default)]
pub struct ConfigArgs {
    /// TOML config file (default: kefu.toml in the working directory, if present).
    pub config: Option<PathBuf>,
    /// (setting name, text) pairs, in the order given.
    pub overrides: Vec<(&'static str, String)>,
}

impl clap::Args for ConfigArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let file = clap::Arg::new("config")
            .long("config")
            .env("KEFU_CONFIG")
            .global(true)
            .value_parser(clap::value_parser!(PathBuf))
            .help("TOML config file (default: kefu.toml in the working directory, if present)");
        SETTINGS.iter().fold(cmd.arg(file), |cmd, s| {
            let arg = clap::Arg::new(s.name)
                .long(s.name.replace('_', "-"))
                .env(format!("KEFU_{}", s.name.to_uppercase()))
                .global(true)
                .hide_env_values(s.secret)
                .help(format!("Setting `{}` (see the README); overrides the file", s.path));
            cmd.arg(arg)
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for ConfigArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut args = ConfigArgs::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        if let Some(path) = matches.get_one::<PathBuf>("config") {
            self.config = Some(path.clone());
        }
        for s in SETTINGS {
            if let Some(text) = matches.get_one::<String>(s.name) {
                self.overrides.retain(|(name, _)| *name != s.name);
                self.overrides.push((s.name, text.clone()));
            }
        }
        Ok(())
    }
}

impl ConfigArgs {
    /// Defaults, then the file, then these flags and environment variables.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let default_file = Path::new("kefu.toml");
        let file = self.config.clone().or_else(|| default_file.exists().then(|| default_file.to_path_buf()));
        let mut table = match &file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse { path: path.clone(), message: e.to_string() })?
            }
            None => toml::Table::new(),
        };
        move_flat_keys(&mut table);
        for (name, text) in &self.overrides {
            let Some(s) = SETTINGS.iter().find(|s| s.name == *name) else { continue };
            set_path(&mut table, s.path, setting_value(s.name, s.kind, text)?);
        }
        let config: Config = table.try_into().map_err(|e: toml::de::Error| ConfigError::Parse {
            path: file.unwrap_or_else(|| PathBuf::from("<flags and KEFU_* variables>")),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }
}

/// The value a flag's or variable's text gives `key`; `None` turns an optional setting off.
fn setting_value(key: &'static str, kind: Kind, text: &str) -> Result<Option<toml::Value>, ConfigError> {
    let invalid = |message: &str| ConfigError::Invalid { field: key, message: message.to_string() };
    Ok(Some(match kind {
        Kind::Text => toml::Value::String(text.to_string()),
        Kind::Optional if text.trim().is_empty() => return Ok(None),
        Kind::Optional => toml::Value::String(text.to_string()),
        Kind::Number => match (text.trim().parse::<i64>(), text.trim().parse::<f64>()) {
            (Ok(n), _) => toml::Value::Integer(n),
            (_, Ok(x)) => toml::Value::Float(x),
            _ => return Err(invalid("must be a number")),
        },
        Kind::Switch => match text.trim() {
            "true" | "1" | "yes" => toml::Value::Boolean(true),
            "false" | "0" | "no" => toml::Value::Boolean(false),
            _ => return Err(invalid("must be true or false")),
        },
        Kind::Paths => toml::Value::Array(
            text.split(',').map(str::trim).filter(|p| !p.is_empty()).map(|p| toml::Value::String(p.into())).collect(),
        ),
    }))
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

    /// What the encoder runs on, given the backend chosen and what is installed.
    pub fn encoder_runtime(&self) -> crate::encoder::Runtime {
        self.engine.backend.runtime(&self.models_dir, self.engine.precision)
    }

    /// Where fitted intent models are cached.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| self.corpus_dir.join(".index"))
    }

    /// The SLA webhook; None when no `overdue.webhook_url` is set.
    pub fn webhook_settings(&self) -> Result<Option<crate::overdue::WebhookSettings>, ConfigError> {
        let Some(url) = &self.overdue.webhook_url else { return Ok(None) };
        Ok(Some(crate::overdue::WebhookSettings {
            url: parse_http_url("overdue.webhook_url", url)?,
            retries: self.overdue.webhook_retries,
            timeout: std::time::Duration::from_millis(self.overdue.webhook_timeout_ms),
            backoff: std::time::Duration::from_millis(self.overdue.webhook_backoff_ms),
            max_attempts: self.overdue.webhook_max_attempts,
            batch: 100,
        }))
    }

    /// Settings of the analytics (`/v1/stats`, `kefu stats`).
    pub fn stats_settings(&self) -> Result<crate::analytics::StatsSettings, ConfigError> {
        Ok(crate::analytics::StatsSettings {
            timezone: self.tz()?,
            cluster_threshold: self.analytics.cluster_threshold,
            max_questions: self.analytics.max_questions,
            timeout: std::time::Duration::from_millis(self.analytics.timeout_ms),
        })
    }

    /// Keys, sessions and limits of the access layer.
    /// The website chat's customer-token secret and embedding origins.
    pub fn widget_settings(&self) -> crate::api::WidgetSettings {
        let origins = self.widget.allowed_origins.as_deref().unwrap_or_default();
        crate::api::WidgetSettings {
            customer_token_secret: self.widget.customer_token_secret.clone().filter(|s| !s.is_empty()),
            allowed_origins: origins.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_string).collect(),
        }
    }

    /// The messaging platform accounts, their API clients built.
    pub fn channel_accounts(&self) -> Result<crate::service::channels::ChannelAccounts, ConfigError> {
        use crate::channels::chatwoot::ChatwootApi;
        use crate::channels::douyin::DouyinApi;
        use crate::channels::gateway::GatewayClient;
        use crate::channels::wechat::{api::WechatApi, CallbackKeys, MessageCrypto};
        use crate::channels::wecom::{Handoff, KfApi};
        use crate::service::channels::{
            ChannelAccounts, ChannelSettings, ChatwootAccount, DouyinAccount, GatewayAccount, WechatAccount,
            WecomAccount,
        };
        let c = &self.channels;
        let timeout = std::time::Duration::from_millis(c.send_timeout_ms);
        let no_client = |e: reqwest::Error| format!("cannot build its HTTP client: {e}");
        let wechat = accounts("channels.wechat", &c.wechat, |account, invalid| {
            if account.token.is_empty() {
                return Err(invalid("token is empty".into()));
            }
            let crypto = account
                .encoding_aes_key
                .as_deref()
                .filter(|k| !k.is_empty())
                .map(|key| MessageCrypto::new(key, &account.app_id))
                .transpose()
                .map_err(|e| invalid(e.to_string()))?;
            let base = parse_http_url("channels.wechat.api_base", &account.api_base)?;
            let api = WechatApi::new(base, &account.app_id, &account.app_secret, timeout)
                .map_err(|e| invalid(no_client(e)))?;
            let keys = CallbackKeys { token: account.token.clone(), crypto };
            Ok(WechatAccount { keys, api, transfer_to_desk: account.transfer_to_wechat_desk })
        })?;
        let wecom = accounts("channels.wecom", &c.wecom, |account, invalid| {
            let crypto =
                MessageCrypto::new(&account.encoding_aes_key, &account.corp_id).map_err(|e| invalid(e.to_string()))?;
            let base = parse_http_url("channels.wecom.api_base", &account.api_base)?;
            let api = KfApi::new(base, &account.corp_id, &account.secret, &account.open_kfid, timeout)
                .map_err(|e| invalid(no_client(e)))?;
            let handoff = match account.handoff.as_str() {
                "workspace" => Handoff::Workspace,
                "queue" => Handoff::Queue,
                other => match other.strip_prefix("servicer:").filter(|id| !id.is_empty()) {
                    Some(userid) => Handoff::Servicer(userid.to_string()),
                    None => {
                        return Err(invalid(format!("handoff {other:?}: use workspace, queue or servicer:<userid>")))
                    }
                },
            };
            let keys = CallbackKeys { token: account.token.clone(), crypto: Some(crypto) };
            Ok(WecomAccount::new(keys, api, handoff))
        })?;
        let gateway = accounts("channels.gateway", &c.gateway, |account, invalid| {
            if account.secret.chars().count() < 16 {
                return Err(invalid("the secret needs at least 16 characters".into()));
            }
            let callback = parse_http_url("channels.gateway.callback_url", &account.callback_url)?;
            let client = GatewayClient::new(callback, &account.secret, timeout).map_err(|e| invalid(no_client(e)))?;
            Ok(GatewayAccount { secret: account.secret.clone(), client })
        })?;
        let douyin = accounts("channels.douyin", &c.douyin, |account, invalid| {
            if account.client_secret.is_empty() {
                return Err(invalid("client_secret is empty".into()));
            }
            let base = parse_http_url("channels.douyin.api_base", &account.api_base)?;
            let api = DouyinApi::new(base, &account.client_key, &account.client_secret, &account.open_id, timeout)
                .map_err(|e| invalid(no_client(e)))?;
            Ok(DouyinAccount { client_secret: account.client_secret.clone(), api })
        })?;
        let chatwoot = accounts("channels.chatwoot", &c.chatwoot, |account, invalid| {
            if account.api_token.is_empty() {
                return Err(invalid("api_token (the agent bot's access token) is empty".into()));
            }
            let secret = account.secret.clone().filter(|s| !s.is_empty());
            let base = parse_http_url("channels.chatwoot.api_base", &account.api_base)?;
            let api = ChatwootApi::new(base, &account.api_token, timeout).map_err(|e| invalid(no_client(e)))?;
            Ok(ChatwootAccount { secret, api })
        })?;
        let defaults = ChannelSettings::default();
        Ok(ChannelAccounts {
            wechat,
            wecom,
            gateway,
            douyin,
            chatwoot,
            settings: ChannelSettings {
                passive_window: std::time::Duration::from_millis(c.passive_reply_ms),
                backoff: crate::support::retry::Backoff::doubling(
                    c.send_retries,
                    std::time::Duration::from_millis(c.send_backoff_ms.max(1)),
                ),
                ..defaults
            },
        })
    }

    pub fn auth_settings(&self) -> Result<crate::service::auth::AuthSettings, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { field: "security.api_keys", message };
        let mut api_keys = crate::service::auth::parse_api_keys(self.security.api_keys.as_deref().unwrap_or_default())
            .map_err(invalid)?;
        if let Some(token) = &self.api.admin_token {
            api_keys.extend(
                crate::service::auth::parse_api_keys(&format!("admin:{token}"))
                    .map_err(|message| ConfigError::Invalid { field: "api.admin_token", message })?,
            );
        }
        Ok(crate::service::auth::AuthSettings {
            api_keys,
            rate_per_second: self.security.rate_limit_per_second,
            rate_burst: self.security.rate_limit_burst,
            session_ttl: chrono::Duration::hours(i64::from(self.security.session_hours.max(1))),
            login_max_failures: self.security.login_max_failures.max(1),
            login_lockout: std::time::Duration::from_secs(u64::from(self.security.login_lockout_minutes) * 60),
        })
    }

    /// The data key file: the configured one, else `kefu.key` beside a SQLite
    /// database (so every command on that database finds it). A PostgreSQL
    /// store is shared by replicas, which must hold the same keys: it has none.
    pub fn data_key_file(&self) -> Option<PathBuf> {
        self.security.data_key_file.clone().or_else(|| {
            let path = self.store.database_url.strip_prefix("sqlite://")?.split('?').next()?;
            Some(Path::new(path).with_file_name("kefu.key"))
        })
    }

    /// The data keys: `data_key` when set, else the key file, made with a
    /// fresh key when it is the default one beside a SQLite database.
    pub fn vault(&self) -> Result<(crate::privacy::vault::Vault, Option<PathBuf>), crate::privacy::vault::VaultError> {
        use crate::privacy::vault::{Vault, VaultError};
        if let Some(text) = self.security.data_key.as_deref().filter(|t| !t.trim().is_empty()) {
            return Ok((Vault::parse(text)?, None));
        }
        let file = self.data_key_file().ok_or(VaultError::NoKey)?;
        Vault::load(&file, self.security.data_key_file.is_none())
    }

    /// The reverse proxies believed about who they forwarded for.
    pub fn trusted_proxies(&self) -> Result<crate::api::TrustedProxies, ConfigError> {
        let text = self.security.trusted_proxies.as_deref().unwrap_or_default();
        text.parse().map_err(|message| ConfigError::Invalid { field: "security.trusted_proxies", message })
    }

    /// The time zone, parsed.
    pub fn tz(&self) -> Result<chrono_tz::Tz, ConfigError> {
        self.timezone.parse().map_err(|_| ConfigError::Invalid {
            field: "timezone",
            message: format!("{:?} is not an IANA time zone", self.timezone),
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.tz()?;
        self.channel_accounts()?;
        self.auth_settings()?;
        self.trusted_proxies()?;
        if self.security.tls_cert.is_some() != self.security.tls_key.is_some() {
            return Err(ConfigError::Invalid {
                field: "security.tls_cert",
                message: "give both tls_cert and tls_key, or neither".into(),
            });
        }
        if !(self.security.rate_limit_per_second >= 0.0 && self.security.rate_limit_per_second.is_finite()) {
            return Err(ConfigError::Invalid {
                field: "security.rate_limit_per_second",
                message: "must be a finite number >= 0".into(),
            });
        }
        self.profile.validate().map_err(|e| ConfigError::Invalid { field: "profile.rules", message: e.to_string() })?;
        if !(self.engine.oos_weight >= 0.0 && self.engine.oos_weight.is_finite()) {
            return Err(ConfigError::Invalid {
                field: "engine.oos_weight",
                message: "must be a finite number >= 0".into(),
            });
        }
        if !(0.0..=1.0).contains(&self.engine.min_answer_confidence) {
            return Err(ConfigError::Invalid {
                field: "engine.min_answer_confidence",
                message: "must be within 0..1".into(),
            });
        }
        for (field, value) in [
            ("api.max_in_flight", self.api.max_in_flight),
            ("api.max_text_bytes", self.api.max_text_bytes),
            ("engine.encoder_queue", self.engine.encoder_queue),
            ("engine.batch_max_requests", self.engine.batch_max_requests),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid { field, message: "must be at least 1".into() });
            }
        }
        if self.api.rasa_fallback_intent.trim().is_empty() {
            return Err(ConfigError::Invalid {
                field: "api.rasa_fallback_intent",
                message: "must not be empty".into(),
            });
        }
        if let Some(url) = &self.overdue.webhook_url {
            parse_http_url("overdue.webhook_url", url)?;
        }
        for (field, value) in [
            ("overdue.check_interval_secs", self.overdue.check_interval_secs),
            ("overdue.webhook_timeout_ms", self.overdue.webhook_timeout_ms),
            ("overdue.webhook_max_attempts", self.overdue.webhook_max_attempts.into()),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid { field, message: "must be at least 1".into() });
            }
        }
        if !(self.analytics.cluster_threshold > 0.0 && self.analytics.cluster_threshold <= 1.0) {
            return Err(ConfigError::Invalid {
                field: "analytics.cluster_threshold",
                message: "must be within (0, 1]".into(),
            });
        }
        if self.analytics.timeout_ms == 0 {
            return Err(ConfigError::Invalid { field: "analytics.timeout_ms", message: "must be at least 1".into() });
        }
        if !(self.learning.gate_tolerance.is_finite() && (0.0..=1.0).contains(&self.learning.gate_tolerance)) {
            return Err(ConfigError::Invalid {
                field: "learning.gate_tolerance",
                message: "must be within 0..1".into(),
            });
        }
        if self.learning.gate_eval_sets.is_empty() {
            return Err(ConfigError::Invalid {
                field: "learning.gate_eval_sets",
                message: "the eval gate needs at least one eval set".into(),
            });
        }
        if !(self.engine.correction_min_similarity > 0.0 && self.engine.correction_min_similarity <= 1.0) {
            return Err(ConfigError::Invalid {
                field: "engine.correction_min_similarity",
                message: "must be within (0, 1]".into(),
            });
        }
        if self.api.max_body_bytes < self.api.max_text_bytes {
            return Err(ConfigError::Invalid {
                field: "api.max_body_bytes",
                message: "must be at least api.max_text_bytes".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_checked_and_errors_never_show_secrets() {
        let config = |url: &str| Config {
            overdue: OverdueConfig { webhook_url: Some(url.into()), ..OverdueConfig::default() },
            ..Config::default()
        };
        let settings = config("https://hooks.example.com/kefu").webhook_settings().unwrap().unwrap();
        assert_eq!(
            (settings.url.as_str(), settings.retries, settings.max_attempts),
            ("https://hooks.example.com/kefu", 3, 100)
        );
        assert!(Config::default().webhook_settings().unwrap().is_none(), "no webhook, no pushes");
        for bad in ["ftp://hooks.example.com/x", "hooks.example.com/x", "http://", "mailto:ops@example.com"] {
            assert!(config(bad).webhook_settings().is_err(), "{bad}");
        }
        let err = config("ftp://ops:hunter2@hooks.example.com/x").webhook_settings().unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn the_deployment_files_set_only_real_settings() {
        let known: std::collections::HashSet<String> =
            SETTINGS.iter().map(|s| format!("KEFU_{}", s.name.to_uppercase())).collect();
        let variable = regex::Regex::new(r"\bKEFU_[A-Z_]+\b").unwrap();
        for file in ["Dockerfile", "deploy/compose.yaml", "deploy/k8s/kefu.yaml"] {
            let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
            let named: Vec<&str> = variable.find_iter(&text).map(|m| m.as_str()).collect();
            assert!(!named.is_empty(), "{file} configures kefu");
            for name in named {
                assert!(known.contains(name), "{file} sets {name}, which is no setting of kefu");
            }
        }
    }

    #[test]
    fn every_setting_reaches_its_field_by_flag_and_variable() {
        use clap::{CommandFactory, FromArgMatches, Parser};
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            config: ConfigArgs,
        }
        let mut names = std::collections::HashSet::new();
        for s in SETTINGS {
            assert!(names.insert(s.name), "{} is listed twice", s.name);
            // A value of the setting's kind lands in the field of that name, or the parse says which key is unknown.
            let text = match s.kind {
                Kind::Number => "3",
                Kind::Switch => "false",
                Kind::Paths => "a.jsonl,b.jsonl",
                Kind::Text | Kind::Optional if s.name == "timezone" => "UTC",
                Kind::Text | Kind::Optional if s.name == "log_format" => "json",
                Kind::Text | Kind::Optional if s.name == "backend" => "onnx",
                Kind::Text | Kind::Optional if s.name == "precision" => "f32",
                Kind::Text | Kind::Optional if s.name == "sla_webhook_url" => "http://127.0.0.1:9/hook",
                Kind::Text | Kind::Optional => "x",
            };
            let mut table = toml::Table::new();
            set_path(&mut table, s.path, setting_value(s.name, s.kind, text).unwrap());
            let parsed: Result<Config, _> = table.try_into();
            assert!(parsed.is_ok(), "{}: {:?}", s.path, parsed.err());
        }
        // The flag and the variable of a setting that had neither before.
        let matches = Cli::command()
            .try_get_matches_from(["kefu", "--max-text-bytes", "100", "--stats-timeout-ms", "5"])
            .unwrap();
        let config = ConfigArgs::from_arg_matches(&matches).unwrap().resolve().unwrap();
        assert_eq!((config.api.max_text_bytes, config.analytics.timeout_ms), (100, 5));
        let args = ConfigArgs {
            overrides: vec![("encoder_queue", "7".into()), ("sla_webhook_url", "".into())],
            ..Default::default()
        };
        let config = args.resolve().unwrap();
        assert_eq!((config.engine.encoder_queue, config.overdue.webhook_url), (7, None));
        let err = ConfigArgs { overrides: vec![("max_in_flight", "many".into())], ..Default::default() }
            .resolve()
            .unwrap_err();
        assert!(err.to_string().contains("max_in_flight"), "{err}");
    }

    #[test]
    fn defaults_are_the_modules_own() {
        let config = Config::default();
        assert_eq!(config.engine.encoder_queue, crate::encoder::BatchOptions::default().queue_capacity);
        assert_eq!(config.api.max_text_bytes, crate::engine::EngineSettings::default().max_text_bytes);
        assert_eq!((config.tickets.sla_minutes, config.tickets.conversation_gap_minutes), (120, 30));
        assert_eq!(
            (config.api.request_timeout_ms, config.analytics.timeout_ms, config.timezone.as_str()),
            (10_000, 120_000, "Asia/Shanghai")
        );
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
        std::fs::write(&path, "model = \"all-minilm-l6-v2\"\ntimezone = \"Europe/Berlin\"\nmax_text_bytes = 100\n")
            .unwrap();
        let args = ConfigArgs { config: Some(path), overrides: vec![("timezone", "UTC".into())] };
        let config = args.resolve().unwrap();
        assert_eq!(config.model, "all-minilm-l6-v2");
        assert_eq!(config.timezone, "UTC");
        assert_eq!(config.api.max_text_bytes, 100);
    }

    #[test]
    fn sections_in_the_file_and_flat_keys_of_older_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kefu.toml");
        let text =
            "model = \"m\"\n[api]\nmax_text_bytes = 100\n[overdue]\nwebhook_retries = 7\n[tickets]\nsla_minutes = 9\n";
        std::fs::write(&path, text).unwrap();
        let args = ConfigArgs { config: Some(path.clone()), overrides: vec![("ticket_sla_minutes", "11".into())] };
        let config = args.resolve().unwrap();
        assert_eq!(
            (config.api.max_text_bytes, config.overdue.webhook_retries, config.tickets.sla_minutes),
            (100, 7, 11)
        );
        let mut old = String::from("max_text_bytes = 200\nsla_webhook_retries = 1\n");
        for system in ["orders", "inventory", "refunds", "after_sales", "crm"] {
            old += &format!("[enterprise_http.{system}]\nbase_url = \"http://127.0.0.1:9\"\n");
        }
        std::fs::write(&path, old).unwrap();
        let config = ConfigArgs { config: Some(path.clone()), ..Default::default() }.resolve().unwrap();
        assert_eq!((config.api.max_text_bytes, config.overdue.webhook_retries), (200, 1));
        assert!(config.enterprise.http.is_some());
        std::fs::write(&path, "[api]\nmax_txt_bytes = 1\n").unwrap();
        let err = ConfigArgs { config: Some(path), ..Default::default() }.resolve().unwrap_err().to_string();
        assert!(err.contains("max_txt_bytes"), "{err}");
    }

    #[test]
    fn profile_rules_come_from_the_file_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kefu.toml");
        assert_eq!(ConfigArgs::default().resolve().unwrap().profile.rules.len(), 2);
        std::fs::write(
            &path,
            "[[profile.rules]]\ntag = \"vip\"\nmetric = \"spend_12m_cny\"\nop = \">=\"\nthreshold = 5000\n",
        )
        .unwrap();
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
        assert!(err.contains("webhook_url") && !err.contains("hunter2"), "{err}");
        std::fs::write(&path, "[security]\ntrusted_proxies = \"10.0.0.0/8, nginx\"\n").unwrap();
        let err = ConfigArgs { config: Some(path.clone()), ..Default::default() }.resolve().unwrap_err().to_string();
        assert!(err.contains("trusted_proxies") && err.contains("\"nginx\""), "{err}");
        std::fs::write(&path, "no_such_setting = 1\n").unwrap();
        let err = ConfigArgs { config: Some(path), ..Default::default() }.resolve().unwrap_err();
        assert!(err.to_string().contains("no_such_setting"), "{err}");
    }
}
