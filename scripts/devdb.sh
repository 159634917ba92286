#!/usr/bin/env bash
# devdb.sh start|stop|url: a private development PostgreSQL for this
# checkout, kept in .data/ (ignored by git) and listening on 127.0.0.1:54329.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
DATA="$PWD/.data/pg"
PORT="${DEVDB_PORT:-54329}"
URL="postgres://postgres@127.0.0.1:$PORT/accounts?sslmode=disable"

case "${1:-start}" in
  start)
    mkdir -p .data
    pg_start_cluster "$DATA" "$PORT" "$PWD/.data/postgres.log"
    bin=$(pg_bindir)
    if ! "$bin/psql" -h 127.0.0.1 -p "$PORT" -U postgres -Xtqc "SELECT 1 FROM pg_database WHERE datname = 'accounts'" postgres | grep -q 1; then
      "$bin/psql" -h 127.0.0.1 -p "$PORT" -U postgres -Xqc "CREATE DATABASE accounts" postgres
    fi
    echo "$URL" ;;
  stop) pg_stop_cluster "$DATA" ;;
  url) echo "$URL" ;;
  *) echo "usage: scripts/devdb.sh start|stop|url" >&2; exit 2 ;;
esac
