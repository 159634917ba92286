#!/usr/bin/env bash
# chaos.sh (make chaos): the fault cases of issue 13 and a soak, on loopback
# against a private PostgreSQL cluster that this script starts and removes
# (never the machine's own), bounded in time; writes RELIABILITY.md.
#
#   SOAK=10m           how long the soak runs (default 10m)
#   SOAK_INTERVAL=1m   its sampling interval (default 1m)
#   SOAK_CONCURRENCY   its connections (default 16)
#   SOAK_ACCESS_TTL    the soak server's ACCESS_TOKEN_TTL (default 1m, see below)
#   SOAK_RATE          its requests per second, all connections together
#                      (default 300: a steady load a 2-core machine holds)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"

SOAK="${SOAK:-10m}"
SOAK_INTERVAL="${SOAK_INTERVAL:-1m}"
C="${SOAK_CONCURRENCY:-16}"
RATE="${SOAK_RATE:-300}"
# The server caches each access token it verified until the token expires,
# so at the default 15m TTL that cache grows for the soak's first 15 minutes
# by design; with 1m it has its steady size before the second minute.
TTL="${SOAK_ACCESS_TTL:-1m}"

# seconds DURATION: 90s, 10m or 1h in seconds.
seconds() {
  case "$1" in
    *h) echo $(( ${1%h} * 3600 )) ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *s) echo "${1%s}" ;;
    *) echo "SOAK and SOAK_INTERVAL take 90s, 10m or 1h, not $1" >&2; exit 2 ;;
  esac
}
seconds "$SOAK" >/dev/null; seconds "$SOAK_INTERVAL" >/dev/null

work=$(mktemp -d /tmp/accounts-chaos.XXXXXX)
chmod 755 "$work"
port=$(( 56000 + RANDOM % 4000 ))
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  pg_stop_cluster "$work/data"
  rm -rf "$work"
}
trap cleanup EXIT

echo "chaos: a private cluster on 127.0.0.1:$port" >&2
pg_start_cluster "$work/data" "$port" "$work/postgres.log"
admin="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
PSQL="$(pg_bindir)/psql"; [ -x "$PSQL" ] || PSQL=psql

mkdir -p bin
go build -o bin/server ./cmd/server
go build -o bin/loadtest ./cmd/loadtest

# The fault cases: the Go tests, every database of theirs on the private
# cluster (the restart test starts a cluster of its own as well).
faults="$work/faults"
mkdir -p "$faults"
status=0
echo "chaos: fault cases (go test -run TestFault)" >&2
TEST_DATABASE_URL="$admin" REQUIRE_PRIVATE_PG=1 FAULT_REPORT="$faults" \
  timeout 600 go test -race -count=1 -v -run 'TestFault' ./cmd/server/ >"$work/faults.log" 2>&1 || status=1
echo "chaos: the silent listener again, at the default heartbeat (1s)" >&2
TEST_DATABASE_URL="$admin" REQUIRE_PRIVATE_PG=1 FAULT_REPORT="$faults" FAULT_HEARTBEAT=1s \
  timeout 300 go test -race -count=1 -v -run 'TestFaultSilentListener$' ./cmd/server/ >>"$work/faults.log" 2>&1 || status=1
grep -E '^(--- |=== RUN|ok|FAIL|PASS)' "$work/faults.log" | grep -v '=== RUN' >&2 || true
faults_status=$status
[ "$status" = 0 ] || { echo "chaos: a fault case failed:" >&2; grep -vE '^(=== (RUN|PAUSE|CONT))' "$work/faults.log" | tail -80 >&2; }

# The soak: the built binary, the load tool's mixed scenario.
"$PSQL" "$admin" -Xqc "CREATE DATABASE soak"
dburl="postgres://postgres@127.0.0.1:$port/soak?sslmode=disable"
# A port found free can be taken by another process first: try a few.
for _ in 1 2 3 4 5; do
  sport=$(( 50000 + RANDOM % 6000 ))
  DATABASE_URL="$dburl" ADDR="127.0.0.1:$sport" IP_RATE_LIMIT=0 LOG_LEVEL=warn ACCESS_TOKEN_TTL="$TTL" bin/server 2>"$work/server.log" &
  server_pid=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$sport/readyz" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$sport/readyz" >/dev/null 2>&1 && break
  kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=""
done
[ -n "$server_pid" ] || { echo "server did not start:"; cat "$work/server.log"; exit 1; } >&2
echo "chaos: soak, scenario mixed, $C connections, $RATE requests/s for $SOAK (a row every $SOAK_INTERVAL)" >&2
soak_ok=held
soak_limit=$(( $(seconds "$SOAK") + 300 ))
timeout "$soak_limit" bin/loadtest -url "http://127.0.0.1:$sport" -scenario mixed -c "$C" -d "$SOAK" \
  -rate "$RATE" -warmup 30s -soak "$SOAK_INTERVAL" -pid "$server_pid" -db "$dburl" >"$work/soak.md" 2>"$work/soak.err" || { soak_ok="**not held**"; status=1; }
cat "$work/soak.err" >&2
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""

pgv=$("$PSQL" "$admin" -Xtqc 'SHOW server_version' | tr -d ' ')
{
  echo "# Reliability"
  echo
  echo "Written by \`make chaos\` (scripts/chaos.sh) on $(date -u '+%Y-%m-%d %H:%M UTC'): the fault cases of"
  echo "issue 13 and a soak, on loopback against a private PostgreSQL cluster the script started"
  echo "(the restart case starts one of its own), never the machine's own server."
  echo
  echo "- Machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), shared with other work; load generator on the same machine"
  echo "- Go $(go env GOVERSION), PostgreSQL $pgv; the fault cases are the Go tests \`TestFault*\` in cmd/server/faults_test.go (also run by \`make test\` in CI), under the race detector"
  echo "- Counts are answers by HTTP status as the clients saw them (\`no answer\`: a transport error); every answer was also checked against api/openapi.yaml"
  echo
  echo "## Fault cases"
  echo
  if ls "$faults"/*.md >/dev/null 2>&1; then
    for f in "$faults"/*.md; do cat "$f"; done  # the glob sorts: by case, then by time
  else
    echo "(no fault case reported: see the test output)"
  fi
  if [ "$faults_status" != 0 ]; then echo "Not every case held: see the sections marked FAILED (and the test output)."; fi
  echo
  echo "## Soak ($SOAK of \`loadtest -scenario mixed\`, $C connections, $RATE requests/s: 90 % \`GET /v1/me\`, 8 % refresh, 2 % login): $soak_ok"
  echo
  echo "The server runs with its defaults but ACCESS_TOKEN_TTL=$TTL and IP_RATE_LIMIT=0: it caches each"
  echo "access token it verified until the token expires, so at the default 15m that cache (and the"
  echo "RSS) grows for the first 15 minutes by design; at $TTL it reaches its steady size in the warm-up."
  echo
  echo "First 30 s as fast as the connections can, not measured: the pool and the heap grow to their"
  echo "working size. Then every $SOAK_INTERVAL: that interval's requests, errors and latency; the server's"
  echo "RSS (VmRSS of /proc/PID/status) sampled 12 times, its mean (the criterion: a garbage-collected"
  echo "heap's RSS is a sawtooth) and its highest; the connections to its database (pg_stat_activity),"
  echo "the most of 12 samples; and at its end goroutines and open file descriptors (its /metrics: the"
  echo "lowest of 20 scrapes over a second, since requests in flight hold a goroutine each for a"
  echo "moment). The criteria: at the last interval each of"
  echo "the four within 10 % of the second's (either way); each interval's p99 from the second on at"
  echo "most 1.5× the second's (the first is the warm-up, shown); no errors."
  echo
  cat "$work/soak.md"
  if [ "$SOAK" != 10m ]; then
    echo
    echo "This soak ran $SOAK (SOAK=$SOAK), not the 10 minutes the issue asks for: \`make chaos\` runs 10 minutes by default."
  fi
} >RELIABILITY.md
echo "chaos: wrote RELIABILITY.md" >&2
exit "$status"
