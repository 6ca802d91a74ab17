//! Starts the real `kefu` binary on a free loopback port with its own database,
//! and waits until it is ready.

#![allow(dead_code)] // each test binary uses its own subset of these helpers

pub mod fake_platforms;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// True when the default model is installed; tests that need it say so loudly otherwise.
pub fn model_installed() -> bool {
    let ok = repo().join("models/multilingual-e5-small/model.safetensors").exists();
    if !ok {
        eprintln!("the default model is not installed: run scripts/test.sh (it fetches it)");
    }
    ok
}

/// The Python with the independent clients (wechatpy, prometheus-client,
/// jsonschema) that scripts/test.sh installs, if there is one; CI must have it.
pub fn client_python() -> Option<PathBuf> {
    let python = repo().join(".venv-clients/bin/python");
    if python.exists() {
        return Some(python);
    }
    let message =
        "the test clients are not installed (.venv-clients): run scripts/test.sh, which installs them from PyPI";
    assert!(std::env::var("CI").is_err(), "{message}");
    eprintln!("SKIPPED: {message}");
    None
}

/// Runs the client `script` of tests/clients with `args` against `server`;
/// the JSON it prints. A failure shows the client's errors and the server's log.
pub fn run_client(python: &Path, script: &str, args: &[&str], server: &Server) -> serde_json::Value {
    let output = Command::new(python)
        .arg(repo().join("tests/clients").join(script))
        .args(args)
        .output()
        .expect("run the client");
    assert!(
        output.status.success(),
        "{script} {args:?} failed:\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log_text()
    );
    serde_json::from_slice(&output.stdout).expect("the client's JSON")
}

pub struct Server {
    child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
    env: Vec<(String, String)>,
    starts: usize,
    /// The address it listens on, without the port.
    host: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// The binary servers run: this build's, or `KEFU_TEST_BIN` (say a release
/// build, to measure throughput with the tests' scenarios).
fn kefu_binary() -> PathBuf {
    std::env::var_os("KEFU_TEST_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kefu")), PathBuf::from)
}

/// Starts `kefu serve` on `host` and a free port with its databases in `dir`;
/// returns the child, its base URL (on loopback) and log path.
fn spawn(host: &str, dir: &Path, env: &[(String, String)], starts: usize) -> (Child, String, PathBuf) {
    let port = free_port();
    let log = dir.join(format!("server-{starts}.log"));
    let mut cmd = Command::new(kefu_binary());
    cmd.current_dir(repo())
        .args(["serve", "--addr", &format!("{host}:{port}")])
        .env("KEFU_DATABASE_URL", format!("sqlite://{}/kefu.db", dir.display()))
        .env("KEFU_ENTERPRISE_DATABASE_URL", format!("sqlite://{}/demo.db", dir.display()))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    (cmd.spawn().expect("start kefu"), format!("http://127.0.0.1:{port}"), log)
}

impl Server {
    /// Starts a server on the shipped corpus with extra environment settings.
    pub async fn start(env: &[(&str, &str)]) -> Server {
        Self::start_on("127.0.0.1", env).await
    }

    /// [`Server::start`] listening on `host` (say 0.0.0.0) instead of loopback only.
    pub async fn start_on(host: &str, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let (child, base, log) = spawn(host, dir.path(), &env, 0);
        let server = Server { child, base, dir, log, env, starts: 1, host: host.to_string() };
        server.wait_ready(Duration::from_secs(900)).await;
        server
    }

    /// Kills the server with SIGKILL (no graceful shutdown) and starts it again on the same databases.
    pub async fn restart(&mut self) {
        self.kill();
        let (child, base, log) = spawn(&self.host, self.dir.path(), &self.env, self.starts);
        (self.child, self.base, self.log) = (child, base, log);
        self.starts += 1;
        self.wait_ready(Duration::from_secs(900)).await;
    }

    /// The process id, to signal the server from a test.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// [`Server::start`] for a server speaking HTTPS (`env` gives its
    /// certificate and key): ready once its log says so.
    pub async fn start_tls(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let (child, base, log) = spawn("127.0.0.1", dir.path(), &env, 0);
        let server = Server { child, base, dir, log, env, starts: 1, host: "127.0.0.1".into() };
        let started = Instant::now();
        while !server.log_text().contains(" ready") {
            assert!(started.elapsed() < Duration::from_secs(900), "not ready; log:\n{}", server.log_text());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        server
    }

    pub async fn wait_ready(&self, limit: Duration) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(started.elapsed() < limit, "server not ready after {limit:?}; log:\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("kefu.db")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn post(base: &str, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new().post(format!("{base}{path}")).json(&body).send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

pub async fn get(base: &str, path: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(format!("{base}{path}")).await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

pub fn run_kefu(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kefu")).current_dir(repo()).args(args).output().expect("run kefu")
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read json")).expect("parse json")
}
