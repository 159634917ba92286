#!/usr/bin/env bash
# fuzz.sh: run every fuzz target of the module for FUZZTIME each (default
# 30s), against the same PostgreSQL as test.sh. Targets are found by name
# (func FuzzXxx in a _test.go file). A failing input is saved under the
# package's testdata/fuzz/ and then replays in every `make test`; when a
# target fails, the inputs it wrote are printed, since a CI checkout that
# is thrown away would lose them.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
use_test_database
status=0
while IFS=: read -r file target; do
  pkg="./$(dirname "$file")"
  echo "== $target $pkg (${FUZZTIME:-30s})"
  if ! go test -run='^$' -fuzz="^$target\$" -fuzztime="${FUZZTIME:-30s}" "$pkg"; then
    status=1
    dir="$(dirname "$file")/testdata/fuzz/$target"
    for f in $(git ls-files --others --exclude-standard -- "$dir" 2>/dev/null || ls "$dir"); do
      echo "---- failing input $f ----"
      cat "$f"
      echo
    done
  fi
done < <(grep -RHoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+' . | sed -E 's#^\./##; s#:func #:#' | sort)
exit $status
