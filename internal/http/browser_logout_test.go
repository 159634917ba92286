package http_test

// Found by a hostile review (cookie mode): a logout racing another tab's
// refresh.

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/testdb"
)

// rawBrowser sends a cookie-mode POST with the custom header and the given
// cookie (none when ""), outside the OpenAPI checker (format-1 cookies are
// 43 characters, not the 64 the document describes), and returns the
// status and the refresh cookie it set ("" when none, "-" when cleared).
func rawBrowser(t *testing.T, e *env, path, cookie, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest("POST", e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Requested-With", "accounts")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if cookie != "" {
		req.Header.Set("Cookie", "__Host-accounts_rt="+cookie)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	set := ""
	for _, c := range res.Cookies() {
		if c.Name == "__Host-accounts_rt" {
			set = c.Value
			if c.MaxAge < 0 || c.Value == "" {
				set = "-"
			}
		}
	}
	return res.StatusCode, set
}

// TestBrowserLogoutWithJustSpentCookieEndsSession: a logout that
// races a refresh (another tab rotated the cookie while the logout was on
// its way, or the refresh's answer was lost) carries the just-spent
// token. auth.Store.RefreshTokenSession promises to find the session of a
// "live or just-spent" token, and for format 2 it does (rt_prev_hash), so
// the session ends. For a format-1 token (REFRESH_TOKEN_FORMAT=1 during a
// rolling upgrade, and every format-1 cookie converted by its first
// refresh after it) the look-up (sessionByLegacyToken) requires
// spent_at IS NULL: the logout answers 204 and clears the cookie, but the
// session stays live, and its successor (and every access token of it)
// keeps working. The user is told "signed out" and is not.
func TestBrowserLogoutWithJustSpentCookieEndsSession(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		legacy bool
	}{{"format 2", false}, {"format 1", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{kit: testdb.KitOptions{Config: func(c *auth.Config) { c.LegacyRefreshTokens = tc.legacy }}})
			e.signup(t, "race@example.com")
			st, c1 := rawBrowser(t, e, "/v1/browser/login", "", `{"email":"race@example.com","password":"`+pw+`"}`)
			if st != 200 || c1 == "" || c1 == "-" {
				t.Fatalf("login: %d, cookie %q", st, c1)
			}
			// Tab A refreshes: c1 is spent, c2 is live.
			st, c2 := rawBrowser(t, e, "/v1/browser/refresh", c1, "")
			if st != 200 || c2 == "" || c2 == "-" || c2 == c1 {
				t.Fatalf("refresh: %d, cookie %q", st, c2)
			}
			// Tab B's logout, sent with the cookie it had: c1.
			st, set := rawBrowser(t, e, "/v1/browser/logout", c1, "")
			if st != 204 || set != "-" {
				t.Fatalf("logout: %d, cookie %q", st, set)
			}
			// The session must be over: its live token too.
			if st, _ := rawBrowser(t, e, "/v1/browser/refresh", c2, ""); st != 401 {
				t.Errorf("after a 204 logout that cleared the cookie, the session's live refresh token still works: %d", st)
			}
			if n := e.Count(t, `SELECT count(*) FROM sessions WHERE ended_at IS NULL`); n != 0 {
				t.Errorf("%d live sessions after logout, want 0", n)
			}
		})
	}
}
