//! Who is calling: API keys (from the configuration, or made with
//! `kefu keys`), agent logins with their sessions, protected mode when no key
//! exists, per-caller rate limits and throttled logins.
//!
//! Secrets are random 256-bit strings, so a SHA-256 of each is what the store
//! keeps and looks up; passwords, which people choose, are hashed with
//! argon2id. Keys made or revoked with the CLI take effect on the next request:
//! every request looks its key up in the store.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::access::{Caller, Role};
use crate::store::{ApiKeyRecord, Store, StoreError};

/// Prefix of API key secrets, so they are recognisable in a leak scan.
const KEY_PREFIX: &str = "kefu_";
/// Prefix of session tokens.
const SESSION_PREFIX: &str = "kefus_";
const SHORTEST_PASSWORD: usize = 10;
/// Names and addresses with failed logins remembered before expired ones are dropped.
const MAX_TRACKED_LOGINS: usize = 10_000;

/// Rate buckets kept before idle ones are dropped (web chat visitors each have one).
const MAX_BUCKETS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("the {have} role may not {what}; it needs {need}")]
    Forbidden { have: Role, need: Role, what: String },
    #[error("this server has no API keys yet, so it answers only clients on this machine that come without a proxy; create a key with `kefu keys add`")]
    LoopbackOnly,
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("too many failed logins; retry in {retry_after_secs} s")]
    LoginThrottled { retry_after_secs: u64 },
    #[error("wrong agent name or password")]
    BadLogin,
    #[error("{0}")]
    Invalid(String),
    #[error("no {what} {id:?}")]
    Unknown { what: &'static str, id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Limits of the access layer.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `role:secret` pairs from the configuration.
    pub api_keys: Vec<(Role, String)>,
    /// Requests per second a key or agent may make on average, and in a burst.
    pub rate_per_second: f64,
    pub rate_burst: f64,
    pub session_ttl: chrono::Duration,
    /// Failed logins of one name or one address before logins pause.
    pub login_max_failures: u32,
    pub login_lockout: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            api_keys: Vec::new(),
            rate_per_second: 50.0,
            rate_burst: 100.0,
            session_ttl: chrono::Duration::hours(12),
            login_max_failures: 5,
            login_lockout: Duration::from_secs(15 * 60),
        }
    }
}

/// Parses `role:secret,role:secret` (the `api_keys` setting).
pub fn parse_api_keys(text: &str) -> Result<Vec<(Role, String)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (role, secret) = entry.split_once(':').ok_or("write each key as role:secret")?;
            let role: Role = role.trim().parse().map_err(|e: crate::tickets::UnknownValue| e.to_string())?;
            let secret = secret.trim();
            if secret.len() < 16 {
                return Err(format!("the {role} key's secret is shorter than 16 characters"));
            }
            Ok((role, secret.to_string()))
        })
        .collect()
}

/// SHA-256 of a secret, hex: what the store keeps of keys and sessions.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// An argon2id hash (PHC string) of a password.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    if password.chars().count() < SHORTEST_PASSWORD {
        return Err(AuthError::Invalid(format!("a password needs at least {SHORTEST_PASSWORD} characters")));
    }
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Invalid(format!("cannot hash the password: {e}")))
}

fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A key made with the CLI: its record, and its secret, shown this once.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub record: ApiKeyRecord,
    pub secret: String,
}

/// Makes an API key.
pub async fn create_key(store: &Store, role: Role, label: Option<&str>) -> Result<NewKey, AuthError> {
    let id = format!("key-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let secret = random_secret(KEY_PREFIX);
    let now = Utc::now();
    store.add_api_key(&id, role, &secret_hash(&secret), label, now).await?;
    let record = ApiKeyRecord {
        id,
        role,
        label: label.map(str::to_string),
        created_at: crate::support::time::stamp(now),
        revoked_at: None,
    };
    Ok(NewKey { record, secret })
}

/// Revokes a key.
pub async fn revoke_key(store: &Store, id: &str) -> Result<(), AuthError> {
    if store.revoke_api_key(id, Utc::now()).await? {
        Ok(())
    } else {
        Err(AuthError::Unknown { what: "live key", id: id.into() })
    }
}

/// Replaces a key by a new one of the same role and label; the old one stops working at once.
pub async fn rotate_key(store: &Store, id: &str) -> Result<NewKey, AuthError> {
    let old = store
        .api_keys()
        .await?
        .into_iter()
        .find(|k| k.id == id && k.revoked_at.is_none())
        .ok_or_else(|| AuthError::Unknown { what: "live key", id: id.into() })?;
    let new = create_key(store, old.role, old.label.as_deref()).await?;
    revoke_key(store, id).await?;
    Ok(new)
}

/// Agent names: what tickets and the audit log show.
fn check_agent_name(name: &str) -> Result<(), AuthError> {
    if name.is_empty()
        || name.chars().count() > 64
        || name.chars().any(|c| c.is_control() || c.is_whitespace() || c == ':')
    {
        return Err(AuthError::Invalid("an agent name is 1 to 64 characters without spaces or ':'".into()));
    }
    Ok(())
}

/// Adds a workspace account.
pub async fn add_agent(store: &Store, name: &str, role: Role, password: &str) -> Result<(), AuthError> {
    check_agent_name(name)?;
    if role == Role::Bot {
        return Err(AuthError::Invalid("agents are agent or admin, not bot".into()));
    }
    if !store.add_agent(name, role, &hash_password(password)?, Utc::now()).await? {
        return Err(AuthError::Invalid(format!("an agent named {name:?} exists")));
    }
    Ok(())
}

/// Sets an agent's password (ending their sessions).
pub async fn set_password(store: &Store, name: &str, password: &str) -> Result<(), AuthError> {
    if !store.set_agent_password(name, &hash_password(password)?, Utc::now()).await? {
        return Err(AuthError::Unknown { what: "agent", id: name.into() });
    }
    Ok(())
}

/// Disables an agent (ending their sessions).
pub async fn disable_agent(store: &Store, name: &str) -> Result<(), AuthError> {
    if !store.disable_agent(name, Utc::now()).await? {
        return Err(AuthError::Unknown { what: "enabled agent", id: name.into() });
    }
    Ok(())
}

/// A login that succeeded.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub agent: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
}

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Failed logins of one name or address within the lockout window.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

/// The access layer of a running server.
pub struct Gatekeeper {
    store: Store,
    settings: AuthSettings,
    /// Hash of each configured secret, with its role and a stable id.
    configured: HashMap<String, (String, Role)>,
    buckets: Mutex<HashMap<String, Bucket>>,
    failures: Mutex<HashMap<String, Failures>>,
}

impl Gatekeeper {
    pub fn new(store: Store, settings: AuthSettings) -> Gatekeeper {
        let configured = settings
            .api_keys
            .iter()
            .map(|(role, secret)| {
                let hash = secret_hash(secret);
                // The id names the key in logs and the audit without revealing it.
                (hash.clone(), (format!("config-{role}-{}", &hash[..8]), *role))
            })
            .collect();
        Gatekeeper {
            store,
            settings,
            configured,
            buckets: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether no key exists: then only loopback clients are served.
    pub async fn protected_mode(&self) -> Result<bool, AuthError> {
        Ok(self.configured.is_empty() && !self.store.has_live_api_keys().await?)
    }

    /// The caller a bearer token (API key or session token) or session cookie names.
    pub async fn caller(&self, token: &str) -> Result<Caller, AuthError> {
        let hash = secret_hash(token);
        if let Some((id, role)) = self.configured.get(&hash) {
            return Ok(Caller::Key { id: id.clone(), role: *role });
        }
        if token.starts_with(SESSION_PREFIX) {
            if let Some(session) = self.store.session(&hash, Utc::now()).await? {
                return Ok(Caller::Agent { name: session.agent, role: session.role });
            }
            return Err(AuthError::Unauthenticated("the session has ended or expired; log in again"));
        }
        match self.store.api_key_by_hash(&hash).await? {
            Some(key) => Ok(Caller::Key { id: key.id, role: key.role }),
            None => Err(AuthError::Unauthenticated("unknown API key")),
        }
    }

    /// The caller of a request with no credentials, from `client`.
    pub async fn anonymous(&self, client: Option<IpAddr>) -> Result<Caller, AuthError> {
        if !self.protected_mode().await? {
            return Err(AuthError::Unauthenticated("send Authorization: Bearer <API key> or log in"));
        }
        match client {
            Some(ip) if ip.is_loopback() => Ok(Caller::Local),
            _ => Err(AuthError::LoopbackOnly),
        }
    }

    /// Takes one request from the caller's bucket.
    pub fn spend(&self, caller: &Caller) -> Result<(), AuthError> {
        if *caller == Caller::Local {
            return Ok(());
        }
        self.spend_as(&caller.actor())
    }

    /// Takes one request from the bucket named `key` (a caller, a web chat visitor, an address).
    pub fn spend_as(&self, key: &str) -> Result<(), AuthError> {
        if self.settings.rate_per_second <= 0.0 {
            return Ok(());
        }
        let (rate, burst) = (self.settings.rate_per_second, self.settings.rate_burst.max(1.0));
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            // A bucket idle long enough to have refilled is the same as none.
            let refill = std::time::Duration::from_secs_f64(burst / rate);
            buckets.retain(|_, b| now.duration_since(b.at) < refill);
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket { tokens: burst, at: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / rate;
        // NOTE: wait is below 1/rate seconds, a small positive number.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let retry_after_secs = wait.ceil().max(1.0) as u64;
        Err(AuthError::RateLimited { retry_after_secs })
    }

    /// Logs an agent in from `client`; failures count against the name and the address.
    pub async fn login(&self, name: &str, password: &str, client: Option<IpAddr>) -> Result<Session, AuthError> {
        let keys = [format!("name:{name}"), format!("ip:{}", client.map(|ip| ip.to_string()).unwrap_or_default())];
        self.check_throttle(&keys)?;
        let account = self.store.agent(name).await?.filter(|a| a.disabled_at.is_none());
        let password = password.to_string();
        // NOTE: an unknown name is checked against a hash too, so timing does not tell names apart.
        let hash = account.as_ref().map(|a| a.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.clone());
        let matches = tokio::task::spawn_blocking(move || password_matches(&password, &hash)).await.unwrap_or(false);
        let Some(account) = account.filter(|_| matches) else {
            self.record_failure(&keys);
            return Err(AuthError::BadLogin);
        };
        self.clear_failures(&keys);
        let token = random_secret(SESSION_PREFIX);
        let now = Utc::now();
        let expires_at = now + self.settings.session_ttl;
        self.store.add_session(&secret_hash(&token), &account.name, now, expires_at).await?;
        Ok(Session { token, agent: account.name, role: account.role, expires_at })
    }

    /// Ends the session of a token; unknown tokens are ignored.
    pub async fn logout(&self, token: &str) -> Result<(), AuthError> {
        Ok(self.store.end_session(&secret_hash(token), Utc::now()).await?)
    }

    fn check_throttle(&self, keys: &[String]) -> Result<(), AuthError> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let lockout = self.settings.login_lockout;
        for f in keys.iter().filter_map(|k| failures.get(k)) {
            let elapsed = f.since.elapsed();
            if f.count >= self.settings.login_max_failures && elapsed < lockout {
                return Err(AuthError::LoginThrottled { retry_after_secs: (lockout - elapsed).as_secs().max(1) });
            }
        }
        Ok(())
    }

    fn record_failure(&self, keys: &[String]) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let lockout = self.settings.login_lockout;
        // Guessing from many names or addresses must not grow the map without bound.
        if failures.len() >= MAX_TRACKED_LOGINS {
            failures.retain(|_, f| f.since.elapsed() < lockout);
        }
        for key in keys {
            let f = failures.entry(key.clone()).or_insert(Failures { count: 0, since: Instant::now() });
            if f.since.elapsed() >= lockout {
                *f = Failures { count: 0, since: Instant::now() };
            }
            f.count += 1;
        }
    }

    fn clear_failures(&self, keys: &[String]) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            failures.remove(key);
        }
    }
}

/// A hash no password matches, checked for unknown names.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default().hash_password(random_secret("").as_bytes(), &salt).map(|h| h.to_string()).unwrap_or_default()
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::sqlite_store;

    #[test]
    fn configured_keys_parse_and_refuse_short_secrets() {
        let keys = parse_api_keys("bot:bot-secret-0123456789, admin:admin-secret-0123456789").unwrap();
        assert_eq!(keys[0], (Role::Bot, "bot-secret-0123456789".into()));
        assert!(parse_api_keys("bot:short").unwrap_err().contains("shorter than 16"));
        assert!(parse_api_keys("root:0123456789abcdef0").unwrap_err().contains("role"));
        assert!(parse_api_keys("no-colon").unwrap_err().contains("role:secret"));
        assert!(parse_api_keys("").unwrap().is_empty());
    }

    #[tokio::test]
    async fn keys_made_revoked_and_rotated_take_effect_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path()).await;
        let gate = Gatekeeper::new(store.clone(), AuthSettings::default());
        assert!(gate.protected_mode().await.unwrap());
        assert_eq!(gate.anonymous(Some("127.0.0.1".parse().unwrap())).await.unwrap(), Caller::Local);
        assert!(matches!(gate.anonymous(Some("10.0.0.2".parse().unwrap())).await, Err(AuthError::LoopbackOnly)));

        let key = create_key(&store, Role::Agent, Some("desk")).await.unwrap();
        assert!(key.secret.starts_with(KEY_PREFIX));
        assert!(!gate.protected_mode().await.unwrap());
        assert_eq!(gate.caller(&key.secret).await.unwrap().role(), Role::Agent);
        assert!(matches!(gate.anonymous(Some("127.0.0.1".parse().unwrap())).await, Err(AuthError::Unauthenticated(_))));

        let rotated = rotate_key(&store, &key.record.id).await.unwrap();
        assert!(gate.caller(&key.secret).await.is_err(), "the old secret stops at once");
        assert_eq!(gate.caller(&rotated.secret).await.unwrap().role(), Role::Agent);
        assert_eq!(rotated.record.label.as_deref(), Some("desk"));
        revoke_key(&store, &rotated.record.id).await.unwrap();
        assert!(gate.caller(&rotated.secret).await.is_err());
        assert!(revoke_key(&store, "key-nope").await.is_err());
    }

    #[tokio::test]
    async fn logins_make_sessions_and_failures_are_throttled() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path()).await;
        let settings = AuthSettings { login_max_failures: 3, ..AuthSettings::default() };
        let gate = Gatekeeper::new(store.clone(), settings);
        add_agent(&store, "li.na", Role::Agent, "correct horse battery").await.unwrap();
        assert!(add_agent(&store, "li.na", Role::Agent, "correct horse battery").await.is_err());
        assert!(matches!(add_agent(&store, "x", Role::Agent, "short").await, Err(AuthError::Invalid(_))));

        let ip = Some("192.0.2.7".parse().unwrap());
        let session = gate.login("li.na", "correct horse battery", ip).await.unwrap();
        assert_eq!(
            gate.caller(&session.token).await.unwrap(),
            Caller::Agent { name: "li.na".into(), role: Role::Agent }
        );
        gate.logout(&session.token).await.unwrap();
        assert!(gate.caller(&session.token).await.is_err(), "logged out");

        for _ in 0..3 {
            assert!(matches!(gate.login("li.na", "wrong password", ip).await, Err(AuthError::BadLogin)));
        }
        assert!(matches!(
            gate.login("li.na", "correct horse battery", ip).await,
            Err(AuthError::LoginThrottled { retry_after_secs }) if retry_after_secs > 0
        ));
        assert!(matches!(
            gate.login("nobody", "whatever12345", Some("192.0.2.8".parse().unwrap())).await,
            Err(AuthError::BadLogin)
        ));

        let session = Gatekeeper::new(store.clone(), AuthSettings::default())
            .login("li.na", "correct horse battery", ip)
            .await
            .unwrap();
        disable_agent(&store, "li.na").await.unwrap();
        assert!(gate.caller(&session.token).await.is_err(), "a disabled agent's session ends");
    }

    #[test]
    fn the_rate_limit_refills_over_time() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = rt.block_on(sqlite_store(dir.path()));
        let gate =
            Gatekeeper::new(store, AuthSettings { rate_per_second: 1.0, rate_burst: 2.0, ..AuthSettings::default() });
        let bot = Caller::Key { id: "k".into(), role: Role::Bot };
        assert!(gate.spend(&bot).is_ok() && gate.spend(&bot).is_ok());
        assert!(matches!(gate.spend(&bot), Err(AuthError::RateLimited { retry_after_secs: 1 })));
        assert!(gate.spend(&Caller::Key { id: "other".into(), role: Role::Bot }).is_ok(), "per key");
        assert!(gate.spend(&Caller::Local).is_ok());
    }
}
