#!/usr/bin/env bash
# test.sh: every test, with the race detector, against a real PostgreSQL:
# TEST_DATABASE_URL when set, else the server on 127.0.0.1:5432 when one
# answers, else a throwaway cluster started here and removed afterwards.
# Extra arguments go to `go test` (for example -run TestLogin).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
use_test_database
go test -race -count=1 "$@" ./...
