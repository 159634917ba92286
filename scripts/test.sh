#!/usr/bin/env bash
# test.sh: every test, with the race detector, against a real PostgreSQL:
# TEST_DATABASE_URL when set, else the server on 127.0.0.1:5432 when one
# answers, else a throwaway cluster started here and removed afterwards.
# Extra arguments go to `go test` (for example -run TestLogin).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh

if [ -z "${TEST_DATABASE_URL:-}" ]; then
  default="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
  bin=$(pg_bindir)
  if [ -n "$bin" ] && "$bin/psql" "$default" -Xtqc "SELECT 1" >/dev/null 2>&1; then
    export TEST_DATABASE_URL="$default"
  elif psql "$default" -Xtqc "SELECT 1" >/dev/null 2>&1; then
    export TEST_DATABASE_URL="$default"
  else
    tmp=$(mktemp -d /tmp/accounts-test-pg.XXXXXX)
    chmod 755 "$tmp"
    port=$(( 55000 + RANDOM % 5000 ))
    cleanup() { pg_stop_cluster "$tmp/data"; rm -rf "$tmp"; }
    trap cleanup EXIT
    echo "no PostgreSQL on 127.0.0.1:5432: starting a throwaway cluster on port $port" >&2
    pg_start_cluster "$tmp/data" "$port" "$tmp/postgres.log"
    export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  fi
fi

go test -race -count=1 "$@" ./...
