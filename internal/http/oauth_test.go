package http_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/testdb"
)

// The OAuth 2.0 endpoints through the real router, every exchange checked
// against api/openapi.yaml.

const formType = "application/x-www-form-urlencoded"

// form posts a form; hdr are extra header pairs.
func (e *env) form(t *testing.T, path string, v url.Values, hdr ...string) response {
	t.Helper()
	return e.req(t, "POST", path, v.Encode(), append([]string{"Content-Type", formType}, hdr...)...)
}

func basic(id, secret string) []string {
	return []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString(
		[]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))}
}

// claims reads an access token's payload (the signature is the service's
// business; this only looks).
func claims(t *testing.T, at string) map[string]any {
	t.Helper()
	parts := strings.Split(at, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) addClient(t *testing.T, id string, confidential bool) string {
	t.Helper()
	_, secret, err := e.Service.AddClient(context.Background(), id, confidential)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func TestOAuthMetadata(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	r := e.req(t, "GET", "/.well-known/oauth-authorization-server", nil)
	r.want(t, 200, "")
	for k, want := range map[string]string{"issuer": testdb.Issuer, "token_endpoint": testdb.Issuer + "/oauth/token",
		"revocation_endpoint": testdb.Issuer + "/oauth/revoke", "introspection_endpoint": testdb.Issuer + "/oauth/introspect",
		"jwks_uri": testdb.Issuer + "/.well-known/jwks.json"} {
		if r.str(k) != want {
			t.Errorf("%s = %q, want %q", k, r.str(k), want)
		}
	}
	if g, _ := json.Marshal(r.body["grant_types_supported"]); string(g) != `["refresh_token"]` {
		t.Errorf("grant_types_supported %s", g)
	}
	if g, _ := json.Marshal(r.body["response_types_supported"]); string(g) != `[]` {
		t.Errorf("response_types_supported %s", g)
	}
}

func TestOAuthTokenEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.signup(t, "oauth@example.com")
	tk := e.login(t, "oauth@example.com")
	if c := claims(t, tk.access); c["client_id"] != "accounts" {
		t.Fatalf("a /v1/login token's client_id = %v", c["client_id"])
	}
	r := e.form(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tk.refresh}, "client_id": {"accounts"}})
	r.want(t, 200, "")
	if r.str("token_type") != "Bearer" || r.str("refresh_token") == tk.refresh || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token response %s %v", r.raw, r.header)
	}
	if c := claims(t, r.str("access_token")); c["client_id"] != "accounts" {
		t.Fatalf("client_id %v", c["client_id"])
	}
	e.req(t, "GET", "/v1/me", nil, bearer(r.str("access_token"))...).want(t, 200, "")
	// HTTP Basic with an empty password is the public client too, and the
	// just-spent token within the grace window gets the same successor.
	again := e.form(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tk.refresh}}, basic("accounts", "")...)
	again.want(t, 200, "")
	if again.str("refresh_token") != r.str("refresh_token") {
		t.Fatal("the grace retry got another token")
	}
	// The JSON API and the token endpoint share the chain.
	j := e.req(t, "POST", "/v1/token/refresh", map[string]string{"refresh_token": r.str("refresh_token")})
	j.want(t, 200, "")
	// Reuse after the window ends the session, as at /v1/token/refresh.
	e.Clock.Advance(11 * time.Second)
	e.form(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tk.refresh}, "client_id": {"accounts"}}).want(t, 400, "invalid_grant")
	e.req(t, "POST", "/v1/token/refresh", map[string]string{"refresh_token": j.str("refresh_token")}).want(t, 401, "invalid_grant")
}

func TestOAuthTokenEndpointRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	secret := e.addClient(t, "svc", true)
	e.addClient(t, "spa", false)
	e.signup(t, "refuse@example.com")
	tk := e.login(t, "refuse@example.com")
	rt := tk.refresh
	grant := func(more ...string) url.Values {
		v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		for i := 0; i+1 < len(more); i += 2 {
			v.Add(more[i], more[i+1])
		}
		return v
	}
	tests := []struct {
		name   string
		body   string
		hdr    []string
		status int
		code   string
	}{
		{"JSON body", `{"grant_type":"refresh_token","refresh_token":"` + rt + `","client_id":"accounts"}`, []string{"Content-Type", "application/json"}, 400, "invalid_request"},
		{"no content type", grant("client_id", "accounts").Encode(), []string{"Content-Type", ""}, 400, "invalid_request"},
		{"parameter twice", grant("client_id", "accounts").Encode() + "&grant_type=refresh_token", nil, 400, "invalid_request"},
		{"malformed form", "grant_type=refresh_token&refresh_token=%zz&client_id=accounts", nil, 400, "invalid_request"},
		{"no grant type", url.Values{"refresh_token": {rt}, "client_id": {"accounts"}}.Encode(), nil, 400, "invalid_request"},
		{"password grant", url.Values{"grant_type": {"password"}, "username": {"refuse@example.com"}, "password": {pw}, "client_id": {"accounts"}}.Encode(), nil, 400, "unsupported_grant_type"},
		{"authorization code", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {"accounts"}}.Encode(), nil, 400, "unsupported_grant_type"},
		{"no refresh token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"accounts"}}.Encode(), nil, 400, "invalid_request"},
		{"no client", grant().Encode(), nil, 401, "invalid_client"},
		{"unknown client", grant("client_id", "nobody").Encode(), nil, 401, "invalid_client"},
		{"invalid client id", grant("client_id", "../x").Encode(), nil, 401, "invalid_client"},
		{"wrong secret (Basic)", grant().Encode(), basic("svc", "wrong"), 401, "invalid_client"},
		{"wrong secret (form)", grant("client_id", "svc", "client_secret", "wrong").Encode(), nil, 401, "invalid_client"},
		{"confidential without secret", grant("client_id", "svc").Encode(), nil, 401, "invalid_client"},
		{"public client with a secret", grant("client_id", "accounts", "client_secret", "x").Encode(), nil, 401, "invalid_client"},
		{"malformed Basic", grant().Encode(), []string{"Authorization", "Basic !!!"}, 401, "invalid_client"},
		{"Basic and a form secret", grant("client_secret", secret).Encode(), basic("svc", secret), 400, "invalid_request"},
		{"Basic and another form client", grant("client_id", "accounts").Encode(), basic("svc", secret), 400, "invalid_request"},
		{"another client's token (confidential)", grant().Encode(), basic("svc", secret), 400, "invalid_grant"},
		{"another client's token (public)", grant("client_id", "spa").Encode(), nil, 400, "invalid_grant"},
		{"garbage token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"garbage"}, "client_id": {"accounts"}}.Encode(), nil, 400, "invalid_grant"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := append([]string{"Content-Type", formType}, tc.hdr...)
			if len(tc.hdr) > 0 && tc.hdr[0] == "Content-Type" {
				hdr = tc.hdr // the case is the content type
			}
			r := e.req(t, "POST", "/oauth/token", tc.body, hdr...)
			r.want(t, tc.status, tc.code)
			if tc.status == 401 && r.header.Get("WWW-Authenticate") != `Basic realm="accounts"` {
				t.Fatalf("401 without WWW-Authenticate: %v", r.header)
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Fatal("an OAuth error without Cache-Control: no-store")
			}
		})
	}
	// Nothing above spent the token or touched its session.
	if n := e.Count(t, `SELECT count(*) FROM sessions WHERE ended_at IS NULL AND rt_prev_hash IS NULL`); n != 1 {
		t.Fatalf("the session was touched: %d untouched live sessions", n)
	}
	e.form(t, "/oauth/token", grant("client_id", "accounts")).want(t, 200, "")
}

// sessionFor opens a session of another client directly in the store (no
// grant gives other clients sessions yet) and returns its refresh token.
func sessionFor(t *testing.T, e *env, email, clientID string) string {
	t.Helper()
	ctx := context.Background()
	u, err := e.Store.UserByEmail(ctx, email)
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	hash := sha256.Sum256(secret)
	sid := uuid.New()
	now := e.Clock.Now()
	if _, err := e.Store.CreateSession(ctx, auth.NewSession{ID: sid.String(), UserID: u.ID, ClientID: clientID, Epoch: u.SessionEpoch,
		Now: now, ExpiresAt: now.Add(time.Hour), RefreshHash: hash[:], RefreshExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(append(sid[:], secret...))
}

func TestRefreshTokensBelongToTheirClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	secret := e.addClient(t, "svc", true)
	e.signup(t, "owned@example.com")
	rt := sessionFor(t, e, "owned@example.com", "svc")
	// Not the built-in client's: /v1/token/refresh and client accounts refuse it.
	e.req(t, "POST", "/v1/token/refresh", map[string]string{"refresh_token": rt}).want(t, 401, "invalid_grant")
	e.form(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"accounts"}}).want(t, 400, "invalid_grant")
	r := e.form(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, basic("svc", secret)...)
	r.want(t, 200, "")
	if c := claims(t, r.str("access_token")); c["client_id"] != "svc" {
		t.Fatalf("client_id %v", c["client_id"])
	}
	at := r.str("access_token")
	e.req(t, "GET", "/v1/me", nil, bearer(at)...).want(t, 200, "")
	// Removing the client ends its sessions at once.
	if err := e.Service.RemoveClient(context.Background(), "svc"); err != nil {
		t.Fatal(err)
	}
	e.req(t, "GET", "/v1/me", nil, bearer(at)...).want(t, 401, "invalid_token")
	e.form(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.str("refresh_token")}}, basic("svc", secret)...).want(t, 401, "invalid_client")
	if err := e.Service.RemoveClient(context.Background(), "accounts"); err == nil {
		t.Fatal("the built-in client was removed")
	}
	if n := e.Count(t, `SELECT count(*) FROM audit_events WHERE event IN ('client_added', 'client_removed')`); n != 2 {
		t.Fatalf("%d client audit events", n)
	}
}

func TestOAuthRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	secret := e.addClient(t, "svc", true)
	e.signup(t, "revoke@example.com")
	a := e.login(t, "revoke@example.com")
	b := e.login(t, "revoke@example.com")
	pub := url.Values{"client_id": {"accounts"}}
	with := func(v url.Values, k, val string) url.Values {
		out := url.Values{}
		for kk, vv := range v {
			out[kk] = vv
		}
		out.Set(k, val)
		return out
	}
	// Garbage, and other clients' tokens: 200, and nothing changes.
	e.form(t, "/oauth/revoke", with(pub, "token", "garbage")).want(t, 200, "")
	e.form(t, "/oauth/revoke", with(pub, "token", strings.Repeat("A", 64))).want(t, 200, "")
	e.form(t, "/oauth/revoke", url.Values{"token": {a.refresh}, "token_type_hint": {"refresh_token"}}, basic("svc", secret)...).want(t, 200, "")
	e.form(t, "/oauth/revoke", url.Values{"token": {a.access}}, basic("svc", secret)...).want(t, 200, "")
	e.req(t, "GET", "/v1/me", nil, bearer(a.access)...).want(t, 200, "")
	// The client's own access token stops working; its session does not end.
	e.form(t, "/oauth/revoke", with(pub, "token", a.access)).want(t, 200, "")
	e.req(t, "GET", "/v1/me", nil, bearer(a.access)...).want(t, 401, "invalid_token")
	r := e.req(t, "POST", "/v1/token/refresh", map[string]string{"refresh_token": a.refresh})
	r.want(t, 200, "")
	// The client's own refresh token ends its session.
	e.form(t, "/oauth/revoke", with(pub, "token", r.str("refresh_token"))).want(t, 200, "")
	e.req(t, "GET", "/v1/me", nil, bearer(r.str("access_token"))...).want(t, 401, "invalid_token")
	e.req(t, "POST", "/v1/token/refresh", map[string]string{"refresh_token": r.str("refresh_token")}).want(t, 401, "invalid_grant")
	e.req(t, "GET", "/v1/me", nil, bearer(b.access)...).want(t, 200, "") // the other session lives
	// Again: already dead, still 200.
	e.form(t, "/oauth/revoke", with(pub, "token", r.str("refresh_token"))).want(t, 200, "")
	// Client authentication is required; a token is required.
	e.form(t, "/oauth/revoke", url.Values{"token": {b.refresh}}).want(t, 401, "invalid_client")
	e.form(t, "/oauth/revoke", pub).want(t, 400, "invalid_request")
	e.req(t, "GET", "/v1/me", nil, bearer(b.access)...).want(t, 200, "")
	if n := e.Count(t, `SELECT count(*) FROM audit_events WHERE event = 'token_revoked'`); n != 2 {
		t.Fatalf("%d token_revoked events, want 2", n)
	}
}

func TestOAuthIntrospect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	secret := e.addClient(t, "rs", true)
	e.addClient(t, "spa", false)
	e.signup(t, "intro@example.com")
	tk := e.login(t, "intro@example.com")
	r := e.form(t, "/oauth/introspect", url.Values{"token": {tk.access}}, basic("rs", secret)...)
	r.want(t, 200, "")
	c := claims(t, tk.access)
	if r.body["active"] != true || r.str("sub") != c["sub"] || r.str("client_id") != "accounts" || r.str("sid") != c["sid"] ||
		r.str("iss") != testdb.Issuer || r.str("aud") != testdb.Audience || r.str("token_type") != "Bearer" ||
		r.body["exp"] != c["exp"] || r.body["iat"] != c["iat"] {
		t.Fatalf("introspection %s for claims %v", r.raw, c)
	}
	// client_secret_post too.
	e.form(t, "/oauth/introspect", url.Values{"token": {tk.access}, "client_id": {"rs"}, "client_secret": {secret}}).want(t, 200, "")
	for name, tok := range map[string]string{"refresh token": tk.refresh, "garbage": "garbage", "forged JWT": "a.b.c"} {
		r := e.form(t, "/oauth/introspect", url.Values{"token": {tok}}, basic("rs", secret)...)
		r.want(t, 200, "")
		if strings.TrimSpace(r.raw) != `{"active":false}` {
			t.Fatalf("%s: %s", name, r.raw)
		}
	}
	// Without confidential client authentication: 401.
	e.form(t, "/oauth/introspect", url.Values{"token": {tk.access}}).want(t, 401, "invalid_client")
	e.form(t, "/oauth/introspect", url.Values{"token": {tk.access}, "client_id": {"spa"}}).want(t, 401, "invalid_client")
	e.form(t, "/oauth/introspect", url.Values{"token": {tk.access}, "client_id": {"accounts"}}).want(t, 401, "invalid_client")
	e.form(t, "/oauth/introspect", url.Values{"token": {tk.access}}, basic("rs", "wrong")...).want(t, 401, "invalid_client")
	// After logout the token is inactive.
	e.req(t, "POST", "/v1/logout", nil, bearer(tk.access)...).want(t, 204, "")
	r = e.form(t, "/oauth/introspect", url.Values{"token": {tk.access}}, basic("rs", secret)...)
	if strings.TrimSpace(r.raw) != `{"active":false}` {
		t.Fatalf("after logout: %s", r.raw)
	}
}

func TestOAuthEndpointsAreRateLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{proxies: []string{"127.0.0.1/32"},
		kit: testdb.KitOptions{Config: func(c *auth.Config) { c.IPLimit = auth.RateLimit{N: 2, Window: time.Hour} }}})
	for i, path := range []string{"/oauth/token", "/oauth/revoke", "/oauth/introspect"} {
		ip := "198.51.100." + string(rune('1'+i))
		for range 2 {
			if r := e.form(t, path, url.Values{"client_id": {"accounts"}, "token": {"x"}}, "X-Forwarded-For", ip); r.status == 429 {
				t.Fatalf("%s: 429 within the limit", path)
			}
		}
		e.form(t, path, url.Values{"client_id": {"accounts"}, "token": {"x"}}, "X-Forwarded-For", ip).want(t, 429, "too_many_requests")
	}
}
