package http_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/testdb"
)

func ipLimited(proxies []string) envOptions {
	return envOptions{proxies: proxies, kit: testdb.KitOptions{Config: func(c *auth.Config) {
		c.IPLimit = auth.RateLimit{N: 3, Window: time.Minute}
	}}}
}

func TestIPRateLimitOverHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ipLimited(nil))
	bodies := []struct{ path, body string }{
		{"/v1/signup", `{"email":"a@example.com","password":"correct horse battery"}`},
		{"/v1/login", `{"email":"a@example.com","password":"correct horse battery"}`},
		{"/v1/token/refresh", `{"refresh_token":"x"}`},
	}
	for _, b := range bodies {
		e.req(t, "POST", b.path, b.body, "X-Forwarded-For", "10.9.9.9").want(t, map[string]int{"/v1/signup": 201, "/v1/login": 200, "/v1/token/refresh": 401}[b.path], "")
	}
	// A spoofed X-Forwarded-For from an untrusted peer changes nothing.
	r := e.req(t, "POST", "/v1/login", bodies[1].body, "X-Forwarded-For", "10.1.2.3")
	r.want(t, 429, "too_many_requests")
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	// Other routes are not counted.
	e.req(t, "GET", "/healthz", nil).want(t, 200, "")
	e.Clock.Advance(time.Minute)
	e.req(t, "POST", "/v1/login", bodies[1].body).want(t, 200, "")
}

func TestTrustedProxyClientIP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ipLimited([]string{"127.0.0.0/8"}))
	for range 3 {
		e.req(t, "POST", "/v1/token/refresh", `{"refresh_token":"x"}`, "X-Forwarded-For", "198.51.100.7").want(t, 401, "invalid_grant")
	}
	e.req(t, "POST", "/v1/token/refresh", `{"refresh_token":"x"}`, "X-Forwarded-For", "198.51.100.7").want(t, 429, "too_many_requests")
	// Behind the trusted proxy, another client has its own count; the
	// right-most untrusted address is the client.
	e.req(t, "POST", "/v1/token/refresh", `{"refresh_token":"x"}`, "X-Forwarded-For", "198.51.100.7, 198.51.100.8").want(t, 401, "invalid_grant")
	e.req(t, "POST", "/v1/signup", `{"email":"p@example.com","password":"correct horse battery"}`, "X-Forwarded-For", "192.0.2.44").want(t, 201, "")
	tk := e.login(t, "p@example.com")
	r := e.req(t, "GET", "/v1/sessions", nil, bearer(tk.access)...)
	if ip := r.body["sessions"].([]any)[0].(map[string]any)["ip"]; ip != "127.0.0.1" {
		// login above sent no X-Forwarded-For: the proxy is the client.
		t.Fatalf("session ip = %v", ip)
	}
}

func TestLoginRateLimitOverHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{kit: testdb.KitOptions{Config: func(c *auth.Config) {
		c.LoginLimit = auth.RateLimit{N: 2, Window: 15 * time.Minute}
	}}})
	e.signup(t, "lim@example.com")
	for range 2 {
		e.req(t, "POST", "/v1/login", map[string]string{"email": "lim@example.com", "password": "wrong password!"}).want(t, 401, "invalid_credentials")
	}
	r := e.req(t, "POST", "/v1/login", map[string]string{"email": "lim@example.com", "password": pw})
	r.want(t, 429, "too_many_requests")
	if s, _ := strconv.Atoi(r.header.Get("Retry-After")); s < 1 || s > 900 {
		t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
	}
}

func TestPasswordRouteIsLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{kit: testdb.KitOptions{Config: func(c *auth.Config) {
		c.LoginLimit = auth.RateLimit{N: 2, Window: 15 * time.Minute}
		c.IPLimit = auth.RateLimit{N: 7, Window: time.Minute}
	}}})
	// Requests 1–4 against the IP limit.
	e.signup(t, "pwlim@example.com")
	a := e.login(t, "pwlim@example.com")
	e.signup(t, "other@example.com")
	b := e.login(t, "other@example.com")
	wrong := map[string]string{"current_password": "not my password", "new_password": "a new long passphrase"}
	for range 2 { // 5, 6
		e.req(t, "POST", "/v1/password", wrong, bearer(a.access)...).want(t, 401, "invalid_credentials")
	}
	r := e.req(t, "POST", "/v1/password", wrong, bearer(a.access)...) // 7: a's re-authentication limit
	r.want(t, 429, "too_many_requests")
	if s, _ := strconv.Atoi(r.header.Get("Retry-After")); s < 1 || s > 900 {
		t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	// 8: b has no failure yet, but the route counts against the IP limit.
	e.req(t, "POST", "/v1/password", wrong, bearer(b.access)...).want(t, 429, "too_many_requests")
	if n := e.Count(t, `SELECT count(*) FROM audit_events WHERE event = 'password_change_failed'`); n != 2 {
		t.Fatalf("%d password_change_failed events, want 2", n)
	}
}
