//! Encryption at rest of what the store keeps of customers: AES-256-GCM under
//! named data keys, and keyed hashes (HMAC-SHA256) for what must still be
//! compared or grouped (the same question asked twice, a phone number looked up).
//!
//! A sealed value reads `enc1:<key id>:<base64 of nonce and ciphertext>`. The
//! first key of the key set seals; every key listed opens, so after a new key
//! is put first the old rows stay readable until `kefu keys rotate-data`
//! re-seals them. A vault read from a key file reads it again when it meets a
//! value sealed under a key it does not hold, so running servers open what a
//! rotation sealed under the new key. The field a value belongs to is bound in
//! as associated data: a value copied into another column does not open.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Prefix of a sealed value; values without it are legacy clear text.
const SEALED_PREFIX: &str = "enc1:";
const NONCE_BYTES: usize = 12;
const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("data key {id:?}: {message}")]
    BadKey { id: String, message: String },
    #[error("no data key: set data_key (KEFU_DATA_KEY) or data_key_file (KEFU_DATA_KEY_FILE); none is made for a PostgreSQL store, whose replicas must share theirs")]
    NoKey,
    /// The entry itself is not repeated: it may be a bare key.
    #[error("a data key has no id: write <id> <base64 key>, for example k1 followed by the key")]
    NoId,
    /// Nor is the bad id: it may be the key, written first.
    #[error("a data key's id is not 1 to 32 letters, digits, '-' or '_': write <id> <base64 key>")]
    BadId,
    #[error("cannot read data key file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write data key file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("a stored value is sealed with data key {0:?}, which is not in the key set")]
    UnknownKey(String),
    #[error("a stored value of {field} does not open: damaged, or sealed for another field")]
    Damaged { field: String },
}

struct DataKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The data keys and the blind-index key derived from the current one.
struct KeySet {
    /// The first seals; all open.
    keys: Vec<DataKey>,
    by_id: HashMap<String, usize>,
    blind: Hmac<Sha256>,
}

/// A key set, and the file it was read from.
pub struct Vault {
    set: RwLock<Arc<KeySet>>,
    source: Option<PathBuf>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self.keys();
        let ids: Vec<&str> = set.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Vault").field("key_ids", &ids).field("source", &self.source).finish()
    }
}

impl KeySet {
    fn parse(text: &str) -> Result<KeySet, VaultError> {
        let mut raw = Vec::new();
        let lines = text.lines().map(str::trim).filter(|line| !line.starts_with('#'));
        for entry in lines.flat_map(|line| line.split(',')).map(str::trim).filter(|e| !e.is_empty()) {
            let (id, key) =
                entry.split_once([' ', ':', '\t']).map(|(id, key)| (id.trim(), key.trim())).ok_or(VaultError::NoId)?;
            if id.is_empty() || id.len() > 32 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(VaultError::BadId);
            }
            let bytes = BASE64.decode(key).map_err(|e| bad_key(id, &format!("not base64: {e}")))?;
            if bytes.len() != KEY_BYTES {
                return Err(bad_key(id, &format!("is {} bytes; AES-256 needs {KEY_BYTES}", bytes.len())));
            }
            raw.push((id.to_string(), bytes));
        }
        Self::from_raw(raw)
    }

    fn from_raw(raw: Vec<(String, Vec<u8>)>) -> Result<KeySet, VaultError> {
        let (_, current) = raw.first().ok_or(VaultError::NoKey)?;
        // NOTE: HMAC takes keys of any length; this cannot fail.
        let mut blind = <Hmac<Sha256> as Mac>::new_from_slice(current).expect("HMAC accepts any key length");
        blind.update(b"kefu blind index v1");
        let blind_key = blind.finalize().into_bytes();
        let blind = <Hmac<Sha256> as Mac>::new_from_slice(&blind_key).expect("HMAC accepts any key length");
        let mut by_id = HashMap::new();
        let mut keys = Vec::with_capacity(raw.len());
        for (i, (id, bytes)) in raw.into_iter().enumerate() {
            if by_id.insert(id.clone(), i).is_some() {
                return Err(bad_key(&id, "is listed twice"));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|e| bad_key(&id, &e.to_string()))?;
            keys.push(DataKey { id, cipher });
        }
        Ok(KeySet { keys, by_id, blind })
    }
}

impl Vault {
    fn new(set: KeySet, source: Option<PathBuf>) -> Vault {
        Vault { set: RwLock::new(Arc::new(set)), source }
    }

    /// Keys from text: one `<id> <base64 of 32 bytes>` per line or comma-separated
    /// `<id>:<base64>` pairs; the first is current. `#` starts a comment line.
    pub fn parse(text: &str) -> Result<Vault, VaultError> {
        Ok(Vault::new(KeySet::parse(text)?, None))
    }

    fn keys(&self) -> Arc<KeySet> {
        self.set.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The key set of a key file, which is created with a fresh key when
    /// `create` allows and it is missing; the path comes back when it was created.
    pub fn load(file: &Path, create: bool) -> Result<(Vault, Option<PathBuf>), VaultError> {
        match std::fs::read_to_string(file) {
            Ok(text) => Ok((Vault::new(KeySet::parse(&text)?, Some(file.into())), None)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                add_key_to_file(file)?;
                let text =
                    std::fs::read_to_string(file).map_err(|source| VaultError::Read { path: file.into(), source })?;
                Ok((Vault::new(KeySet::parse(&text)?, Some(file.into())), Some(file.to_path_buf())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(VaultError::NoKey),
            Err(source) => Err(VaultError::Read { path: file.into(), source }),
        }
    }

    /// A vault with one random key, for tests and throw-away stores.
    pub fn ephemeral() -> Vault {
        let set = KeySet::from_raw(vec![("ephemeral".into(), random_key().to_vec())]).expect("a fresh key is valid");
        Vault::new(set, None)
    }

    /// Id of the key that seals.
    pub fn current_key_id(&self) -> String {
        self.keys().keys[0].id.clone()
    }

    /// `plain` sealed for `field` (a `table.column` name) under the current key.
    pub fn seal(&self, field: &str, plain: &str) -> String {
        let set = self.keys();
        let key = &set.keys[0];
        let mut nonce = [0u8; NONCE_BYTES];
        rand::thread_rng().fill_bytes(&mut nonce);
        // NOTE: AES-GCM encryption fails only past 64 GiB of plaintext.
        let sealed = key
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain.as_bytes(), aad: field.as_bytes() })
            .expect("AES-GCM seals any text a store holds");
        let mut bytes = Vec::with_capacity(NONCE_BYTES + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}:{}", key.id, BASE64.encode(bytes))
    }

    /// The clear text of a stored value of `field`; legacy clear values come back as they are.
    pub fn open(&self, field: &str, stored: &str) -> Result<String, VaultError> {
        let Some(rest) = stored.strip_prefix(SEALED_PREFIX) else { return Ok(stored.to_string()) };
        let damaged = || VaultError::Damaged { field: field.to_string() };
        let (id, data) = rest.split_once(':').ok_or_else(damaged)?;
        let mut set = self.keys();
        if !set.by_id.contains_key(id) {
            set = self.reload()?;
        }
        let key = set.by_id.get(id).map(|&i| &set.keys[i]).ok_or_else(|| VaultError::UnknownKey(id.into()))?;
        let bytes = BASE64.decode(data).map_err(|_| damaged())?;
        if bytes.len() < NONCE_BYTES {
            return Err(damaged());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let plain = key
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: field.as_bytes() })
            .map_err(|_| damaged())?;
        String::from_utf8(plain).map_err(|_| damaged())
    }

    /// The key file read again (a rotation put a new key in it); the key set as it was without a file.
    fn reload(&self) -> Result<Arc<KeySet>, VaultError> {
        let Some(file) = &self.source else { return Ok(self.keys()) };
        let text = std::fs::read_to_string(file).map_err(|source| VaultError::Read { path: file.clone(), source })?;
        let set = Arc::new(KeySet::parse(&text)?);
        *self.set.write().unwrap_or_else(|e| e.into_inner()) = set.clone();
        tracing::info!(file = %file.display(), current = %set.keys[0].id, "data keys read again");
        Ok(set)
    }

    /// Whether a stored value is sealed under the current key (rotation skips those).
    pub fn is_current(&self, stored: &str) -> bool {
        let current = self.current_key_id();
        stored.strip_prefix(SEALED_PREFIX).and_then(|rest| rest.split_once(':')).is_some_and(|(id, _)| id == current)
    }

    /// A keyed hash of `text` for `purpose`: equal texts give equal hashes, and
    /// nobody without the data key can test a guess against it.
    pub fn blind(&self, purpose: &str, text: &str) -> String {
        let mut mac = self.keys().blind.clone();
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(text.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

fn bad_key(id: &str, message: &str) -> VaultError {
    VaultError::BadKey { id: id.to_string(), message: message.to_string() }
}

fn random_key() -> [u8; KEY_BYTES] {
    let mut key = [0u8; KEY_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

/// Puts a fresh key first in the key file (creating it, readable by its owner
/// only), so it seals from now on while the older keys still open; returns its id.
pub fn add_key_to_file(file: &Path) -> Result<String, VaultError> {
    let old = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(VaultError::Read { path: file.into(), source }),
    };
    let id = format!("k{}-{:06x}", chrono::Utc::now().format("%Y%m%d"), rand::random::<u32>() & 0xff_ffff);
    let text = format!(
        "# kefu data keys: the first seals, all open. Back this file up; without it the stored customer data is lost.\n{id} {}\n{}",
        BASE64.encode(random_key()),
        old.lines().filter(|l| !l.starts_with("# kefu data keys")).map(|l| format!("{l}\n")).collect::<String>()
    );
    crate::support::fs::write_private_atomically(file, text.as_bytes())
        .map_err(|e| VaultError::Write { path: e.path, source: e.source })?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_line(id: &str) -> String {
        format!("{id} {}", BASE64.encode(random_key()))
    }

    #[test]
    fn seals_and_opens_bound_to_the_field() {
        let vault = Vault::ephemeral();
        let sealed = vault.seal("turns.text", "我叫王小明，电话13812345678");
        assert!(sealed.starts_with("enc1:ephemeral:"));
        assert!(!sealed.contains("王小明"));
        assert_eq!(vault.open("turns.text", &sealed).unwrap(), "我叫王小明，电话13812345678");
        assert!(matches!(vault.open("turns.answer", &sealed), Err(VaultError::Damaged { .. })));
        assert_ne!(vault.seal("turns.text", "x"), vault.seal("turns.text", "x"), "nonces differ");
        assert_eq!(vault.open("turns.text", "legacy clear").unwrap(), "legacy clear");
    }

    #[test]
    fn older_keys_still_open_after_a_new_key_goes_first() {
        let old_line = key_line("old");
        let old = Vault::parse(&old_line).unwrap();
        let sealed = old.seal("tickets.context", "{}");
        let both = Vault::parse(&format!("{}\n{old_line}", key_line("new"))).unwrap();
        assert_eq!(both.current_key_id(), "new");
        assert_eq!(both.open("tickets.context", &sealed).unwrap(), "{}");
        assert!(!both.is_current(&sealed));
        assert!(both.is_current(&both.seal("tickets.context", "{}")));
        let only_new = Vault::parse(&key_line("new")).unwrap();
        assert!(matches!(only_new.open("tickets.context", &sealed), Err(VaultError::UnknownKey(id)) if id == "old"));
    }

    #[test]
    fn blind_hashes_are_stable_and_keyed() {
        let line = key_line("a");
        let (a, again) = (Vault::parse(&line).unwrap(), Vault::parse(&line).unwrap());
        assert_eq!(a.blind("phone", "13812345678"), again.blind("phone", "13812345678"));
        assert_ne!(a.blind("phone", "13812345678"), a.blind("text", "13812345678"));
        assert_ne!(a.blind("phone", "13812345678"), Vault::ephemeral().blind("phone", "13812345678"));
    }

    #[test]
    fn bad_key_text_is_a_clear_error() {
        for (text, says) in [
            ("k1 notbase64!", "not base64"),
            ("k1 AAAA", "needs 32"),
            ("bad/id AAAA", "id is not"),
            ("", "no data key"),
        ] {
            let err = Vault::parse(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text:?}: {err}");
        }
        let key = "W5ralX7jiFALjxQ6mxjcNfTI69Y5O8wvj/QYveIbQ9E=";
        for (text, says) in [(key.to_string(), "has no id"), (format!("{key} k1"), "id is not")] {
            let err = Vault::parse(&text).unwrap_err().to_string();
            assert!(err.contains(says) && !err.contains(key), "the key is not echoed: {err}");
        }
        let line = key_line("same");
        assert!(Vault::parse(&format!("{line},{line}")).unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn the_key_file_is_created_and_grows_at_the_front() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys/kefu.key");
        #[cfg(unix)]
        let mode =
            |f: &Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(f).unwrap().permissions()) & 0o777;
        assert!(matches!(Vault::load(&file, false), Err(VaultError::NoKey)));
        let (first, created) = Vault::load(&file, true).unwrap();
        assert_eq!(created.as_deref(), Some(file.as_path()));
        #[cfg(unix)]
        assert_eq!(mode(&file), 0o600);
        let sealed = first.seal("f", "v");
        let id = add_key_to_file(&file).unwrap();
        let (second, created) = Vault::load(&file, true).unwrap();
        assert!(created.is_none());
        assert_eq!(second.current_key_id(), id);
        assert_eq!(second.open("f", &sealed).unwrap(), "v");

        // A vault loaded before a rotation opens what the rotation sealed, reading the file again.
        add_key_to_file(&file).unwrap();
        let (rotated, _) = Vault::load(&file, false).unwrap();
        let under_new_key = rotated.seal("f", "w");
        assert_eq!(second.open("f", &under_new_key).unwrap(), "w");
        assert_eq!(second.current_key_id(), rotated.current_key_id(), "and seals with the new key from then on");
    }
}
