#!/usr/bin/env bash
# bench.sh: start a fresh database and server, measure the ceilings and
# every scenario (each twice: a shared 2-core machine is noisy), and write
# BENCHMARKS.md. BENCH_DURATION (default 10s) and BENCH_CONCURRENCY
# (default 32) change the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
use_test_database

DUR="${BENCH_DURATION:-10s}"
C="${BENCH_CONCURRENCY:-32}"
PORT="${BENCH_PORT:-18090}"
URL="http://127.0.0.1:$PORT"
DB="bench_$(date +%s)"
ADMIN="$TEST_DATABASE_URL"
base="${ADMIN%%\?*}"; query=""; [[ "$ADMIN" == *\?* ]] && query="?${ADMIN#*\?}"
DBURL="${base%/*}/$DB$query"
PSQL="$(pg_bindir)/psql"; [ -x "$PSQL" ] || PSQL=psql
PGBENCH="$(pg_bindir)/pgbench"; [ -x "$PGBENCH" ] || PGBENCH=pgbench
command -v "$PGBENCH" >/dev/null || { echo "pgbench is missing: apt-get install postgresql-contrib (or postgresql-client)" >&2; exit 1; }

work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  "$PSQL" "$ADMIN" -Xqc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "building" >&2
mkdir -p bin
go build -o bin/server ./cmd/server
go build -o bin/loadtest ./cmd/loadtest
"$PSQL" "$ADMIN" -Xqc "CREATE DATABASE $DB"

# Every request comes from 127.0.0.1: the per-IP limit is off for the run.
DATABASE_URL="$DBURL" ADDR="127.0.0.1:$PORT" IP_RATE_LIMIT=0 LOG_LEVEL=warn bin/server 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do curl -fs "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$URL/readyz" >/dev/null || { echo "server did not start:"; cat "$work/server.log"; exit 1; } >&2

tsv="$work/results.tsv"
lt() { echo "  loadtest $*" >&2; bin/loadtest -url "$URL" -d "$DUR" -tsv "$tsv" "$@" >/dev/null; }
q() { "$PSQL" "$DBURL" -XAtqc "$1"; }

# Storage first, while the database holds nothing else: a long refresh run
# over $C sessions (at least 50,000 refreshes), then the rows and bytes of
# refresh state per session and the WAL written per refresh.
STORAGE_DUR="${BENCH_STORAGE_DURATION:-30s}"
echo "storage: refresh for $STORAGE_DUR over $C sessions" >&2
lsn0=$(q "SELECT pg_current_wal_lsn()")
storage_json=$(bin/loadtest -url "$URL" -d "$STORAGE_DUR" -scenario refresh -c "$C" -json)
lsn1=$(q "SELECT pg_current_wal_lsn()")
storage_n=$(echo "$storage_json" | sed -E 's/.*"requests":([0-9]+).*/\1/')
q "CHECKPOINT" >/dev/null
IFS='|' read -r st_sessions st_rows st_bytes st_wal <<<"$(q "SELECT (SELECT count(*) FROM sessions),
  (SELECT count(*) FROM sessions) + (SELECT count(*) FROM refresh_tokens),
  pg_total_relation_size('sessions') + pg_total_relation_size('refresh_tokens'),
  pg_wal_lsn_diff('$lsn1', '$lsn0')")"

echo "ceilings" >&2
for i in 1 2; do lt -scenario healthz -c "$C" -label "run $i"; done

secs="${DUR%s}"
"$PSQL" "$DBURL" -Xq -v runs=4 -v clients="$C" -f scripts/bench/setup.sql
pgb() { # pgbench SCRIPT RUN: tps, or the run's output and exit
  local out
  out=$("$PGBENCH" "$DBURL" -n -M prepared -c "$C" -j 2 -T "$secs" -D k=0 -D run="$2" -f "$1" 2>&1)
  echo "$out" | grep -q "failed transactions: 0 " || { echo "pgbench $1 failed:"; echo "$out"; exit 1; } >&2
  echo "$out" | awk '/^tps = / {printf "%.0f", $3}'
}
pgbench_tps=(); onerow_tps=()
for run in 1 2; do
  pgbench_tps+=("$(pgb scripts/bench/rotate.sql "$run")")
  onerow_tps+=("$(pgb scripts/bench/one_row.sql "$(( run + 2 ))")")
done
for v in "${pgbench_tps[@]}" "${onerow_tps[@]}"; do
  [[ "$v" =~ ^[0-9]+$ ]] || { echo "a pgbench run failed (see above)" >&2; exit 1; }
done

argon=$(go test -run '^$' -bench '^BenchmarkArgon2Parallel$' -benchtime 3s -count 2 ./internal/auth | awk '/^BenchmarkArgon2Parallel/ {printf "%.1f ", 1e9/$3}')
read -r -a argon_hps <<<"$argon"

echo "scenarios" >&2
for s in me refresh login signup mixed; do
  for i in 1 2; do lt -scenario "$s" -c "$C" -label "run $i"; done
done

cores=$(nproc)
# The server sizes its hashing slots itself (from the CPUs and its memory budget); ask it.
scrape() { curl -fs "$URL/metrics" | awk -v n="$1" '$1 == n && !done {print $2; done = 1}'; } # reads to the end: an early exit would fail curl (EPIPE)
slots=$(scrape accounts_hash_slots); slots=${slots%.*}
hash_mib=$(( $(scrape accounts_hash_memory_bytes | awk '{printf "%d", $1}') / 1048576 ))
echo "overload: $(( 4 * slots )) concurrent logins for $slots hashing slots" >&2
lt -scenario login -c $(( 4 * slots )) -users "$C" -label "4x overload"
echo "1000 concurrent logins" >&2
lt -scenario login -c 1000 -users "$C" -label "1000 concurrent"
rss_kib=$(awk '/^VmHWM/ {print $2}' "/proc/$server_pid/status")

# The reference stack, side by side, when it is there (see README, Performance).
BASELINE_DIR="${BASELINE_DIR:-../shared/baselines/flask-seed}"
baseline=""
if [ -x "$BASELINE_DIR/run.sh" ] && /usr/bin/python3 -c 'import flask, flask_jwt_extended, psycopg2, gunicorn' 2>/dev/null; then
  echo "baseline: flask-seed under gunicorn (sync, 2 workers)" >&2
  FDB="flaskseed_$(date +%s)"
  "$PSQL" "$ADMIN" -Xqc "CREATE DATABASE $FDB"
  FPORT=$(( PORT + 1 ))
  DATABASE_URL="${base%/*}/$FDB$query" PORT="$FPORT" "$BASELINE_DIR/run.sh" sync 2>"$work/flask.log" &
  flask_pid=$!
  # Any HTTP answer (even 401) means it is up; curl fails only on no answer.
  for _ in $(seq 100); do if curl -s -o /dev/null "http://127.0.0.1:$FPORT/v1/me"; then break; fi; sleep 0.2; done
  for s in me refresh; do
    for i in 1 2; do
      echo "  loadtest -scenario $s (flask-seed, run $i)" >&2
      bin/loadtest -url "http://127.0.0.1:$FPORT" -d "$DUR" -tsv "$tsv" -scenario "$s" -c "$C" -label "flask-seed run $i" >/dev/null
    done
  done
  kill "$flask_pid" 2>/dev/null; wait "$flask_pid" 2>/dev/null || true
  "$PSQL" "$ADMIN" -Xqc "DROP DATABASE IF EXISTS $FDB WITH (FORCE)" >/dev/null 2>&1 || true
  baseline=1
else
  echo "baseline: not measured (no reference stack in BASELINE_DIR=$BASELINE_DIR, or its Python packages are missing)" >&2
fi

# The report.
row() { awk -F'\t' -v s="$1" -v l="$2" '$2==s && $1==l {print}' "$tsv"; }
rps() { row "$1" "$2" | cut -f4; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f %%", 100*a/b; else print "n/a" }'; }
{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` (scripts/bench.sh) on $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo
  echo "- Machine: $cores cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  echo "- Go $(go env GOVERSION), PostgreSQL $("$PSQL" "$DBURL" -Xtqc 'SHOW server_version' | tr -d ' '), load generator on the same machine"
  echo "- Server: defaults (EdDSA, argon2id with $hash_mib MiB per hash, $slots hashing slots) with IP_RATE_LIMIT=0 (every request comes from one address) and LOG_LEVEL=warn"
  echo "- Each run: $C connections for $DUR, after set-up (users, tokens) outside the timed part; every figure measured twice"
  echo
  echo "## Scenarios"
  echo
  echo "| scenario | run | concurrency | req/s | p50 ms | p90 ms | p99 ms | max ms | errors |"
  echo "|---|---|---|---|---|---|---|---|---|"
  while IFS=$'\t' read -r label scen c r p50 p90 p99 mx errs by; do
    e="$errs"; [ "$errs" != 0 ] && e="$errs $by"
    echo "| $scen | $label | $c | $r | $p50 | $p90 | $p99 | $mx | $e |"
  done <"$tsv"
  echo
  echo "## Against the ceilings"
  echo
  echo "| scenario | ceiling | ceiling, run 1 / run 2 | service, run 1 / run 2 | ratio, run 1 / run 2 | target |"
  echo "|---|---|---|---|---|---|"
  echo "| refresh | pgbench running the rotation statement alone, $C clients | ${pgbench_tps[0]} / ${pgbench_tps[1]} tps | $(rps refresh 'run 1') / $(rps refresh 'run 2') req/s | $(ratio "$(rps refresh 'run 1')" "${pgbench_tps[0]}") / $(ratio "$(rps refresh 'run 2')" "${pgbench_tps[1]}") | |"
  echo "| refresh | pgbench, one HOT update of a session-shaped row per transaction (the one-row ceiling), $C clients | ${onerow_tps[0]} / ${onerow_tps[1]} tps | $(rps refresh 'run 1') / $(rps refresh 'run 2') req/s | $(ratio "$(rps refresh 'run 1')" "${onerow_tps[0]}") / $(ratio "$(rps refresh 'run 2')" "${onerow_tps[1]}") | ≥ 33 % |"
  echo "| login | argon2id hashes/s on all cores (BenchmarkArgon2Parallel) | ${argon_hps[0]} / ${argon_hps[1]} | $(rps login 'run 1') / $(rps login 'run 2') req/s | $(ratio "$(rps login 'run 1')" "${argon_hps[0]}") / $(ratio "$(rps login 'run 2')" "${argon_hps[1]}") | ≥ 85 % |"
  echo "| me | \`GET /healthz\`, $C connections | $(rps healthz 'run 1') / $(rps healthz 'run 2') req/s | $(rps me 'run 1') / $(rps me 'run 2') req/s | $(ratio "$(rps me 'run 1')" "$(rps healthz 'run 1')") / $(ratio "$(rps me 'run 2')" "$(rps healthz 'run 2')") | ≥ 25 % |"
  echo
  if [ -n "$baseline" ]; then
    echo "## Against the reference stack (Flask + Flask-JWT-Extended, gunicorn sync × 2, PostgreSQL blocklist)"
    echo
    echo "| scenario | flask-seed, run 1 / run 2 | this service, run 1 / run 2 | ratio, run 1 / run 2 | target |"
    echo "|---|---|---|---|---|"
    for s in me refresh; do
      t=$([ "$s" = me ] && echo "≥ 8×" || echo "≥ 5×")
      f1=$(rps "$s" "flask-seed run 1"); f2=$(rps "$s" "flask-seed run 2")
      echo "| $s | $f1 / $f2 req/s | $(rps "$s" 'run 1') / $(rps "$s" 'run 2') req/s | $(awk -v a="$(rps "$s" 'run 1')" -v b="$f1" 'BEGIN {printf "%.1f×", a/b}') / $(awk -v a="$(rps "$s" 'run 2')" -v b="$f2" 'BEGIN {printf "%.1f×", a/b}') | $t |"
    done
    echo
    echo "flask-seed has no reuse detection: its refresh only blocklists the spent token."
    echo
  else
    echo "(The reference Flask stack was not measured: it needs its files in BASELINE_DIR ($BASELINE_DIR) and Debian's python3-flask, python3-python-flask-jwt-extended, python3-psycopg2 and gunicorn.)"
    echo
  fi
  echo "## Storage of refresh state"
  echo
  echo "After $storage_n refreshes over $st_sessions sessions ($C chains, $STORAGE_DUR, target ≥ 50,000 refreshes over ≤ 100 sessions):"
  echo
  echo "| figure | this run | target |"
  echo "|---|---|---|"
  echo "| rows per session in the refresh-state tables (sessions, refresh_tokens) | $(awk -v a="$st_rows" -v b="$st_sessions" 'BEGIN {printf "%.1f", a/b}') | < 10 |"
  echo "| bytes per session (both tables with their indexes) | $(( st_bytes / st_sessions )) | |"
  echo "| WAL bytes per refresh (pg_current_wal_lsn before and after the run) | $(( ${st_wal%.*} / storage_n )) | fewer than before the redesign (below) |"
  echo
  cat scripts/bench/before.md
  echo
  echo "## Logins under overload"
  echo
  o=$(row login "4x overload"); k=$(row login "1000 concurrent")
  echo "- $(( 4 * slots )) concurrent logins for $slots hashing slots: $(echo "$o" | cut -f4) req/s, p99 $(echo "$o" | cut -f7) ms (the queue wait is bounded at 1 s), refused: $(echo "$o" | cut -f9) $(echo "$o" | cut -f10)"
  echo "- 1000 concurrent logins: $(echo "$k" | cut -f4) req/s, p99 $(echo "$k" | cut -f7) ms, refused: $(echo "$k" | cut -f9) $(echo "$k" | cut -f10)"
  echo "- Peak RSS of the server over the whole run (VmHWM): $(( rss_kib / 1024 )) MiB; budget: $slots slots × $hash_mib MiB + 150 MiB = $(( slots * hash_mib + 150 )) MiB"
  echo
  echo "## Micro-benchmarks"
  echo
  echo '```'
  go test -run '^$' -bench 'IssueToken|Authenticate|RefreshToken|DecodeStrict' -benchmem ./internal/auth ./internal/http | grep -E '^Benchmark'
  echo '```'
} > BENCHMARKS.md
echo "wrote BENCHMARKS.md" >&2
