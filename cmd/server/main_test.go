package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/accounts/api"
	"github.com/acme/accounts/internal/oascheck"
	"github.com/acme/accounts/internal/testdb"
	"github.com/acme/accounts/migrations"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

func envFrom(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// cli runs one command to completion.
func cli(t *testing.T, vars map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, append([]string{"server"}, args...), envFrom(vars), &out, &errb)
	return out.String(), errb.String(), err
}

// startServer runs the serve command in the background and returns its base URL.
func startServer(t *testing.T, vars map[string]string) string {
	t.Helper()
	base, stop := startServerStoppable(t, vars)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("run returned %v after cancel, want nil", err)
		}
	})
	return base
}

// startServerStoppable is startServer with the stop left to the caller:
// stop cancels run's context (as SIGTERM does) and waits for run to return.
func startServerStoppable(t *testing.T, vars map[string]string) (string, func() error) {
	t.Helper()
	return startServerWatched(t, vars, nil)
}

// startServerWatched is startServerStoppable that also passes every JSON
// log line of the server to onLine (when not nil).
func startServerWatched(t *testing.T, vars map[string]string, onLine func(map[string]any)) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"server"}, envFrom(vars), io.Discard, pw); pw.Close() }()
	addr := make(chan string, 1)
	scanned := make(chan struct{}) // closed once every line run wrote has been seen
	go func() {
		defer close(scanned)
		defer io.Copy(io.Discard, pr) // never leave run blocked on a log write
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				addr <- line.Addr
			}
			if onLine != nil {
				var m map[string]any
				if json.Unmarshal(sc.Bytes(), &m) == nil {
					onLine(m)
				}
			}
		}
	}()
	var stopErr error
	stopped := false
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			stopErr = <-done
			// run has returned and closed the pipe; wait until the reader
			// has passed its last lines to onLine, so that what onLine
			// counted is complete when stop returns.
			<-scanned
		}
		return stopErr
	}
	t.Cleanup(func() { _ = stop() })
	select {
	case a := <-addr:
		base := "http://" + a
		if vars["TLS_CERT_FILE"] != "" {
			base = "https://" + a
		}
		waitForReady(t, base)
		return base, stop
	case err := <-done:
		stopped, stopErr = true, err // done is drained: the cleanup must not wait on it again
		<-scanned
		t.Fatalf("server stopped at start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not log its address within 30 s")
	}
	return "", stop
}

func waitForReady(t *testing.T, base string) {
	t.Helper()
	client := http.DefaultClient
	if strings.HasPrefix(base, "https:") {
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := client.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling a server we do not control the timing of
	}
}

// jsonRequest is a request with body as JSON (when not nil) and token as
// its bearer (when not empty).
func jsonRequest(method, url, token string, body any) *http.Request {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

func call(t *testing.T, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	req := jsonRequest(method, url, token, body)
	res, err := checkedClient(t, url).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

var (
	apiCheckerOnce sync.Once
	apiChecker     *oascheck.Checker
	apiCheckerErr  error
	// unchecked are the base URLs of servers of other releases (their
	// answers follow that release's document, not this one).
	unchecked sync.Map
)

// checkedClient is a client that checks every exchange against this
// build's api/openapi.yaml, unless url is a server of another release.
func checkedClient(t *testing.T, url string) *http.Client {
	t.Helper()
	var other bool
	unchecked.Range(func(base, _ any) bool {
		other = other || strings.HasPrefix(url, base.(string))
		return !other
	})
	if other {
		return http.DefaultClient
	}
	apiCheckerOnce.Do(func() {
		apiChecker, apiCheckerErr = oascheck.Load(api.OpenAPI, oascheck.Options{
			CloseObjects: true, CheckRequests: true,
			Unrouted: map[int]string{404: "NotFound", 405: "MethodNotAllowed", 200: "Preflight"},
			Shared:   map[int]string{500: "InternalError", 503: "ServiceUnavailable"},
		})
	})
	if apiCheckerErr != nil {
		t.Fatalf("api/openapi.yaml: %v", apiCheckerErr)
	}
	return apiChecker.Client(t, nil)
}

func TestServeWalkthrough(t *testing.T) {
	t.Parallel()
	base := startServer(t, map[string]string{"DATABASE_URL": testdb.URL(t), "ADDR": "127.0.0.1:0"})
	creds := map[string]string{"email": "walk@example.com", "password": "correct horse battery"}
	if st, _ := call(t, "POST", base+"/v1/signup", "", creds); st != 201 {
		t.Fatalf("signup %d", st)
	}
	st, tok := call(t, "POST", base+"/v1/login", "", creds)
	if st != 200 {
		t.Fatalf("login %d", st)
	}
	at, rt := tok["access_token"].(string), tok["refresh_token"].(string)
	if st, me := call(t, "GET", base+"/v1/me", at, nil); st != 200 || me["email"] != "walk@example.com" {
		t.Fatalf("me %d %v", st, me)
	}
	st, tok = call(t, "POST", base+"/v1/token/refresh", "", map[string]string{"refresh_token": rt})
	if st != 200 || tok["refresh_token"] == rt {
		t.Fatalf("refresh %d %v", st, tok)
	}
	at2 := tok["access_token"].(string)
	if st, _ := call(t, "POST", base+"/v1/logout", at2, nil); st != 204 {
		t.Fatalf("logout %d", st)
	}
	if st, _ := call(t, "GET", base+"/v1/me", at2, nil); st != 401 {
		t.Fatalf("me after logout %d", st)
	}
	// The revocation listener syncs in the background, unrelated to
	// /readyz: wait for the state, do not assume it. (A plain substring
	// test for "accounts_revocations_synced 1" also matches the series'
	// HELP line, which begins with "1 while", and so could not fail.)
	waitFor(t, func() bool { return metric(t, base, "accounts_revocations_synced") == 1 })
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, series := range []string{`accounts_logins_total{outcome="ok"} 1`, `accounts_refreshes_total{outcome="rotated"} 1`,
		`accounts_revocations_total{kind="jti"} 1`, "accounts_db_pool_max_conns",
		"accounts_hash_slots_in_use", "accounts_hash_slot_wait_seconds", "accounts_revocations_lag_seconds",
		`http_requests_total{method="POST",route="/v1/login",status="200"} 1`, "go_goroutines"} {
		if !strings.Contains(string(body), series) {
			t.Errorf("metrics lack %s", series)
		}
	}
}

func TestDebugListener(t *testing.T) {
	t.Parallel()
	stop, addr, err := startDebug("127.0.0.1:0", slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	res, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("pprof index: %d", res.StatusCode)
	}
	base := startServer(t, map[string]string{"DATABASE_URL": testdb.URL(t), "ADDR": "127.0.0.1:0"})
	if st, _ := call(t, "GET", base+"/debug/pprof/", "", nil); st != 404 {
		t.Fatalf("pprof on the public listener: %d", st)
	}
}

func TestServeHS256(t *testing.T) {
	t.Parallel()
	base := startServer(t, map[string]string{"DATABASE_URL": testdb.URL(t), "ADDR": "127.0.0.1:0",
		"JWT_ALG": "HS256", "JWT_SECRET": strings.Repeat("k", 32)})
	st, jwks := call(t, "GET", base+"/.well-known/jwks.json", "", nil)
	if keys, _ := jwks["keys"].([]any); st != 200 || keys == nil || len(keys) != 0 {
		t.Fatalf("HS256 jwks %d %v, want an empty set", st, jwks)
	}
}

func TestCommands(t *testing.T) {
	t.Parallel()
	url := testdb.NewEmpty(t)
	vars := map[string]string{"DATABASE_URL": url}

	ups, _ := fs.Glob(migrations.FS, "*.up.sql")
	latest := fmt.Sprintf("version: %d", len(ups))
	out, _, err := cli(t, vars, "migrate", "version")
	if err != nil || !strings.Contains(out, "none") {
		t.Fatalf("version on an empty database: %q %v", out, err)
	}
	if out, _, err = cli(t, vars, "migrate", "up"); err != nil || !strings.Contains(out, latest) {
		t.Fatalf("migrate up: %q %v, want %s", out, err, latest)
	}
	if out, _, err = cli(t, vars, "migrate", "down"); err != nil || !strings.Contains(out, "none") {
		t.Fatalf("migrate down: %q %v", out, err)
	}
	if out, _, err = cli(t, vars, "migrate", "up"); err != nil || !strings.Contains(out, latest) {
		t.Fatalf("migrate up after down: %q %v", out, err)
	}
	if out, _, err = cli(t, vars, "migrate", "up"); err != nil {
		t.Fatalf("migrate up twice: %q %v", out, err)
	}

	if out, _, err = cli(t, vars, "keys", "rotate"); err != nil || !strings.Contains(out, "new signing key") {
		t.Fatalf("keys rotate: %q %v", out, err)
	}
	if out, _, err = cli(t, vars, "keys", "rotate"); err != nil {
		t.Fatalf("keys rotate again: %q %v", out, err)
	}

	base := startServer(t, map[string]string{"DATABASE_URL": url, "ADDR": "127.0.0.1:0"})
	st, jwks := call(t, "GET", base+"/.well-known/jwks.json", "", nil)
	if keys, _ := jwks["keys"].([]any); st != 200 || len(keys) != 3 {
		t.Fatalf("jwks after two rotations = %v; want the first key (made on first use) and the two rotated in", jwks)
	}
	call(t, "POST", base+"/v1/signup", "", map[string]string{"email": "Boss@example.com", "password": "correct horse battery"})
	if out, _, err = cli(t, vars, "users", "set-role", "boss@example.com", "admin"); err != nil || !strings.Contains(out, "admin") {
		t.Fatalf("set-role: %q %v", out, err)
	}
	_, tok := call(t, "POST", base+"/v1/login", "", map[string]string{"email": "boss@example.com", "password": "correct horse battery"})
	if st, _ := call(t, "GET", base+"/v1/admin/users", tok["access_token"].(string), nil); st != 200 {
		t.Fatalf("admin listing after set-role: %d", st)
	}
	if _, _, err = cli(t, vars, "users", "set-role", "ghost@example.com", "admin"); err == nil || !strings.Contains(err.Error(), "no user") {
		t.Fatalf("set-role for an unknown email: %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"DATABASE_URL": "postgres://postgres@127.0.0.1:1/none"}
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"bogus"}, 2},
		{[]string{"migrate"}, 2},
		{[]string{"migrate", "sideways"}, 2},
		{[]string{"migrate", "up", "extra"}, 2},
		{[]string{"migrate", "force"}, 2},
		{[]string{"migrate", "force", "latest"}, 2},
		{[]string{"keys"}, 2},
		{[]string{"keys", "delete"}, 2},
		{[]string{"users", "set-role", "a@example.com"}, 2},
		{[]string{"users", "set-role", "a@example.com", "root"}, 2},
		{[]string{"users", "drop", "a@example.com", "admin"}, 2},
		{[]string{"serve", "extra"}, 2},
		{[]string{"-h"}, 0},
		{[]string{"migrate", "-h"}, 0},
		{[]string{"keys", "-h"}, 0},
		{[]string{"users", "-h"}, 0},
		{[]string{"serve", "-h"}, 0},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, err := cli(t, vars, tc.args...)
			if got := exitCode(err); err == nil || got != tc.code {
				t.Fatalf("exit %d (%v), want %d", got, err, tc.code)
			}
			if tc.code == 0 && !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("help returned %v", err)
			}
			if out+errOut == "" {
				t.Fatal("no usage text printed")
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	good := map[string]string{"DATABASE_URL": "postgres://u@localhost/db"}
	with := func(k, v string) map[string]string {
		m := map[string]string{"DATABASE_URL": good["DATABASE_URL"]}
		m[k] = v
		return m
	}
	tests := []struct {
		name string
		vars map[string]string
		want []string
	}{
		{"bad duration", with("ACCESS_TOKEN_TTL", "fifteen"), []string{"ACCESS_TOKEN_TTL"}},
		{"bad grace", with("REFRESH_REUSE_GRACE", "-1s"), []string{"REFRESH_REUSE_GRACE"}},
		{"bad alg", with("JWT_ALG", "none"), []string{"JWT_ALG"}},
		{"HS256 without secret", with("JWT_ALG", "HS256"), []string{"JWT_SECRET"}},
		{"short secret", map[string]string{"DATABASE_URL": "x", "JWT_ALG": "HS256", "JWT_SECRET": "short"}, []string{"JWT_SECRET"}},
		{"bad KEK", with("KEY_ENCRYPTION_KEY", "c2hvcnQ="), []string{"KEY_ENCRYPTION_KEY"}},
		{"bad rate", with("LOGIN_RATE_LIMIT", "ten"), []string{"LOGIN_RATE_LIMIT"}},
		{"bad ip rate", with("IP_RATE_LIMIT", "5/0s"), []string{"IP_RATE_LIMIT"}},
		{"bad proxies", with("TRUSTED_PROXIES", "10.0.0.0/8, nonsense"), []string{"TRUSTED_PROXIES"}},
		{"bad argon", with("ARGON2_MEMORY_KIB", "lots"), []string{"ARGON2_MEMORY_KIB"}},
		{"bad min length", with("PASSWORD_MIN_LENGTH", "0"), []string{"PASSWORD_MIN_LENGTH"}},
		{"bad log level", with("LOG_LEVEL", "loud"), []string{"LOG_LEVEL"}},
		{"bad migrate flag", with("MIGRATE_ON_START", "maybe"), []string{"MIGRATE_ON_START"}},
		{"half TLS", with("TLS_CERT_FILE", "/tmp/c.pem"), []string{"TLS_CERT_FILE"}},
		{"two at once", map[string]string{"DATABASE_URL": "x", "ADDR": ":1", "JWT_LEEWAY": "x", "SESSION_MAX_AGE": "y"}, []string{"JWT_LEEWAY", "SESSION_MAX_AGE"}},
		{"no database", map[string]string{}, []string{"DATABASE_URL"}},
		{"access ttl over an hour", with("ACCESS_TOKEN_TTL", "2h"), []string{"ACCESS_TOKEN_TTL", "ACCESS_TOKEN_TTL_FORCE"}},
		{"CORS wildcard", with("CORS_ALLOWED_ORIGINS", "*"), []string{"CORS_ALLOWED_ORIGINS"}},
		{"CORS with a path", with("CORS_ALLOWED_ORIGINS", "https://app.example.com/x"), []string{"CORS_ALLOWED_ORIGINS"}},
		{"bad audit retention", with("AUDIT_RETENTION", "forever"), []string{"AUDIT_RETENTION"}},
		{"bad statement cache", with("DATABASE_STATEMENT_CACHE", "sometimes"), []string{"DATABASE_STATEMENT_CACHE"}},
		{"pool too small", with("DATABASE_MAX_CONNS", "1"), []string{"DATABASE_MAX_CONNS"}},
		{"bad statement timeout", with("DATABASE_STATEMENT_TIMEOUT", "soon"), []string{"DATABASE_STATEMENT_TIMEOUT"}},
		{"bad global rate", with("GLOBAL_RATE_LIMIT", "lots"), []string{"GLOBAL_RATE_LIMIT"}},
		{"bad session cap", with("MAX_SESSIONS_PER_USER", "-1"), []string{"MAX_SESSIONS_PER_USER"}},
		{"bad token format", with("REFRESH_TOKEN_FORMAT", "3"), []string{"REFRESH_TOKEN_FORMAT"}},
		{"verification required without mail", with("EMAIL_VERIFICATION", "required"), []string{"EMAIL_VERIFICATION", "SMTP_URL"}},
		{"bad verification mode", with("EMAIL_VERIFICATION", "sometimes"), []string{"EMAIL_VERIFICATION"}},
		{"bad link base", with("EMAIL_LINK_BASE", "ftp://x"), []string{"EMAIL_LINK_BASE"}},
		{"link base with a fragment", with("EMAIL_LINK_BASE", "https://x.example/account#a"), []string{"EMAIL_LINK_BASE"}},
		{"bad SMTP scheme", with("SMTP_URL", "smtpx://mail.example.com"), []string{"SMTP_URL"}},
		{"SMTP without a host", with("SMTP_URL", "smtps://u:hunter2hunter2@:465"), []string{"SMTP_URL"}},
		{"bad MAIL_FROM", map[string]string{"DATABASE_URL": "x", "SMTP_URL": "smtp+insecure://localhost:25", "MAIL_FROM": "not an address"}, []string{"MAIL_FROM"}},
		{"bad account pages flag", with("ACCOUNT_PAGES", "perhaps"), []string{"ACCOUNT_PAGES"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := cli(t, tc.vars, "serve")
			if err == nil {
				t.Fatal("serve started with a bad configuration")
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error shows a password: %q", err)
			}
			for _, name := range tc.want {
				if !strings.Contains(err.Error(), name) {
					t.Fatalf("error %q does not name %s", err, name)
				}
			}
		})
	}
	if _, err := loadConfig(envFrom(good)); err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
	forced := with("ACCESS_TOKEN_TTL", "2h")
	forced["ACCESS_TOKEN_TTL_FORCE"] = "true"
	forced["CORS_ALLOWED_ORIGINS"] = "https://app.example.com, http://localhost:3000"
	c, err := loadConfig(envFrom(forced))
	if err != nil || c.AccessTTL != 2*time.Hour || len(c.CORSOrigins) != 2 {
		t.Fatalf("forced TTL and CORS origins: %+v, %v", c, err)
	}
}

func TestUnreachableDatabase(t *testing.T) {
	t.Parallel()
	_, errOut, err := cli(t, map[string]string{"DATABASE_URL": "postgres://app:s3cr3t-pw@127.0.0.1:1/accounts", "ADDR": "127.0.0.1:0"})
	if err == nil {
		t.Fatal("serve started without a database")
	}
	if exitCode(err) != 1 || strings.Contains(err.Error()+errOut, "s3cr3t-pw") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("error %q (exit %d) must name the redacted URL and hide its password", err, exitCode(err))
	}
}

// TestShutdownFinishesRequestsInFlight starts a signup whose body arrives in
// two halves, begins the shutdown between them, and expects the signup to
// complete and run to return nil.
func TestShutdownFinishesRequestsInFlight(t *testing.T) {
	t.Parallel()
	base, stop := startServerStoppable(t, map[string]string{"DATABASE_URL": testdb.URL(t), "ADDR": "127.0.0.1:0"})
	bodyR, bodyW := io.Pipe()
	req, _ := http.NewRequest("POST", base+"/v1/signup", bodyR)
	req.Header.Set("Content-Type", "application/json")
	type result struct {
		status int
		err    error
	}
	res := make(chan result, 1)
	go func() {
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		r.Body.Close()
		res <- result{status: r.StatusCode}
	}()
	if _, err := bodyW.Write([]byte(`{"email":"inflight@example.com",`)); err != nil {
		t.Fatal(err)
	}
	// Wait until the server is inside the handler: the in-flight gauge
	// counts it and the /metrics request that reads it.
	waitFor(t, func() bool { return inFlight(t, base) >= 2 })

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// New connections are refused once the listener is closed.
	waitFor(t, func() bool { _, err := http.Get(base + "/healthz"); return err != nil })
	select {
	case err := <-stopped:
		t.Fatalf("run returned (%v) while a request was in flight", err)
	default:
	}
	if _, err := bodyW.Write([]byte(`"password":"correct horse battery"}`)); err != nil {
		t.Fatal(err)
	}
	bodyW.Close()
	if r := <-res; r.err != nil || r.status != 201 {
		t.Fatalf("in-flight signup: %d %v, want 201", r.status, r.err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func inFlight(t *testing.T, base string) float64 { return metric(t, base, "http_requests_in_flight") }

// metric reads one unlabelled series from /metrics (0 when absent).
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	r, err := http.Get(base + "/metrics")
	if err != nil {
		return 0
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

// waitFor polls cond until it holds (10 s at most): it waits on a state
// the server exposes, not on a guess of how long something takes.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestKeysReseal(t *testing.T) {
	t.Parallel()
	url := testdb.URL(t)
	a := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	b := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	plain := map[string]string{"DATABASE_URL": url}
	withA := map[string]string{"DATABASE_URL": url, "KEY_ENCRYPTION_KEY": a}
	withB := map[string]string{"DATABASE_URL": url, "KEY_ENCRYPTION_KEY": b}

	if _, _, err := cli(t, plain, "keys", "rotate"); err != nil { // two unsealed keys
		t.Fatal(err)
	}
	if _, _, err := cli(t, plain, "keys", "reseal"); err == nil || !strings.Contains(err.Error(), "KEY_ENCRYPTION_KEY") {
		t.Fatalf("reseal without a key: %v", err)
	}
	if out, _, err := cli(t, withA, "keys", "reseal"); err != nil || !strings.Contains(out, "2 signing key(s)") {
		t.Fatalf("reseal with A: %q %v", out, err)
	}
	if _, _, err := cli(t, plain, "keys", "rotate"); err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("sealed keys opened without KEY_ENCRYPTION_KEY: %v", err)
	}
	if _, _, err := cli(t, withB, "keys", "reseal"); err == nil || !strings.Contains(err.Error(), "OLD_KEY_ENCRYPTION_KEY") {
		t.Fatalf("reseal with B but no old key: %v", err)
	}
	moveToB := map[string]string{"DATABASE_URL": url, "KEY_ENCRYPTION_KEY": b, "OLD_KEY_ENCRYPTION_KEY": a}
	if _, _, err := cli(t, moveToB, "keys", "reseal"); err != nil {
		t.Fatalf("reseal from A to B: %v", err)
	}
	if _, _, err := cli(t, withA, "keys", "rotate"); err == nil {
		t.Fatal("keys still open with the old key-encryption key")
	}
	if out, _, err := cli(t, withB, "keys", "rotate"); err != nil {
		t.Fatalf("rotate with B: %q %v", out, err)
	}
	base := startServer(t, map[string]string{"DATABASE_URL": url, "ADDR": "127.0.0.1:0", "KEY_ENCRYPTION_KEY": b})
	if st, _ := call(t, "GET", base+"/.well-known/jwks.json", "", nil); st != 200 {
		t.Fatalf("jwks %d", st)
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }
