package http_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const app = "https://app.example.test"

var cookieRE = regexp.MustCompile(`^__Host-accounts_rt=([A-Za-z0-9_-]{64}); Path=/; Max-Age=([0-9]+); HttpOnly; Secure; SameSite=Strict$`)

const cleared = "__Host-accounts_rt=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict"

// xhr is the header every cookie-mode request needs.
var xhr = []string{"X-Requested-With", "accounts"}

func with(h ...[]string) []string {
	var out []string
	for _, x := range h {
		out = append(out, x...)
	}
	return out
}

func rtCookie(v string) []string { return []string{"Cookie", "__Host-accounts_rt=" + v} }

// setCookie is the refresh token an answer set, checking the cookie's
// attributes to the letter.
func (r response) setCookie(t *testing.T) (string, int) {
	t.Helper()
	sc := r.header.Values("Set-Cookie")
	if len(sc) != 1 {
		t.Fatalf("Set-Cookie = %q, want one", sc)
	}
	m := cookieRE.FindStringSubmatch(sc[0])
	if m == nil {
		t.Fatalf("Set-Cookie = %q", sc[0])
	}
	age, _ := strconv.Atoi(m[2])
	return m[1], age
}

func (r response) clearedCookie(t *testing.T) {
	t.Helper()
	if sc := r.header.Values("Set-Cookie"); len(sc) != 1 || sc[0] != cleared {
		t.Fatalf("Set-Cookie = %q, want the cookie cleared", sc)
	}
}

func (e *env) browserLogin(t *testing.T, email string) (access, cookie string) {
	t.Helper()
	r := e.req(t, "POST", "/v1/browser/login", map[string]string{"email": email, "password": pw}, xhr...)
	r.want(t, 200, "")
	if _, ok := r.body["refresh_token"]; ok || r.str("token_type") != "Bearer" || r.body["expires_in"] == nil {
		t.Fatalf("body = %s", r.raw)
	}
	cookie, age := r.setCookie(t)
	if age < 719*3600 || age > 720*3600 { // REFRESH_TOKEN_TTL of the kit: 720 h
		t.Fatalf("Max-Age = %d", age)
	}
	return r.str("access_token"), cookie
}

func TestBrowserCookieMode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.signup(t, "cookie@example.com")
	access, c1 := e.browserLogin(t, "cookie@example.com")
	e.req(t, "GET", "/v1/me", nil, bearer(access)...).want(t, 200, "")

	// Rotation: the cookie changes; the old one within the grace window
	// gets the very same successor (two tabs refreshing at once).
	r := e.req(t, "POST", "/v1/browser/refresh", nil, with(xhr, rtCookie(c1))...)
	r.want(t, 200, "")
	c2, _ := r.setCookie(t)
	if c2 == c1 || r.str("access_token") == "" {
		t.Fatalf("not rotated: %s", r.raw)
	}
	r = e.req(t, "POST", "/v1/browser/refresh", nil, with(xhr, rtCookie(c1))...)
	r.want(t, 200, "")
	if again, _ := r.setCookie(t); again != c2 {
		t.Fatal("the grace window gave another successor")
	}
	// Past the grace window, the spent cookie is reuse: the session ends,
	// the cookie is cleared, and the live one is dead too.
	e.Clock.Advance(11 * time.Second)
	r = e.req(t, "POST", "/v1/browser/refresh", nil, with(xhr, rtCookie(c1))...)
	r.want(t, 401, "invalid_grant")
	r.clearedCookie(t)
	e.req(t, "POST", "/v1/browser/refresh", nil, with(xhr, rtCookie(c2))...).want(t, 401, "invalid_grant")

	// No cookie, or an unknown one: 401 and cleared.
	for _, h := range [][]string{xhr, with(xhr, rtCookie("nonsense")), with(xhr, rtCookie(""))} {
		r := e.req(t, "POST", "/v1/browser/refresh", nil, h...)
		r.want(t, 401, "invalid_grant")
		r.clearedCookie(t)
	}

	// Logout ends the session: the cookie and the access token are dead.
	access, c3 := e.browserLogin(t, "cookie@example.com")
	r = e.req(t, "POST", "/v1/browser/logout", nil, with(xhr, rtCookie(c3))...)
	r.want(t, 204, "")
	r.clearedCookie(t)
	e.req(t, "POST", "/v1/browser/refresh", nil, with(xhr, rtCookie(c3))...).want(t, 401, "invalid_grant")
	e.req(t, "GET", "/v1/me", nil, bearer(access)...).want(t, 401, "invalid_token")
	// Again, and without a cookie: still 204.
	e.req(t, "POST", "/v1/browser/logout", nil, with(xhr, rtCookie(c3))...).want(t, 204, "")
	e.req(t, "POST", "/v1/browser/logout", nil, xhr...).want(t, 204, "")
	if n := e.Count(t, `SELECT count(*) FROM audit_events WHERE event = 'logout'`); n != 1 {
		t.Fatalf("%d logout events, want 1", n)
	}

	// The JSON API's errors, as /v1/login.
	e.req(t, "POST", "/v1/browser/login", map[string]string{"email": "cookie@example.com", "password": "wrong password!"}, xhr...).
		want(t, 401, "invalid_credentials")
	e.req(t, "POST", "/v1/browser/login", "email=x", with(xhr, []string{"Content-Type", "application/x-www-form-urlencoded"})...).
		want(t, 415, "unsupported_media_type")
	_, c4 := e.browserLogin(t, "cookie@example.com")
	e.req(t, "POST", "/v1/browser/refresh", "x", with(xhr, rtCookie(c4), []string{"Content-Type", "text/plain"})...).
		want(t, 415, "unsupported_media_type")
	e.req(t, "POST", "/v1/browser/refresh", nil, with(xhr, rtCookie(c4))...).want(t, 200, "")
}

// TestBrowserCSRF: every cookie-mode request without the custom header or
// from a cross-origin page not listed is 403, decided before the body is
// read, and nothing happens.
func TestBrowserCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{cors: []string{app}})
	e.signup(t, "csrf@example.com")
	_, cookie := e.browserLogin(t, "csrf@example.com")
	self := e.srv.URL
	creds := map[string]string{"email": "csrf@example.com", "password": pw}
	refused := []struct {
		name string
		hdr  []string
	}{
		{"no custom header", nil},
		{"wrong custom header", []string{"X-Requested-With", "XMLHttpRequest"}},
		{"cross-site fetch", with(xhr, []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"})},
		{"same-site but unlisted", with(xhr, []string{"Sec-Fetch-Site", "same-site", "Origin", "https://other.example.test"})},
		{"old browser, foreign origin", with(xhr, []string{"Origin", "https://evil.example"})},
		{"null origin", with(xhr, []string{"Origin", "null"})},
	}
	sessions := func() int { return e.Count(t, `SELECT count(*) FROM sessions WHERE ended_at IS NULL`) }
	before := sessions()
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			e.req(t, "POST", "/v1/browser/login", creds, c.hdr...).want(t, 403, "forbidden")
			r := e.req(t, "POST", "/v1/browser/refresh", nil, with(c.hdr, rtCookie(cookie))...)
			r.want(t, 403, "forbidden")
			if len(r.header.Values("Set-Cookie")) != 0 {
				t.Fatal("a refused request touched the cookie")
			}
			e.req(t, "POST", "/v1/browser/logout", nil, with(c.hdr, rtCookie(cookie))...).want(t, 403, "forbidden")
		})
	}
	if after := sessions(); after != before {
		t.Fatalf("refused requests changed the sessions: %d -> %d", before, after)
	}
	// Decided before the body: an oversized body from a foreign page is 403.
	e.req(t, "POST", "/v1/browser/login", strings.Repeat("x", 2<<20), "Origin", "https://evil.example").want(t, 403, "forbidden")

	passed := []struct {
		name string
		hdr  []string
	}{
		{"not a browser", xhr},
		{"same origin", with(xhr, []string{"Sec-Fetch-Site", "same-origin", "Origin", self})},
		{"typed in", with(xhr, []string{"Sec-Fetch-Site", "none"})},
		{"listed origin", with(xhr, []string{"Sec-Fetch-Site", "same-site", "Origin", app})},
		{"old browser, own origin", with(xhr, []string{"Origin", self})},
	}
	for _, c := range passed {
		t.Run(c.name, func(t *testing.T) {
			r := e.req(t, "POST", "/v1/browser/refresh", nil, with(c.hdr, rtCookie(cookie))...)
			r.want(t, 200, "")
			cookie, _ = r.setCookie(t)
		})
	}
}

func TestBrowserCORS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{cors: []string{app}})
	preflight := func(path, origin string) *http.Response {
		t.Helper()
		headers := "content-type,x-requested-with"
		if !strings.HasPrefix(path, "/v1/browser/") {
			headers = "content-type,authorization"
		}
		req, _ := http.NewRequest("OPTIONS", e.srv.URL+path, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", headers)
		res, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	res := preflight("/v1/browser/login", app)
	if res.Header.Get("Access-Control-Allow-Origin") != app || res.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("listed origin on cookie mode: %d %v", res.StatusCode, res.Header)
	}
	if res := preflight("/v1/browser/refresh", "https://evil.example"); res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("unlisted origin allowed: %v", res.Header)
	}
	// The bearer API keeps CORS without credentials.
	res = preflight("/v1/login", app)
	if res.Header.Get("Access-Control-Allow-Origin") != app || res.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("bearer API: %v", res.Header)
	}
	// A real request from the listed page gets credentials CORS too.
	e.signup(t, "cors@example.com")
	r := e.req(t, "POST", "/v1/browser/login", map[string]string{"email": "cors@example.com", "password": pw},
		with(xhr, []string{"Origin", app, "Sec-Fetch-Site", "same-site"})...)
	r.want(t, 200, "")
	if r.header.Get("Access-Control-Allow-Origin") != app || r.header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("answer to the listed page: %v", r.header)
	}
}
