#!/usr/bin/env bash
# What Prometheus metrics cost a customer's answer: starts two `kefu serve`
# on the demo corpus, one with metrics (the default) and one with
# api.metrics = false, and runs `kefu load` against each in turn, alternating
# so both see the same machine, then prints the p50 of each run and the
# ratio of the medians. Machines here are shared and noisy: read the ratio.
# Usage: scripts/metrics-overhead.sh [rounds, default 3] [seconds per run, default 20] [clients, default 1]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/serve-lib.sh

rounds="${1:-3}"
seconds="${2:-20}"
clients="${3:-1}"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

start() { # name metrics port
  mkdir -p "$work/$1"
  KEFU_DATABASE_URL="sqlite://$work/$1/kefu.db" KEFU_ENTERPRISE_DATABASE_URL="sqlite://$work/$1/demo.db" \
    KEFU_METRICS="$2" RUST_LOG=warn target/debug/kefu serve --addr "127.0.0.1:$3" >"$work/$1.log" 2>&1 &
  pids+=($!)
  wait_ready "$3" "$!" "$work/$1.log"
}
on=$((20000 + RANDOM % 10000))
off=$((on + 1))
start on true "$on"
start off false "$off"
curl -sf "http://127.0.0.1:$off/metrics" >/dev/null && { echo "metrics still on" >&2; exit 1; }

p50() { target/debug/kefu load --url "http://127.0.0.1:$1" --clients "$clients" --seconds "$seconds" --json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["latency_ms_p50"])'; }
with=(); without=()
for round in $(seq 1 "$rounds"); do
  with+=("$(p50 "$on")")
  without+=("$(p50 "$off")")
  echo "round $round: p50 with metrics ${with[-1]} ms, without ${without[-1]} ms"
done
python3 - "${with[*]}" "${without[*]}" <<'PY'
import statistics, sys
on = [float(x) for x in sys.argv[1].split()]
off = [float(x) for x in sys.argv[2].split()]
a, b = statistics.median(on), statistics.median(off)
print(f"median p50: with metrics {a:.2f} ms, without {b:.2f} ms; ratio {a / b:.3f} ({(a / b - 1) * 100:+.1f}%)")
PY
