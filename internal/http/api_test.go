package http_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/acme/accounts/api"
	"github.com/google/uuid"
)

func TestSignup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	r := e.req(t, "POST", "/v1/signup", map[string]string{"email": " Ann@Example.com ", "password": pw})
	r.want(t, 201, "")
	if uuid.Validate(r.str("id")) != nil || r.str("email") != "Ann@Example.com" || r.str("role") != "user" {
		t.Fatalf("body = %s", r.raw)
	}
	if _, err := time.Parse(time.RFC3339Nano, r.str("created_at")); err != nil {
		t.Fatalf("created_at: %v", err)
	}
	if len(r.body) != 4 {
		t.Fatalf("body has %d members, want id, email, role, created_at: %s", len(r.body), r.raw)
	}
	e.req(t, "POST", "/v1/signup", map[string]string{"email": "ann@example.COM", "password": pw}).want(t, 409, "email_taken")

	tests := []struct {
		name   string
		body   any
		status int
		code   string
		field  string
	}{
		{"bad email", map[string]string{"email": "not-an-email", "password": pw}, 400, "invalid_request", "email"},
		{"missing email", map[string]string{"password": pw}, 400, "invalid_request", "email"},
		{"null email", `{"email":null,"password":"correct horse battery"}`, 400, "invalid_request", "email"},
		{"short password", map[string]string{"email": "s@example.com", "password": "short"}, 400, "invalid_request", "password"},
		{"empty password", map[string]string{"email": "s@example.com", "password": ""}, 400, "invalid_request", "password"},
		{"common password", map[string]string{"email": "s@example.com", "password": "password1234"}, 400, "invalid_request", "password"},
		{"keyboard walk", map[string]string{"email": "s@example.com", "password": "qwertyuiop123"}, 400, "invalid_request", "password"},
		{"the email as password", map[string]string{"email": "sam.smith@example.com", "password": "sam.smith@example.com"}, 400, "invalid_request", "password"},
		{"repeated characters", map[string]string{"email": "s@example.com", "password": "zzzzzzzzzzzzzzzz"}, 400, "invalid_request", "password"},
		{"password over 1024 bytes", map[string]string{"email": "s@example.com", "password": strings.Repeat("p", 1025)}, 400, "invalid_request", "password"},
		{"wrong type", `{"email":123,"password":"correct horse battery"}`, 400, "invalid_request", "email"},
		{"unknown field", `{"email":"u@example.com","password":"correct horse battery","role":"admin"}`, 400, "invalid_request", ""},
		{"duplicate key", `{"email":"u@example.com","email":"v@example.com","password":"correct horse battery"}`, 400, "invalid_request", ""},
		{"case-variant key", `{"EMAIL":"u@example.com","password":"correct horse battery"}`, 400, "invalid_request", ""},
		{"trailing data", `{"email":"u@example.com","password":"correct horse battery"} {}`, 400, "invalid_request", ""},
		{"truncated", `{"email":"u@example.com"`, 400, "invalid_request", ""},
		{"not an object", `[]`, 400, "invalid_request", ""},
		{"empty body", ``, 400, "invalid_request", ""},
		{"invalid UTF-8", "{\"email\":\"u\xff@example.com\",\"password\":\"correct horse battery\"}", 400, "invalid_request", ""},
		{"deep nesting", `{"email":` + strings.Repeat("[", 20000) + `}`, 400, "invalid_request", ""},
		{"body over 64 KiB", `{"email":"` + strings.Repeat("a", 70000) + `"}`, 413, "payload_too_large", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.req(t, "POST", "/v1/signup", tc.body)
			r.want(t, tc.status, tc.code)
			if tc.field != "" {
				r.field(t, tc.field)
			}
			if strings.Contains(r.raw, pw) {
				t.Fatal("the error echoes the password")
			}
		})
	}
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=utf-16"} {
		r := e.req(t, "POST", "/v1/signup", map[string]string{"email": "ct@example.com", "password": pw}, "Content-Type", ct)
		if ct == "" {
			r = e.req(t, "POST", "/v1/signup", map[string]string{"email": "ct@example.com", "password": pw}, "Content-Type", "")
		}
		r.want(t, 415, "unsupported_media_type")
	}
	e.req(t, "POST", "/v1/signup", map[string]string{"email": "cs@example.com", "password": pw},
		"Content-Type", "application/json; charset=UTF-8").want(t, 201, "")
	if n := e.Count(t, `SELECT count(*) FROM users`); n != 2 {
		t.Fatalf("%d users, want 2: a bad request changed the database", n)
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.signup(t, "lee@example.com")
	r := e.req(t, "POST", "/v1/login", map[string]string{"email": "LEE@example.com", "password": pw})
	r.want(t, 200, "")
	if r.str("token_type") != "Bearer" || r.body["expires_in"] != float64(900) || r.str("access_token") == "" || len(r.str("refresh_token")) < 43 {
		t.Fatalf("token response = %s", r.raw)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("Cache-Control = %q", r.header.Get("Cache-Control"))
	}
	wrong := e.req(t, "POST", "/v1/login", map[string]string{"email": "lee@example.com", "password": "not the password"})
	unknown := e.req(t, "POST", "/v1/login", map[string]string{"email": "nobody@example.com", "password": "not the password"})
	wrong.want(t, 401, "invalid_credentials")
	unknown.want(t, 401, "invalid_credentials")
	if wrong.raw != unknown.raw {
		t.Fatalf("unknown email and wrong password answer differently:\n%s\n%s", wrong.raw, unknown.raw)
	}
	e.req(t, "POST", "/v1/login", map[string]string{"email": "lee@example.com"}).want(t, 400, "invalid_request")
	e.req(t, "POST", "/v1/login", map[string]string{"email": "", "password": pw}).want(t, 400, "invalid_request")
	e.req(t, "POST", "/v1/login", map[string]string{"email": "lee@example.com", "password": strings.Repeat("x", 1025)}).want(t, 400, "invalid_request")
	e.req(t, "GET", "/v1/login", nil).want(t, 405, "method_not_allowed")
}

func TestRefreshEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.signup(t, "ref@example.com")
	tk := e.login(t, "ref@example.com")
	r := e.req(t, "POST", "/v1/token/refresh", map[string]string{"refresh_token": tk.refresh})
	r.want(t, 200, "")
	if r.str("refresh_token") == tk.refresh || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("refresh = %s, %v", r.raw, r.header)
	}
	// Within the grace window the same successor comes back.
	again := e.req(t, "POST", "/v1/token/refresh", map[string]string{"refresh_token": tk.refresh})
	again.want(t, 200, "")
	if again.str("refresh_token") != r.str("refresh_token") {
		t.Fatal("grace retry returned another token")
	}
	for _, body := range []any{map[string]any{}, `{"refresh_token":null}`, map[string]string{"refresh_token": ""}} {
		e.req(t, "POST", "/v1/token/refresh", body).want(t, 400, "invalid_request")
	}
	for _, bad := range []string{"garbage", tk.access, strings.Repeat("A", 43)} {
		e.req(t, "POST", "/v1/token/refresh", map[string]string{"refresh_token": bad}).want(t, 401, "invalid_grant")
	}
	// Reuse after the window ends the session.
	e.Clock.Advance(11 * time.Second)
	e.req(t, "POST", "/v1/token/refresh", map[string]string{"refresh_token": tk.refresh}).want(t, 401, "invalid_grant")
	e.req(t, "POST", "/v1/token/refresh", map[string]string{"refresh_token": r.str("refresh_token")}).want(t, 401, "invalid_grant")
	e.req(t, "GET", "/v1/me", nil, bearer(r.str("access_token"))...).want(t, 401, "invalid_token")
}

func TestBearerHandling(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	id := e.signup(t, "bee@example.com")
	tk := e.login(t, "bee@example.com")

	me := e.req(t, "GET", "/v1/me", nil, "Authorization", "bearer "+tk.access)
	me.want(t, 200, "")
	if me.str("id") != id || me.str("email") != "bee@example.com" || me.str("role") != "user" || me.str("created_at") == "" {
		t.Fatalf("me = %s", me.raw)
	}
	tests := []struct {
		name   string
		hdr    []string
		query  string
		wwwErr bool
	}{
		{"no token", nil, "", false},
		{"basic scheme", []string{"Authorization", "Basic dXNlcjpwYXNz"}, "", false},
		{"token only in the query", nil, "?access_token=" + tk.access, false},
		{"empty bearer", []string{"Authorization", "Bearer "}, "", true},
		{"two tokens", []string{"Authorization", "Bearer a b"}, "", true},
		{"two headers", []string{"Authorization", "Bearer " + tk.access, "Authorization", "Bearer " + tk.access}, "", true},
		{"garbage", []string{"Authorization", "Bearer garbage"}, "", true},
		{"refresh token as bearer", []string{"Authorization", "Bearer " + tk.refresh}, "", true},
		{"20 KB header", []string{"Authorization", "Bearer " + strings.Repeat("a", 20000)}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.req(t, "GET", "/v1/me"+tc.query, nil, tc.hdr...)
			r.want(t, 401, "invalid_token")
			want := "Bearer"
			if tc.wwwErr {
				want = `Bearer error="invalid_token"`
			}
			if got := r.header.Get("WWW-Authenticate"); got != want {
				t.Fatalf("WWW-Authenticate = %q, want %q", got, want)
			}
		})
	}
}

func TestLogoutEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.signup(t, "out@example.com")
	a, b, c := e.login(t, "out@example.com"), e.login(t, "out@example.com"), e.login(t, "out@example.com")

	e.req(t, "POST", "/v1/logout", nil, bearer(a.access)...).want(t, 204, "")
	e.req(t, "GET", "/v1/me", nil, bearer(a.access)...).want(t, 401, "invalid_token")
	e.req(t, "POST", "/v1/token/refresh", map[string]string{"refresh_token": a.refresh}).want(t, 401, "invalid_grant")
	e.req(t, "POST", "/v1/logout", nil, bearer(a.access)...).want(t, 401, "invalid_token")
	e.req(t, "POST", "/v1/logout", nil).want(t, 401, "invalid_token")
	e.req(t, "GET", "/v1/me", nil, bearer(b.access)...).want(t, 200, "")

	e.req(t, "POST", "/v1/logout/all", nil, bearer(b.access)...).want(t, 204, "")
	for _, tk := range []tokens{b, c} {
		e.req(t, "GET", "/v1/me", nil, bearer(tk.access)...).want(t, 401, "invalid_token")
		e.req(t, "POST", "/v1/token/refresh", map[string]string{"refresh_token": tk.refresh}).want(t, 401, "invalid_grant")
	}
	e.req(t, "POST", "/v1/logout/all", nil).want(t, 401, "invalid_token")
}

func TestSessionsEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.signup(t, "ses@example.com")
	e.signup(t, "other@example.com")
	a := e.login(t, "ses@example.com")
	b := e.login(t, "ses@example.com")
	o := e.login(t, "other@example.com")

	r := e.req(t, "GET", "/v1/sessions", nil, append(bearer(a.access), "User-Agent", "agent/1.0")...)
	r.want(t, 200, "")
	list, _ := r.body["sessions"].([]any)
	if len(list) != 2 {
		t.Fatalf("sessions = %s", r.raw)
	}
	var current, other string
	for _, s := range list {
		m := s.(map[string]any)
		for _, k := range []string{"id", "created_at", "last_used_at", "expires_at", "user_agent", "ip", "current"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("session lacks %s: %v", k, m)
			}
		}
		if m["ip"] != "127.0.0.1" {
			t.Fatalf("ip = %v", m["ip"])
		}
		if m["current"] == true {
			current = m["id"].(string)
		} else {
			other = m["id"].(string)
		}
	}
	if current == "" || other == "" {
		t.Fatalf("want one current and one other session: %s", r.raw)
	}
	// Another user's session and garbage ids are not found, and nothing changes.
	e.req(t, "DELETE", "/v1/sessions/"+other, nil, bearer(o.access)...).want(t, 404, "not_found")
	e.req(t, "DELETE", "/v1/sessions/'%20OR%201=1--", nil, bearer(a.access)...).want(t, 404, "not_found")
	e.req(t, "DELETE", "/v1/sessions/"+uuid.NewString(), nil, bearer(a.access)...).want(t, 404, "not_found")
	e.req(t, "GET", "/v1/me", nil, bearer(b.access)...).want(t, 200, "")

	e.req(t, "DELETE", "/v1/sessions/"+other, nil, bearer(a.access)...).want(t, 204, "")
	e.req(t, "GET", "/v1/me", nil, bearer(b.access)...).want(t, 401, "invalid_token")
	e.req(t, "DELETE", "/v1/sessions/"+other, nil, bearer(a.access)...).want(t, 404, "not_found")
	r = e.req(t, "GET", "/v1/sessions", nil, bearer(a.access)...)
	if list, _ := r.body["sessions"].([]any); len(list) != 1 {
		t.Fatalf("sessions after delete = %s", r.raw)
	}
	e.req(t, "GET", "/v1/sessions", nil).want(t, 401, "invalid_token")
	e.req(t, "DELETE", "/v1/sessions/"+current, nil).want(t, 401, "invalid_token")
}

func TestPasswordEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.signup(t, "pass@example.com")
	a, b := e.login(t, "pass@example.com"), e.login(t, "pass@example.com")
	body := func(cur, next string) map[string]string {
		return map[string]string{"current_password": cur, "new_password": next}
	}
	e.req(t, "POST", "/v1/password", body("wrong password!!", "a new long passphrase"), bearer(a.access)...).want(t, 401, "invalid_credentials")
	r := e.req(t, "POST", "/v1/password", body(pw, "short"), bearer(a.access)...)
	r.want(t, 400, "invalid_request")
	r.field(t, "new_password")
	e.req(t, "POST", "/v1/password", map[string]string{"new_password": "a new long passphrase"}, bearer(a.access)...).want(t, 400, "invalid_request")
	r = e.req(t, "POST", "/v1/password", body(pw, "password1234"), bearer(a.access)...)
	r.want(t, 400, "invalid_request")
	r.field(t, "new_password")
	e.req(t, "POST", "/v1/password", body(pw, "a new long passphrase")).want(t, 401, "invalid_token")
	e.req(t, "POST", "/v1/password", body(pw, "a new long passphrase"), bearer(a.access)...).want(t, 204, "")
	e.req(t, "GET", "/v1/me", nil, bearer(a.access)...).want(t, 200, "")
	e.req(t, "GET", "/v1/me", nil, bearer(b.access)...).want(t, 401, "invalid_token")
	e.req(t, "POST", "/v1/login", map[string]string{"email": "pass@example.com", "password": pw}).want(t, 401, "invalid_credentials")
	e.req(t, "POST", "/v1/login", map[string]string{"email": "pass@example.com", "password": "a new long passphrase"}).want(t, 200, "")
}

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	var ids []string
	for i := range 5 {
		ids = append(ids, e.signup(t, fmt.Sprintf("user%d@example.com", i)))
		e.Clock.Advance(time.Millisecond)
	}
	user := e.login(t, "user1@example.com")
	admin := e.makeAdmin(t, "user0@example.com")

	e.req(t, "GET", "/v1/admin/users", nil, bearer(user.access)...).want(t, 403, "forbidden")
	e.req(t, "GET", "/v1/admin/users", nil).want(t, 401, "invalid_token")
	r := e.req(t, "GET", "/v1/admin/users", nil, bearer(admin.access)...)
	r.want(t, 200, "")
	if users, _ := r.body["users"].([]any); len(users) != 5 || r.body["next_cursor"] != nil {
		t.Fatalf("default page = %s", r.raw)
	}
	if _, present := r.body["next_cursor"]; !present {
		t.Fatal("next_cursor must be present (null) on the last page")
	}
	var seen []string
	path := "/v1/admin/users?limit=2"
	for {
		r := e.req(t, "GET", path, nil, bearer(admin.access)...)
		r.want(t, 200, "")
		for _, u := range r.body["users"].([]any) {
			m := u.(map[string]any)
			if len(m) != 4 {
				t.Fatalf("user view = %v", m)
			}
			seen = append(seen, m["id"].(string))
		}
		next, _ := r.body["next_cursor"].(string)
		if next == "" {
			break
		}
		path = "/v1/admin/users?limit=2&cursor=" + next
	}
	if strings.Join(seen, ",") != strings.Join(ids, ",") {
		t.Fatalf("paged ids %v, want %v", seen, ids)
	}
	for _, q := range []string{"limit=0", "limit=101", "limit=abc", "limit=", "cursor=garbage", "limit=-1"} {
		r := e.req(t, "GET", "/v1/admin/users?"+q, nil, bearer(admin.access)...)
		r.want(t, 400, "invalid_request")
	}

	e.req(t, "POST", "/v1/admin/users/"+ids[1]+"/logout", nil, bearer(user.access)...).want(t, 403, "forbidden")
	e.req(t, "POST", "/v1/admin/users/"+uuid.NewString()+"/logout", nil, bearer(admin.access)...).want(t, 404, "not_found")
	e.req(t, "POST", "/v1/admin/users/not-a-uuid/logout", nil, bearer(admin.access)...).want(t, 404, "not_found")
	e.req(t, "POST", "/v1/admin/users/"+ids[1]+"/logout", nil).want(t, 401, "invalid_token")
	e.req(t, "POST", "/v1/admin/users/"+ids[1]+"/logout", nil, bearer(admin.access)...).want(t, 204, "")
	e.req(t, "GET", "/v1/me", nil, bearer(user.access)...).want(t, 401, "invalid_token")
	e.req(t, "POST", "/v1/token/refresh", map[string]string{"refresh_token": user.refresh}).want(t, 401, "invalid_grant")
	e.req(t, "GET", "/v1/me", nil, bearer(admin.access)...).want(t, 200, "")
}

func TestPublicEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	// The document, as this build embeds it.
	doc := e.req(t, "GET", "/openapi.yaml", nil)
	doc.want(t, 200, "")
	if doc.raw != string(api.OpenAPI) || doc.header.Get("Content-Type") != "application/yaml" {
		t.Fatalf("GET /openapi.yaml: %q, %d bytes, want the %d of api/openapi.yaml", doc.header.Get("Content-Type"), len(doc.raw), len(api.OpenAPI))
	}
	r := e.req(t, "GET", "/.well-known/jwks.json", nil)
	r.want(t, 200, "")
	keys, _ := r.body["keys"].([]any)
	if len(keys) != 1 {
		t.Fatalf("jwks = %s", r.raw)
	}
	k := keys[0].(map[string]any)
	if k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["alg"] != "EdDSA" || k["use"] != "sig" || k["kid"] == "" || k["x"] == "" {
		t.Fatalf("jwk = %v", k)
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
		if _, ok := k[private]; ok {
			t.Fatalf("jwk publishes private member %s", private)
		}
	}
	if !strings.Contains(r.header.Get("Cache-Control"), "max-age") {
		t.Fatalf("jwks Cache-Control = %q", r.header.Get("Cache-Control"))
	}
	post := e.req(t, "POST", "/.well-known/jwks.json", nil)
	post.want(t, 405, "method_not_allowed")
	if allow := post.header.Get("Allow"); !strings.Contains(allow, "GET") {
		t.Fatalf("Allow = %q", allow)
	}
	if h := e.req(t, "HEAD", "/.well-known/jwks.json", nil); h.status != 200 {
		t.Fatalf("HEAD jwks = %d", h.status)
	}
	e.req(t, "DELETE", "/.well-known/jwks.json", nil).want(t, 405, "method_not_allowed")

	h := e.req(t, "GET", "/healthz", nil)
	h.want(t, 200, "")
	if h.str("status") != "ok" {
		t.Fatalf("healthz = %s", h.raw)
	}
	e.req(t, "GET", "/readyz", nil).want(t, 200, "")
	m := e.req(t, "GET", "/metrics", nil)
	m.want(t, 200, "")
	if !strings.Contains(m.raw, "http_requests_total") || !strings.Contains(m.raw, "go_goroutines") {
		t.Fatalf("metrics lack the HTTP or Go series")
	}
	e.req(t, "GET", "/nope", nil).want(t, 404, "not_found")
	e.req(t, "GET", "/v1/nope", nil).want(t, 404, "not_found")
}

func TestReadyzWithoutDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{ready: func(context.Context) error { return errClosed }})
	r := e.req(t, "GET", "/readyz", nil)
	r.want(t, 503, "service_unavailable")
	e.req(t, "GET", "/healthz", nil).want(t, 200, "")
}

func TestInternalErrorLeaksNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.Pool.Close() // every query now fails inside the store
	r := e.req(t, "POST", "/v1/signup", map[string]string{"email": "five@example.com", "password": pw})
	r.want(t, 500, "internal_error")
	for _, leak := range []string{"pool", "sql", "store", "closed", pw} {
		if strings.Contains(strings.ToLower(r.str("error_description")), leak) {
			t.Fatalf("500 body leaks %q: %s", leak, r.raw)
		}
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	if got := e.req(t, "GET", "/healthz", nil, "X-Request-Id", "abc-123_x.y:z").header.Get("X-Request-Id"); got != "abc-123_x.y:z" {
		t.Fatalf("valid id not echoed: %q", got)
	}
	for _, bad := range []string{strings.Repeat("a", 129), "has space", "semi;colon", "<script>"} {
		got := e.req(t, "GET", "/healthz", nil, "X-Request-Id", bad).header.Get("X-Request-Id")
		if got == bad || got == "" {
			t.Fatalf("invalid id %q answered with %q", bad, got)
		}
	}
}
