.PHONY: run test blackbox fuzz bench chaos build vet devdb-stop docker-up

# Serve on http://localhost:8080; without DATABASE_URL a private development
# PostgreSQL is started in .data/ (needs the PostgreSQL server binaries).
run:
	scripts/run.sh

# Every test with -race against a real PostgreSQL (see scripts/test.sh).
test:
	scripts/test.sh

# The built binary over HTTP against Debian's aiosmtpd (python3-aiosmtpd):
# signup, verification, reset and "this wasn't me" with real mail.
blackbox:
	scripts/blackbox-mail.sh

# Every fuzz target for FUZZTIME each (default 30s); seeds in testdata/fuzz.
fuzz:
	scripts/fuzz.sh

# Fresh database and server, ceilings and scenarios, written to BENCHMARKS.md.
bench:
	scripts/bench.sh

# The fault cases (PostgreSQL restarted, stalled, read-only, a rotation's
# connection killed, ...) and a soak (SOAK, default 10m) against a private
# cluster, written to RELIABILITY.md.
chaos:
	scripts/chaos.sh

build:
	go build -o bin/server ./cmd/server

vet:
	gofmt -l . | (! grep .) && go vet ./...

devdb-stop:
	scripts/devdb.sh stop

docker-up:
	docker compose up --build
