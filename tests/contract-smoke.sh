#!/usr/bin/env bash
# Copied from the deployment's shared checks (checks/contract-smoke.sh); keep in sync.
# Checks a running kefu against ../contract.md: the /v1/answer response shape,
# JSON 4xx for bad input, and that the server survives it.
# Usage: contract-smoke.sh http://127.0.0.1:PORT
set -u
base=${1:?usage: contract-smoke.sh BASE_URL}
u="$base/v1/answer"; body=$(mktemp); fail=0; n=0
check() { # name want(200|4xx) curl-args...
  local name=$1 want=$2; shift 2; n=$((n+1))
  local code; code=$(curl -s -o "$body" -w '%{http_code}' "$@")
  case "$want:$code" in
    4xx:4??) python3 -c "import json,sys;d=json.load(open(sys.argv[1]));assert isinstance(d['error']['code'],str) and isinstance(d['error']['message'],str)" "$body" 2>/dev/null \
               || { echo "FAIL $name: $code without a JSON error body"; fail=$((fail+1)); } ;;
    200:200) ;;
    *) echo "FAIL $name: got $code, want $want"; fail=$((fail+1)) ;;
  esac
}
H=(-H 'content-type: application/json')
check empty-text 4xx "${H[@]}" -d '{"text":""}' "$u"
check missing-text 4xx "${H[@]}" -d '{"session_id":"s"}' "$u"
check wrong-type 4xx "${H[@]}" -d '{"text":123}' "$u"
check truncated-json 4xx "${H[@]}" -d '{"text":' "$u"
check not-an-object 4xx "${H[@]}" -d '[1,2]' "$u"
check invalid-utf8 4xx "${H[@]}" --data-binary $'{"text":"\xff\xfe"}' "$u"
# NOTE: the shared original passes this 3 MB body as one argument, which Linux
# refuses (an argument may not exceed 128 KiB), so curl never runs; here it is sent from a file.
big=$(mktemp); printf '{"text":"%s"}' "$(head -c 3000000 /dev/zero | tr '\0' 'a')" > "$big"
check oversize 4xx "${H[@]}" --data-binary @"$big" "$u"
check bad-now 4xx "${H[@]}" -d '{"text":"hello","now":"not-a-time"}' "$u"
check answer 200 "${H[@]}" -d '{"text":"退货地址在哪","channel":"web","now":"2026-06-15T10:00:00+08:00"}' "$u"
python3 - "$body" <<'PY' || fail=$((fail+1))
import json, sys
d = json.load(open(sys.argv[1]))
need = {"decision": str, "intent": (str, type(None)), "confidence": (int, float), "answer": (str, type(None)),
        "slots": dict, "candidates": list, "handoff": (dict, type(None)), "lead": bool, "trace_id": str}
for k, t in need.items():
    assert k in d, f"missing field {k}"
    assert isinstance(d[k], t), f"field {k} has type {type(d[k]).__name__}"
assert d["decision"] in ("answer", "clarify", "handoff"), d["decision"]
assert 0 <= d["confidence"] <= 1
for c in d["candidates"]:
    assert {"intent", "score", "text"} <= set(c), c
print("response shape ok:", d["decision"], d["intent"])
PY
curl -sf "$base/healthz" >/dev/null || { echo "FAIL: /healthz down after bad input"; fail=$((fail+1)); }
curl -sf "$base/readyz" >/dev/null || { echo "FAIL: /readyz not 200"; fail=$((fail+1)); }
echo "$((n + 3 - fail)) passed, $fail failed"
[ "$fail" -eq 0 ]
