#!/usr/bin/env bash
# test.sh: every test, with the race detector, against a real PostgreSQL:
# TEST_DATABASE_URL when set, else the server on 127.0.0.1:5432 when one
# answers, else a throwaway cluster started here and removed afterwards.
# Extra arguments go to `go test` (for example -run TestLogin). Without -v,
# the run prints a line per package and, when anything failed, the whole
# output of every failed test at the end (scripts/testreport).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
use_test_database
for a in "$@"; do
  case "$a" in -v|-v=*|-json) exec go test -race -count=1 "$@" ./... ;; esac
done
report=$(mktemp -d)
trap 'rm -rf "$report"' EXIT
go build -o "$report/testreport" ./scripts/testreport
go test -race -count=1 -json "$@" ./... 2>&1 | "$report/testreport"
