#!/usr/bin/env bash
# fuzz.sh: run every fuzz target for FUZZTIME each (default 30s), against
# the same PostgreSQL as test.sh. A failing input is saved under the
# package's testdata/fuzz/ and then replays in every `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
use_test_database
for target in \
  "FuzzDecodeStrict ./internal/http" \
  "FuzzBearerToken ./internal/http" \
  "FuzzAuthenticate ./internal/auth" \
  "FuzzRefresh ./internal/auth"; do
  set -- $target
  echo "== $1 (${FUZZTIME:-30s})"
  go test -run='^$' -fuzz="^$1\$" -fuzztime="${FUZZTIME:-30s}" "$2"
done
