# Shared by the scripts that start a throw-away server: wait_ready PORT PID LOG
# waits up to two minutes for /readyz, failing with the server's log if it dies.
wait_ready() {
  local port="$1" pid="$2" log="$3"
  for _ in $(seq 1 240); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.5
  done
  echo "server not ready" >&2
  tail -20 "$log" >&2
  return 1
}
