//! Model versions on disk. Each retrain writes `<versions_dir>/<id>/` with
//! `report.json` (metrics of candidate and baseline, the gate's decision,
//! timestamps, status), `corrections.jsonl` (the corrections it was trained
//! and gated with) and, for promoted versions, `model/` (the fitted
//! [`IntentModel`]). `<versions_dir>/current` names the version to serve; no
//! pointer means the model built from the corpus alone ("base").
//!
//! NOTE: rejected candidates keep their report and corrections, so a reviewer
//! can see why the gate said no, but their model is not written: a rejected
//! model is never served, and a model is megabytes per version.
//!
//! Every write goes to a temporary name first and is renamed into place, so a
//! reader (a server polling the pointer) never sees half a file or half a version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::gate::GateDecision;
use crate::nlu::intent::{IntentError, IntentModel};
use crate::support::fs::{replace_dir, write_atomically, FsError};

/// The id of the model built from the corpus alone, served when no version is current.
pub use crate::engine::BASE_VERSION;

const CURRENT: &str = "current";
const REPORT: &str = "report.json";
const CORRECTIONS: &str = "corrections.jsonl";
const MODEL: &str = "model";

#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot write {0}")]
    Fs(#[from] FsError),
    #[error("{path} is not a valid version file: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("no version {0:?} in the versions folder")]
    NoSuchVersion(String),
    #[error("no version is current, so there is nothing to roll back")]
    NothingToRollBack,
    #[error("version {0:?} has no saved model (it was not promoted)")]
    NoModel(String),
    #[error(transparent)]
    Model(#[from] IntentError),
}

/// Where a version is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionStatus {
    /// Passed the gate and was made current (it may have been superseded since).
    Promoted,
    /// Failed the gate; never served.
    Rejected,
    /// Was promoted, then rolled back; rollbacks skip it.
    RolledBack,
}

impl VersionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionStatus::Promoted => "promoted",
            VersionStatus::Rejected => "rejected",
            VersionStatus::RolledBack => "rolled_back",
        }
    }
}

/// Figures of one version on one evaluation set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SetMetrics {
    pub n: usize,
    /// Over in-scope lines; null when there are none.
    pub intent_accuracy: Option<f64>,
    pub decision_accuracy: Option<f64>,
    pub oos_recall: Option<f64>,
    /// Share of lines whose predicted intent (or oos) is the labelled one.
    pub accuracy: Option<f64>,
}

/// What a retrain learned from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub corpus_examples: usize,
    /// Corrections trained on.
    pub corrections_used: usize,
    /// Corrections kept out of training to gate on.
    pub corrections_held_out: usize,
    /// Corrections naming an intent the corpus no longer has.
    pub corrections_skipped: usize,
    pub exemplars: usize,
    pub cv_in_scope_accuracy: f32,
    pub cv_oos_recall: Option<f32>,
    pub fit_seconds: f64,
}

/// `report.json` of a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionReport {
    pub version: String,
    pub status: VersionStatus,
    pub created_at: DateTime<Utc>,
    pub promoted_at: Option<DateTime<Utc>>,
    pub rolled_back_at: Option<DateTime<Utc>>,
    /// The version the candidate was compared with ([`BASE_VERSION`] for the corpus-built model).
    pub baseline_version: String,
    /// What the saved model must match to be served.
    pub model_format: String,
    pub corpus_fingerprint: String,
    pub encoder_fingerprint: String,
    pub training: TrainingSummary,
    /// Per evaluation set (file stem, or `held_out_corrections`).
    pub baseline: BTreeMap<String, SetMetrics>,
    pub candidate: BTreeMap<String, SetMetrics>,
    pub gate: GateDecision,
    /// Wall time of the whole retrain.
    pub seconds: f64,
}

/// One correction as a version records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionCorrection {
    pub text: String,
    pub intent: String,
    /// Kept out of training, used by the gate.
    pub held_out: bool,
}

/// A new, sortable, unique version id: `v<UTC date>-<time>-<random>`.
pub fn new_version_id(at: DateTime<Utc>) -> String {
    format!("v{}-{}", at.format("%Y%m%d-%H%M%S"), &uuid::Uuid::new_v4().simple().to_string()[..6])
}

/// Saves a model into the folder it is given (`IntentModel::save`, or a stand-in in tests).
pub type ModelWriter<'a> = &'a dyn Fn(&Path) -> Result<(), IntentError>;

/// The versions folder.
#[derive(Debug, Clone)]
pub struct VersionStore {
    dir: PathBuf,
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollback {
    pub from: String,
    /// The version now current ([`BASE_VERSION`] when none is left).
    pub to: String,
}

impl VersionStore {
    pub fn new(dir: impl Into<PathBuf>) -> VersionStore {
        VersionStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VersionError + '_ {
        move |source| VersionError::Io { path: path.to_path_buf(), source }
    }

    /// Writes a new version atomically: everything goes into a temporary
    /// folder that is renamed to `<id>` at the end. `write_model` (only for
    /// versions that will be served) saves the model into the folder it is given.
    pub fn create(
        &self,
        report: &VersionReport,
        corrections: &[VersionCorrection],
        write_model: Option<ModelWriter<'_>>,
    ) -> Result<PathBuf, VersionError> {
        let dest = self.dir.join(&report.version);
        replace_dir(&dest, |tmp| {
            if let Some(write) = write_model {
                write(&tmp.join(MODEL))?;
            }
            let mut lines = String::new();
            for c in corrections {
                lines.push_str(
                    &serde_json::to_string(c)
                        .map_err(|e| VersionError::Corrupt { path: tmp.join(CORRECTIONS), message: e.to_string() })?,
                );
                lines.push('\n');
            }
            let path = tmp.join(CORRECTIONS);
            std::fs::write(&path, lines).map_err(Self::io(&path))?;
            write_json(&tmp.join(REPORT), report)
        })?;
        Ok(dest)
    }

    /// Every version, oldest first. Folders without a readable report are skipped with a warning.
    pub fn list(&self) -> Result<Vec<VersionReport>, VersionError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(VersionError::Io { path: self.dir.clone(), source: e }),
        };
        let mut reports = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.path().is_dir() {
                continue;
            }
            match self.report(&name) {
                Ok(report) => reports.push(report),
                Err(err) => tracing::warn!(version = %name, error = %err, "skipping an unreadable version"),
            }
        }
        reports.sort_by(|a, b| a.version.cmp(&b.version));
        Ok(reports)
    }

    /// The report of one version.
    pub fn report(&self, id: &str) -> Result<VersionReport, VersionError> {
        let path = self.version_dir(id)?.join(REPORT);
        let bytes = std::fs::read(&path).map_err(Self::io(&path))?;
        serde_json::from_slice(&bytes).map_err(|e| VersionError::Corrupt { path, message: e.to_string() })
    }

    /// The corrections a version was trained and gated with.
    pub fn corrections(&self, id: &str) -> Result<Vec<VersionCorrection>, VersionError> {
        let path = self.version_dir(id)?.join(CORRECTIONS);
        let text = std::fs::read_to_string(&path).map_err(Self::io(&path))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .map_err(|e| VersionError::Corrupt { path: path.clone(), message: e.to_string() })
            })
            .collect()
    }

    /// The saved model of a promoted version.
    pub fn load_model(&self, id: &str) -> Result<IntentModel, VersionError> {
        let dir = self.version_dir(id)?.join(MODEL);
        if !dir.exists() {
            return Err(VersionError::NoModel(id.to_string()));
        }
        Ok(IntentModel::load(&dir)?)
    }

    /// The version the pointer names, `None` when no pointer exists (serve the base model).
    pub fn current(&self) -> Result<Option<String>, VersionError> {
        let path = self.dir.join(CURRENT);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let id = text.trim().to_string();
                self.version_dir(&id)?;
                Ok(Some(id))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(VersionError::Io { path, source: e }),
        }
    }

    /// Points `current` at `id` (or removes the pointer for the base model), atomically.
    pub fn set_current(&self, id: Option<&str>) -> Result<(), VersionError> {
        let path = self.dir.join(CURRENT);
        match id {
            Some(id) => {
                self.version_dir(id)?;
                Ok(write_atomically(&path, format!("{id}\n").as_bytes())?)
            }
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(VersionError::Io { path, source: e }),
                _ => Ok(()),
            },
        }
    }

    /// Makes the previous promoted version current: the current one is marked
    /// rolled back and the most recently promoted version still standing
    /// takes its place (the base model when none is left).
    pub fn rollback(&self, at: DateTime<Utc>) -> Result<Rollback, VersionError> {
        let from = self.current()?.ok_or(VersionError::NothingToRollBack)?;
        let mut report = self.report(&from)?;
        report.status = VersionStatus::RolledBack;
        report.rolled_back_at = Some(at);
        write_json(&self.version_dir(&from)?.join(REPORT), &report)?;
        let to = self
            .list()?
            .into_iter()
            .filter(|r| {
                r.status == VersionStatus::Promoted
                    && r.version != from
                    && self.version_dir(&r.version).is_ok_and(|d| d.join(MODEL).exists())
            })
            .max_by(|a, b| (a.promoted_at, &a.version).cmp(&(b.promoted_at, &b.version)))
            .map(|r| r.version);
        self.set_current(to.as_deref())?;
        Ok(Rollback { from, to: to.unwrap_or_else(|| BASE_VERSION.to_string()) })
    }

    /// The folder of an existing version; ids are plain names, never paths.
    fn version_dir(&self, id: &str) -> Result<PathBuf, VersionError> {
        let plain = !id.is_empty()
            && id != CURRENT
            && !id.starts_with('.')
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let dir = self.dir.join(id);
        if plain && dir.is_dir() {
            Ok(dir)
        } else {
            Err(VersionError::NoSuchVersion(id.to_string()))
        }
    }
}

fn figure(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"))
}

/// The short human summary of a retrain.
impl std::fmt::Display for VersionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            VersionStatus::Promoted => {
                writeln!(f, "version {}: promoted and made current (was {})", self.version, self.baseline_version)?
            }
            VersionStatus::Rejected => writeln!(
                f,
                "version {}: rejected by the eval gate; {} stays current",
                self.version, self.baseline_version
            )?,
            VersionStatus::RolledBack => writeln!(f, "version {}: rolled back", self.version)?,
        }
        let t = &self.training;
        writeln!(
            f,
            "trained on {} corpus examples + {} corrections ({} held out for the gate, {} skipped) in {:.1}s; whole retrain {:.1}s",
            t.corpus_examples, t.corrections_used, t.corrections_held_out, t.corrections_skipped, t.fit_seconds, self.seconds
        )?;
        writeln!(f, "{:<40} {:>9} {:>9} {:>8}", "metric", "current", "candidate", "change")?;
        for c in &self.gate.checks {
            let change = c.drop.map_or_else(String::new, |d| format!("{:+.3}", 0.0 - d));
            let mark = if c.passed { "" } else { "  <- dropped too far" };
            writeln!(f, "{:<40} {:>9} {:>9} {:>8}{mark}", c.metric, figure(c.baseline), figure(c.candidate), change)?;
        }
        writeln!(f, "{}", self.gate.reason)
    }
}

/// The versions as a table, newest first; `*` marks the current one.
pub fn table(reports: &[VersionReport], current: Option<&str>) -> String {
    let mut out = format!(
        "  {:<24} {:<11} {:<17} {:>10} {:>9} {:>10}\n",
        "version", "status", "created (UTC)", "intent", "decision", "oos recall"
    );
    for r in reports.iter().rev() {
        let first = r.candidate.iter().find(|(name, _)| name.as_str() != super::HELD_OUT_SET).map(|(_, m)| m);
        let mark = if current == Some(r.version.as_str()) { "*" } else { " " };
        out.push_str(&format!(
            "{mark} {:<24} {:<11} {:<17} {:>10} {:>9} {:>10}\n",
            r.version,
            r.status.as_str(),
            r.created_at.format("%Y-%m-%d %H:%M").to_string(),
            figure(first.and_then(|m| m.intent_accuracy)),
            figure(first.and_then(|m| m.decision_accuracy)),
            figure(first.and_then(|m| m.oos_recall)),
        ));
    }
    if current.is_none() {
        out.push_str(&format!("* {BASE_VERSION} (the model built from the corpus alone) is current\n"));
    }
    out
}

/// Writes JSON through a temporary file and a rename.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), VersionError> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| VersionError::Corrupt { path: path.to_path_buf(), message: e.to_string() })?;
    Ok(write_atomically(path, &bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learning::gate;

    fn report(id: &str, status: VersionStatus, promoted_minute: Option<u32>) -> VersionReport {
        let at =
            |m: u32| DateTime::parse_from_rfc3339(&format!("2026-06-15T10:{m:02}:00Z")).unwrap().with_timezone(&Utc);
        VersionReport {
            version: id.into(),
            status,
            created_at: at(0),
            promoted_at: promoted_minute.map(at),
            rolled_back_at: None,
            baseline_version: BASE_VERSION.into(),
            model_format: "test".into(),
            corpus_fingerprint: "c".into(),
            encoder_fingerprint: "e".into(),
            training: TrainingSummary::default(),
            baseline: BTreeMap::new(),
            candidate: BTreeMap::new(),
            gate: gate::decide(&[], 0.01),
            seconds: 1.0,
        }
    }

    /// Stands in for `IntentModel::save`: the store only needs a folder written.
    fn fake_model(dir: &Path) -> Result<(), IntentError> {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("intent-model.json"), "{}").unwrap();
        Ok(())
    }

    #[test]
    fn creates_lists_and_points() {
        let tmp = tempfile::tempdir().unwrap();
        let store = VersionStore::new(tmp.path().join("versions"));
        assert_eq!(store.list().unwrap(), vec![]);
        assert_eq!(store.current().unwrap(), None);
        let corrections = vec![
            VersionCorrection { text: "钱退哪了".into(), intent: "refund_status".into(), held_out: false },
            VersionCorrection { text: "天气".into(), intent: "oos".into(), held_out: true },
        ];
        let dir =
            store.create(&report("v1", VersionStatus::Promoted, Some(1)), &corrections, Some(&fake_model)).unwrap();
        assert!(dir.join("model/intent-model.json").exists());
        store.create(&report("v2", VersionStatus::Rejected, None), &corrections, None).unwrap();
        assert!(!store.dir().join("v2/model").exists(), "rejected versions keep no model");
        store.set_current(Some("v1")).unwrap();
        assert_eq!(store.current().unwrap().as_deref(), Some("v1"));
        let ids: Vec<String> = store.list().unwrap().into_iter().map(|r| r.version).collect();
        assert_eq!(ids, ["v1", "v2"]);
        assert_eq!(store.corrections("v1").unwrap(), corrections);
        assert_eq!(store.report("v2").unwrap().status, VersionStatus::Rejected);
        // No temporary files are left behind.
        let leftovers: Vec<_> = std::fs::read_dir(store.dir())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty());
        assert!(matches!(store.load_model("v2"), Err(VersionError::NoModel(_))));
    }

    #[test]
    fn the_pointer_only_names_existing_plain_versions() {
        let tmp = tempfile::tempdir().unwrap();
        let store = VersionStore::new(tmp.path());
        assert!(matches!(store.set_current(Some("nope")), Err(VersionError::NoSuchVersion(_))));
        assert!(matches!(store.set_current(Some("../etc")), Err(VersionError::NoSuchVersion(_))));
        std::fs::write(tmp.path().join(CURRENT), "gone\n").unwrap();
        assert!(
            matches!(store.current(), Err(VersionError::NoSuchVersion(_))),
            "a dangling pointer is an error, not the base model"
        );
        store.set_current(None).unwrap();
        assert_eq!(store.current().unwrap(), None);
        store.set_current(None).unwrap();
    }

    #[test]
    fn rollback_walks_back_through_promoted_versions() {
        let tmp = tempfile::tempdir().unwrap();
        let store = VersionStore::new(tmp.path());
        assert!(matches!(store.rollback(Utc::now()), Err(VersionError::NothingToRollBack)));
        store.create(&report("v1", VersionStatus::Promoted, Some(1)), &[], Some(&fake_model)).unwrap();
        store.create(&report("v2", VersionStatus::Rejected, None), &[], None).unwrap();
        store.create(&report("v3", VersionStatus::Promoted, Some(3)), &[], Some(&fake_model)).unwrap();
        store.set_current(Some("v3")).unwrap();

        let back = store.rollback(Utc::now()).unwrap();
        assert_eq!(back, Rollback { from: "v3".into(), to: "v1".into() });
        assert_eq!(store.current().unwrap().as_deref(), Some("v1"));
        let v3 = store.report("v3").unwrap();
        assert_eq!(v3.status, VersionStatus::RolledBack);
        assert!(v3.rolled_back_at.is_some());

        // The rejected v2 is never a target; past the first version is the base model.
        let back = store.rollback(Utc::now()).unwrap();
        assert_eq!(back, Rollback { from: "v1".into(), to: BASE_VERSION.into() });
        assert_eq!(store.current().unwrap(), None);
        assert!(matches!(store.rollback(Utc::now()), Err(VersionError::NothingToRollBack)));
    }

    #[test]
    fn version_ids_sort_by_time() {
        let a = new_version_id(DateTime::parse_from_rfc3339("2026-06-15T10:00:00Z").unwrap().with_timezone(&Utc));
        let b = new_version_id(DateTime::parse_from_rfc3339("2026-06-15T10:00:01Z").unwrap().with_timezone(&Utc));
        assert!(a < b, "{a} {b}");
        assert!(a.starts_with("v20260615-100000-"));
    }
}
