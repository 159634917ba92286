#!/usr/bin/env bash
# run.sh: serve on http://localhost:8080 (ADDR to change). Uses DATABASE_URL
# when set; otherwise starts the private development cluster (scripts/devdb.sh).
# Uses SMTP_URL when set; otherwise mails land as files in .data/mail/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DATABASE_URL:-}" ]; then
  if ! DATABASE_URL=$(scripts/devdb.sh start); then
    echo "No DATABASE_URL and no local PostgreSQL to start one: set DATABASE_URL, or run 'docker compose up'." >&2
    exit 1
  fi
  export DATABASE_URL
  echo "using the development database $DATABASE_URL (scripts/devdb.sh stop to stop it)" >&2
fi
if [ -z "${SMTP_URL:-}" ]; then
  # No mail server: every mail is written as an .eml file in the checkout's
  # ignored data folder, where a developer can open its link.
  mkdir -p .data/mail
  export SMTP_URL="file://$(pwd)/.data/mail"
  echo "no SMTP_URL: mails are written to $(pwd)/.data/mail/*.eml" >&2
fi
mkdir -p bin
go build -o bin/server ./cmd/server
exec bin/server "$@"
