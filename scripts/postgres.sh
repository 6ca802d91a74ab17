#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests: its own data directory and
# port on loopback, installed from Debian's `postgresql` package when missing
# (as root). The replica test and the store's PostgreSQL cases run on it.
#   eval "$(scripts/postgres.sh start)"   # exports KEFU_TEST_POSTGRES_URL and KEFU_TEST_POSTGRES_DIR
#   scripts/postgres.sh stop              # stops it and removes its data
set -euo pipefail

find_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

as_owner() {
  # initdb and the server refuse to run as root: they run as the postgres user.
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "${1:-}" in
  start)
    bin="$(find_bin)"
    if [ -z "$bin" ]; then
      if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "installing PostgreSQL (Debian package postgresql)" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        bin="$(find_bin)"
      else
        echo "PostgreSQL is not installed and cannot be installed here (needs root and apt-get)" >&2
        exit 1
      fi
    fi
    dir="$(mktemp -d /tmp/kefu-pg.XXXXXX)"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      exit 1
    }
    # fsync off: a test cluster is thrown away, and the tests kill kefu, never PostgreSQL.
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >&2
    echo "export KEFU_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/postgres"
    echo "export KEFU_TEST_POSTGRES_DIR=$dir"
    ;;
  stop)
    dir="${KEFU_TEST_POSTGRES_DIR:?start it first}"
    as_owner "$(find_bin)/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *)
    echo "usage: scripts/postgres.sh start|stop" >&2
    exit 2
    ;;
esac
