package http_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/acme/accounts/internal/testdb"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestLogsCarryEventsButNoSecrets(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	e := newEnv(t, envOptions{kit: testdb.KitOptions{Log: &logs}})
	e.signup(t, "logs@example.com")
	e.req(t, "POST", "/v1/login", map[string]string{"email": "logs@example.com", "password": "a wrong password"}).want(t, 401, "invalid_credentials")
	tk := e.login(t, "logs@example.com")
	r := e.req(t, "POST", "/v1/token/refresh", map[string]string{"refresh_token": tk.refresh})
	next := tokens{r.str("access_token"), r.str("refresh_token")}
	e.req(t, "POST", "/v1/password", map[string]string{"current_password": pw, "new_password": "another long passphrase"}, bearer(next.access)...).want(t, 204, "")
	e.req(t, "POST", "/v1/logout", nil, bearer(next.access)...).want(t, 204, "")
	e.req(t, "GET", "/v1/me", nil, bearer(next.access)...).want(t, 401, "invalid_token")
	// A request's line is written after its response is sent; the client
	// reuses one connection, whose next request is read only once the
	// previous handler (logging included) has returned.
	e.req(t, "GET", "/healthz", nil)

	out := logs.String()
	for _, secret := range []string{pw, "a wrong password", "another long passphrase", tk.access, tk.refresh, next.access, next.refresh,
		strings.Split(tk.access, ".")[2]} {
		if strings.Contains(out, secret) {
			t.Fatalf("a log line carries a secret (%d chars)", len(secret))
		}
	}
	events := map[string]bool{}
	requests := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		switch m["msg"] {
		case "security event":
			events[m["event"].(string)] = true
		case "request":
			requests++
			for _, k := range []string{"method", "route", "status", "duration_ms", "request_id"} {
				if _, ok := m[k]; !ok {
					t.Fatalf("request line lacks %s: %s", k, line)
				}
			}
		}
	}
	for _, ev := range []string{"signup", "login_failed", "login_succeeded", "password_changed", "logout"} {
		if !events[ev] {
			t.Errorf("no %s event in the logs", ev)
		}
	}
	if requests < 8 {
		t.Errorf("%d request lines, want one per request", requests)
	}
	if n := e.Count(t, `SELECT count(*) FROM audit_events WHERE event IN ('signup','login_failed','login_succeeded','password_changed','logout')`); n != 5 {
		t.Errorf("%d audit rows, want 5", n)
	}
}
