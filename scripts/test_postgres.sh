#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests, from Debian's package, on loopback only:
#   eval "$(bash scripts/test_postgres.sh start)"   # exports ORCH_TEST_PG_URL, ORCH_TEST_PG_DIR
#   bash scripts/test_postgres.sh stop "$ORCH_TEST_PG_DIR"
# Runs as the `postgres` user (initdb refuses root) in a fresh data folder on a free port,
# with trust authentication: nothing listens beyond 127.0.0.1.
set -euo pipefail

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
  echo "$d"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

case "${1:-}" in
  start)
    bin=$(bindir)
    dir=$(mktemp -d /tmp/orch-test-pg.XXXXXX)
    chown postgres: "$dir"
    port=$(free_port)
    as_postgres "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >/dev/null
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" \
      >/dev/null
    echo "export ORCH_TEST_PG_URL=postgresql://postgres@127.0.0.1:$port/postgres"
    echo "export ORCH_TEST_PG_DIR=$dir"
    ;;
  stop)
    dir=${2:?usage: test_postgres.sh stop DIR}
    as_postgres "$(bindir)/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *)
    echo "usage: test_postgres.sh start | stop DIR" >&2
    exit 2
    ;;
esac
