#!/usr/bin/env bash
# blackbox-mail.sh: the built binary against a real SMTP server nobody here
# wrote (Debian's python3-aiosmtpd, a Maildir), driven over HTTP with curl:
# signup -> verification mail -> login refused (EMAIL_VERIFICATION=required)
# -> verify by code -> login -> forgot -> reset by link -> the old password
# fails, the new one works -> "this wasn't me" from the notice stops it.
# Needs /usr/bin/python3 with aiosmtpd (apt-get install python3-aiosmtpd),
# curl and a PostgreSQL (as scripts/test.sh finds one).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
use_test_database

PY=/usr/bin/python3
if ! "$PY" -c 'import aiosmtpd' 2>/dev/null; then
  echo "blackbox-mail: $PY has no aiosmtpd (apt-get install python3-aiosmtpd)" >&2
  exit 1
fi
work=$(mktemp -d /tmp/accounts-blackbox.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$TEST_DATABASE_URL" -Xqc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
fail() {
  echo "blackbox-mail: FAIL: $*" >&2
  echo "--- server log" >&2; tail -n 40 "$work/server.log" >&2 || true
  echo "--- aiosmtpd log" >&2; tail -n 20 "$work/smtpd.log" >&2 || true
  exit 1
}
free_port() { "$PY" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
db="blackbox_$$_$RANDOM"
trap cleanup EXIT
psql "$TEST_DATABASE_URL" -Xqc "CREATE DATABASE $db" >/dev/null
db_url=$("$PY" -c 'import sys,urllib.parse as u;p=u.urlsplit(sys.argv[1]);print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$TEST_DATABASE_URL" "$db")

go build -o "$work/server" ./cmd/server
smtp_port=$(free_port)
"$PY" -m aiosmtpd -n -l "127.0.0.1:$smtp_port" -c aiosmtpd.handlers.Mailbox "$work/maildir" >"$work/smtpd.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$smtp_port") 2>/dev/null && break; sleep 0.1; done

http_port=$(free_port)
base="http://127.0.0.1:$http_port"
DATABASE_URL="$db_url" ADDR="127.0.0.1:$http_port" SMTP_URL="smtp+insecure://127.0.0.1:$smtp_port" \
  EMAIL_VERIFICATION=required MAIL_FROM="Accounts <no-reply@blackbox.test>" JWT_ISSUER="$base" \
  "$work/server" >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fs "$base/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$base/readyz" >/dev/null || fail "the server did not become ready"

# post PATH JSON: prints the status, then the body on the next line.
post() {
  curl -s -o "$work/body" -w '%{http_code}' -H 'Content-Type: application/json' -X POST "$base$1" --data "$2"
  printf '\n'; cat "$work/body"
}
expect() { # expect STATUS PATH JSON
  local out; out=$(post "$2" "$3")
  [ "$(head -n1 <<<"$out")" = "$1" ] || fail "POST $2: want $1, got $out"
  tail -n +2 <<<"$out"
}
# mail N FIELD: waits for the N-th mail in the Maildir and prints its
# link token, code, or recipient (parsed with Python's email package).
mail() {
  "$PY" - "$work/maildir" "$1" "$2" <<'EOF'
import email, email.policy, os, re, sys, time
box, n, field = sys.argv[1], int(sys.argv[2]), sys.argv[3]
deadline = time.time() + 30
while True:
    files = []
    for sub in ("new", "cur"):
        d = os.path.join(box, sub)
        if os.path.isdir(d):
            files += [os.path.join(d, f) for f in os.listdir(d)]
    if len(files) >= n:
        break
    if time.time() > deadline:
        sys.exit("only %d mails after 30 s, want %d" % (len(files), n))
    time.sleep(0.05)
files.sort(key=os.path.getmtime)
msgs = sorted((email.message_from_binary_file(open(f, "rb"), policy=email.policy.default) for f in files),
              key=lambda m: email.utils.parsedate_to_datetime(m["Date"]))
m = [x for x in msgs if x.get_content_type() == "multipart/alternative"][n - 1] if len(msgs) >= n else None
assert m is not None and m.get_content_type() == "multipart/alternative", "not multipart/alternative"
text = m.get_body(preferencelist=("plain",)).get_content()
html = m.get_body(preferencelist=("html",)).get_content()
links = [l.strip() for l in text.splitlines() if l.strip().startswith("http")]
token = links[0].split("#token=", 1)[1]
assert token in html, "the HTML part lacks the link"
codes = re.findall(r"(?<!\d)\d{8}(?!\d)", text)
assert m["Message-ID"] and m["Date"] and "no-reply@blackbox.test" in m["From"]
print({"token": token, "code": codes[0] if codes else "", "to": m["To"], "link": links[0]}[field])
EOF
}

addr="blackbox@example.com"
expect 201 /v1/signup "{\"email\":\"$addr\",\"password\":\"correct horse battery\"}" >/dev/null
[ "$(mail 1 to)" = "$addr" ] || fail "the verification mail is not to $addr"
[[ "$(mail 1 link)" == "$base/account/verify#token="* ]] || fail "verification link $(mail 1 link)"
expect 403 /v1/login "{\"email\":\"$addr\",\"password\":\"correct horse battery\"}" | grep -q email_not_verified \
  || fail "an unverified login was not 403 email_not_verified"
code=$(mail 1 code)
[ -n "$code" ] || fail "the verification mail has no code"
expect 204 /v1/email/verify "{\"email\":\"$addr\",\"code\":\"$code\"}" >/dev/null
expect 200 /v1/login "{\"email\":\"$addr\",\"password\":\"correct horse battery\"}" >/dev/null
expect 202 /v1/password/forgot "{\"email\":\"$addr\"}" >/dev/null
expect 202 /v1/password/forgot '{"email":"nobody@example.com"}' >/dev/null
token=$(mail 2 token)
[[ "$(mail 2 link)" == "$base/account/reset#token="* ]] || fail "reset link $(mail 2 link)"
expect 204 /v1/password/reset "{\"token\":\"$token\",\"new_password\":\"a brand new passphrase\"}" >/dev/null
expect 401 /v1/password/reset "{\"token\":\"$token\",\"new_password\":\"a brand new passphrase\"}" >/dev/null
expect 401 /v1/login "{\"email\":\"$addr\",\"password\":\"correct horse battery\"}" >/dev/null
expect 200 /v1/login "{\"email\":\"$addr\",\"password\":\"a brand new passphrase\"}" >/dev/null
deny=$(mail 3 token)
[[ "$(mail 3 link)" == "$base/account/deny#token="* ]] || fail "notice link $(mail 3 link)"
[ -z "$(mail 3 code)" ] || fail "the notice carries a code"
expect 204 /v1/account/deny "{\"token\":\"$deny\"}" >/dev/null
expect 401 /v1/login "{\"email\":\"$addr\",\"password\":\"a brand new passphrase\"}" >/dev/null
mail 4 token >/dev/null # the reset mail the denial queued
if grep -q -e "$token" -e "$deny" -e "$code" -e "brand new passphrase" "$work/server.log"; then
  fail "the server log holds a token, a code or a password"
fi
echo "blackbox-mail: ok (aiosmtpd, $(ls "$work/maildir/new" | wc -l) mails)"
