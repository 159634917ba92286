# Shared helpers for the scripts that start a private PostgreSQL cluster.
# Sourced, not run.

# pg_bindir prints the directory of initdb/pg_ctl, or nothing.
pg_bindir() {
  local d
  if command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir 2>/dev/null)
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV) /usr/local/pgsql/bin /opt/homebrew/bin /usr/local/bin /usr/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
}

# as_pg runs a command as the cluster's owner: PostgreSQL refuses to run as
# root, so root runs it as the "postgres" user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# pg_prepare_dir makes a directory the cluster's owner can write.
pg_prepare_dir() {
  mkdir -p "$1"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || { echo "running as root needs a 'postgres' system user to own the cluster" >&2; return 1; }
    chown postgres "$1"
  fi
  chmod 700 "$1"
}

# pg_start_cluster DATADIR PORT LOGFILE: initialise (once) and start a cluster
# listening on 127.0.0.1:PORT with trust auth for local connections.
pg_start_cluster() {
  local data=$1 port=$2 log=$3 bin
  bin=$(pg_bindir)
  if [ -z "$bin" ]; then
    echo "no PostgreSQL server binaries found (install PostgreSQL, or set DATABASE_URL, or run 'docker compose up')" >&2
    return 1
  fi
  pg_prepare_dir "$data" || return 1
  if [ ! -s "$data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null || return 1
  fi
  if ! as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    touch "$log" && { [ "$(id -u)" != 0 ] || chown postgres "$log"; }
    as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
      -o "-p $port -c listen_addresses=127.0.0.1 -k $data -c fsync=off" start >/dev/null || {
      echo "PostgreSQL did not start; see $log" >&2; return 1; }
  fi
}

pg_stop_cluster() {
  local bin
  bin=$(pg_bindir)
  [ -n "$bin" ] && as_pg "$bin/pg_ctl" -D "$1" -m fast -w stop >/dev/null 2>&1 || true
}

# use_test_database exports TEST_DATABASE_URL: as given, else the server on
# 127.0.0.1:5432 when it answers, else a throwaway cluster that is stopped
# and removed when the calling script exits.
use_test_database() {
  [ -n "${TEST_DATABASE_URL:-}" ] && return 0
  local default="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable" bin psql
  bin=$(pg_bindir)
  psql=$(command -v psql || true)
  [ -n "$bin" ] && [ -x "$bin/psql" ] && psql="$bin/psql"
  if [ -n "$psql" ] && "$psql" "$default" -Xtqc "SELECT 1" >/dev/null 2>&1; then
    export TEST_DATABASE_URL="$default"
    return 0
  fi
  PG_TMP=$(mktemp -d /tmp/accounts-test-pg.XXXXXX)
  chmod 755 "$PG_TMP"
  local port=$(( 55000 + RANDOM % 5000 ))
  trap 'pg_stop_cluster "$PG_TMP/data"; rm -rf "$PG_TMP"' EXIT
  echo "no PostgreSQL on 127.0.0.1:5432: starting a throwaway cluster on port $port" >&2
  pg_start_cluster "$PG_TMP/data" "$port" "$PG_TMP/postgres.log" || return 1
  export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
}
