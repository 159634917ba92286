#!/usr/bin/env bash
# run.sh: serve on http://localhost:8080 (ADDR to change). Uses DATABASE_URL
# when set; otherwise starts the private development cluster (scripts/devdb.sh).
# Uses SMTP_URL when set; otherwise mails land as files in .data/mail/.
# Prints the sign-in page's URL once the server answers.
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
if [ $# -gt 0 ] && [ "$1" != serve ]; then
  exec bin/server "$@" # a command (migrate, keys, users, clients): nothing to announce
fi

# Serve, and once the server answers, say where the account pages are.
addr=${ADDR:-:8080}
port=${addr##*:}
url="http://localhost:$port"
ready() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null "$url/readyz" 2>/dev/null
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
  fi
}
bin/server "$@" &
server=$!
(
  while kill -0 "$server" 2>/dev/null; do
    if ready; then
      echo "account pages: $url/account/signin" >&2
      exit 0
    fi
    sleep 0.2
  done
) &
announcer=$!
trap 'kill -TERM "$server" 2>/dev/null || true' INT TERM
trap 'kill "$announcer" 2>/dev/null || true' EXIT
status=0
wait "$server" || status=$?
# A trapped signal ends the wait early: wait for the server to finish.
while kill -0 "$server" 2>/dev/null; do wait "$server" || status=$?; done
exit "$status"
