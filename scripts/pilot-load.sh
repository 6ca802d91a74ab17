#!/usr/bin/env bash
# The pilot under load: starts `kefu serve` on the demo corpus with a fresh
# database and five agent accounts, then runs `kefu load --pilot` (50 web chat
# visitors and 5 agents for 60 s by default) and prints its count of messages
# sent and received in both directions and the answer latency.
# Usage: scripts/pilot-load.sh [visitors, default 50] [seconds, default 60] [--json]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/serve-lib.sh

visitors="${1:-50}"
seconds="${2:-60}"
json="${3:-}"
work="$(mktemp -d)"
port=$((20000 + RANDOM % 20000))
cleanup() {
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

export KEFU_DATABASE_URL="sqlite://$work/kefu.db" KEFU_ENTERPRISE_DATABASE_URL="sqlite://$work/demo.db"
export KEFU_API_KEYS="admin:load-admin-$RANDOM$RANDOM$RANDOM$RANDOM"
agents=""
for n in 1 2 3 4 5; do
  password="load-agent-password-$n-$RANDOM"
  echo "$password" | target/debug/kefu agent add "load-agent-$n" >/dev/null 2>&1
  agents="$agents${agents:+,}load-agent-$n:$password"
done
RUST_LOG="${RUST_LOG:-warn}" target/debug/kefu serve --addr "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server=$!
wait_ready "$port" "$server" "$work/server.log"
KEFU_LOAD_AGENTS="$agents" target/debug/kefu load --pilot --url "http://127.0.0.1:$port" \
  --visitors "$visitors" --seconds "$seconds" $json
echo "server RSS: $(ps -o rss= -p "$server" | awk '{printf "%.0f MB", $1/1024}')"
