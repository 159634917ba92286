package http_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/acme/accounts/internal/testdb"
)

// snapshot fingerprints every table a request could change for the worse.
// audit_events is left out: failed attempts are meant to be recorded.
func snapshot(t *testing.T, e *env) string {
	t.Helper()
	var out strings.Builder
	for _, table := range []string{"users", "sessions", "refresh_tokens", "revoked_tokens", "signing_keys", "rate_limits"} {
		var sum string
		err := e.Pool.QueryRow(context.Background(),
			`SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM `+table+` t`).Scan(&sum)
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString(table + "=" + sum + ";")
	}
	return out.String()
}

type hostileCase struct {
	name   string
	method string
	path   string
	body   string // sent as is; "" sends none
	hdr    []string
	status int
	code   string
}

// TestHostileInputs plays the attacker: every case must get exactly its
// status and error code, and afterwards nothing in the database may differ.
func TestHostileInputs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	victimID := e.signup(t, "victim@example.com")
	victim := e.login(t, "victim@example.com")
	other := e.signup(t, "other@example.com")
	_ = other
	kid, priv := e.SigningKey(t)
	p, err := e.Service.Authenticate(context.Background(), victim.access)
	if err != nil {
		t.Fatal(err)
	}
	now := e.Clock.Now()

	ours := func(b []byte) []byte { return ed25519.Sign(priv, b) }
	_, attackerKey, _ := ed25519.GenerateKey(rand.Reader)
	theirs := func(b []byte) []byte { return ed25519.Sign(attackerKey, b) }
	pub := priv.Public().(ed25519.PublicKey)
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hs := func(secret []byte) func([]byte) []byte {
		return func(b []byte) []byte { m := hmac.New(sha256.New, secret); m.Write(b); return m.Sum(nil) }
	}
	tok := func(hmod, cmod map[string]any, sign func([]byte) []byte) string {
		return testdb.CraftJWT(t, testdb.Header(kid, hmod), testdb.Claims(victimID, p.SessionID, now, cmod), sign)
	}
	parts := strings.Split(victim.access, ".")
	var claims map[string]any
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	_ = json.Unmarshal(raw, &claims)
	claims["role"] = "admin"
	adminPayload, _ := json.Marshal(claims)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(adminPayload) + "." + parts[2]

	const jsonCT = "application/json"
	cred := `{"email":"victim@example.com","password":"correct horse battery"}`
	big := strings.Repeat("a", 60000)
	bearerH := func(v string) []string { return []string{"Authorization", "Bearer " + v} }
	ct := func(v string) []string { return []string{"Content-Type", v} }
	withCT := func(h ...string) []string { return append([]string{"Content-Type", jsonCT}, h...) }

	cases := []hostileCase{
		// Request bodies.
		{"empty body", "POST", "/v1/login", "", withCT(), 400, "invalid_request"},
		{"whitespace body", "POST", "/v1/login", "   ", withCT(), 400, "invalid_request"},
		{"truncated JSON", "POST", "/v1/login", `{"email":"victim@example.com"`, withCT(), 400, "invalid_request"},
		{"array body", "POST", "/v1/login", `[]`, withCT(), 400, "invalid_request"},
		{"null body", "POST", "/v1/login", `null`, withCT(), 400, "invalid_request"},
		{"string body", "POST", "/v1/signup", `"str"`, withCT(), 400, "invalid_request"},
		{"number body", "POST", "/v1/signup", `42`, withCT(), 400, "invalid_request"},
		{"trailing garbage", "POST", "/v1/login", cred + ` xyz`, withCT(), 400, "invalid_request"},
		{"two objects", "POST", "/v1/signup", `{"email":"n@example.com","password":"correct horse battery"}{}`, withCT(), 400, "invalid_request"},
		{"mass assignment: role", "POST", "/v1/signup", `{"email":"n@example.com","password":"correct horse battery","role":"admin"}`, withCT(), 400, "invalid_request"},
		{"mass assignment: is_admin", "POST", "/v1/signup", `{"email":"n@example.com","password":"correct horse battery","is_admin":true}`, withCT(), 400, "invalid_request"},
		{"mass assignment: id", "POST", "/v1/signup", `{"email":"n@example.com","password":"correct horse battery","id":"` + victimID + `"}`, withCT(), 400, "invalid_request"},
		{"email as a number", "POST", "/v1/signup", `{"email":123,"password":"correct horse battery"}`, withCT(), 400, "invalid_request"},
		{"password as an array", "POST", "/v1/signup", `{"email":"n@example.com","password":["x"]}`, withCT(), 400, "invalid_request"},
		{"password as an object", "POST", "/v1/login", `{"email":"victim@example.com","password":{"$ne":null}}`, withCT(), 400, "invalid_request"},
		{"password as true", "POST", "/v1/login", `{"email":"victim@example.com","password":true}`, withCT(), 400, "invalid_request"},
		{"null email", "POST", "/v1/signup", `{"email":null,"password":"correct horse battery"}`, withCT(), 400, "invalid_request"},
		{"null password", "POST", "/v1/login", `{"email":"victim@example.com","password":null}`, withCT(), 400, "invalid_request"},
		{"duplicate email key", "POST", "/v1/login", `{"email":"x@example.com","email":"victim@example.com","password":"correct horse battery"}`, withCT(), 400, "invalid_request"},
		{"case-variant keys", "POST", "/v1/login", `{"EMAIL":"victim@example.com","Password":"correct horse battery"}`, withCT(), 400, "invalid_request"},
		{"deeply nested arrays", "POST", "/v1/signup", `{"email":` + strings.Repeat("[", 20000) + `}`, withCT(), 400, "invalid_request"},
		{"deeply nested objects", "POST", "/v1/signup", `{"email":` + strings.Repeat(`{"a":`, 10000) + `}`, withCT(), 400, "invalid_request"},
		{"body over 64 KiB", "POST", "/v1/signup", `{"email":"` + strings.Repeat("a", 70_000) + `"}`, withCT(), 413, "payload_too_large"},
		{"text/plain", "POST", "/v1/login", cred, ct("text/plain"), 415, "unsupported_media_type"},
		{"form encoded", "POST", "/v1/login", "email=a&password=b", ct("application/x-www-form-urlencoded"), 415, "unsupported_media_type"},
		{"multipart", "POST", "/v1/login", cred, ct("multipart/form-data; boundary=x"), 415, "unsupported_media_type"},
		{"no content type", "POST", "/v1/login", cred, nil, 415, "unsupported_media_type"},
		{"UTF-16 charset", "POST", "/v1/login", cred, ct("application/json; charset=utf-16"), 415, "unsupported_media_type"},
		{"malformed content type", "POST", "/v1/login", cred, ct("application/json; ;;"), 415, "unsupported_media_type"},
		{"invalid UTF-8 in email", "POST", "/v1/signup", "{\"email\":\"a\xff@example.com\",\"password\":\"correct horse battery\"}", withCT(), 400, "invalid_request"},
		{"UTF-8 BOM", "POST", "/v1/login", "\xef\xbb\xbf" + cred, withCT(), 400, "invalid_request"},

		// Emails.
		{"email without @", "POST", "/v1/signup", `{"email":"nobody","password":"correct horse battery"}`, withCT(), 400, "invalid_request"},
		{"email of spaces", "POST", "/v1/signup", `{"email":"   ","password":"correct horse battery"}`, withCT(), 400, "invalid_request"},
		{"email over 254", "POST", "/v1/signup", `{"email":"a@` + strings.Repeat("b", 260) + `.com","password":"correct horse battery"}`, withCT(), 400, "invalid_request"},
		{"local part over 64", "POST", "/v1/signup", `{"email":"` + strings.Repeat("a", 65) + `@example.com","password":"correct horse battery"}`, withCT(), 400, "invalid_request"},
		{"CRLF header injection", "POST", "/v1/signup", `{"email":"a@x.io\r\nBcc: v@y.io","password":"correct horse battery"}`, withCT(), 400, "invalid_request"},
		{"script in email", "POST", "/v1/signup", `{"email":"\"><script>alert(1)</script>\"@example.org","password":"correct horse battery"}`, withCT(), 400, "invalid_request"},
		{"NUL in email", "POST", "/v1/signup", `{"email":"a\u0000@example.com","password":"correct horse battery"}`, withCT(), 400, "invalid_request"},
		{"bell in email", "POST", "/v1/signup", `{"email":"a\u0007@example.com","password":"correct horse battery"}`, withCT(), 400, "invalid_request"},
		{"zero-width space in email", "POST", "/v1/signup", `{"email":"vic\u200btim@example.com","password":"correct horse battery"}`, withCT(), 400, "invalid_request"},
		{"backtick in email", "POST", "/v1/signup", "{\"email\":\"a`b@example.com\",\"password\":\"correct horse battery\"}", withCT(), 400, "invalid_request"},
		{"SQL-like email at signup", "POST", "/v1/signup", `{"email":"' OR '1'='1'--@x.io","password":"correct horse battery"}`, withCT(), 400, "invalid_request"},
		{"SQL-like email at login", "POST", "/v1/login", `{"email":"admin'--","password":"correct horse battery"}`, withCT(), 401, "invalid_credentials"},
		{"SQL wildcard email at login", "POST", "/v1/login", `{"email":"%@example.com","password":"correct horse battery"}`, withCT(), 401, "invalid_credentials"},
		{"huge email", "POST", "/v1/signup", `{"email":"` + big + `@example.com","password":"correct horse battery"}`, withCT(), 400, "invalid_request"},
		{"existing email in other case", "POST", "/v1/signup", `{"email":"VICTIM@example.com","password":"correct horse battery"}`, withCT(), 409, "email_taken"},

		// Passwords.
		{"overlong password at signup", "POST", "/v1/signup", `{"email":"n@example.com","password":"` + strings.Repeat("p", 1025) + `"}`, withCT(), 400, "invalid_request"},
		{"overlong password at login", "POST", "/v1/login", `{"email":"victim@example.com","password":"` + strings.Repeat("p", 1025) + `"}`, withCT(), 400, "invalid_request"},
		{"short password", "POST", "/v1/signup", `{"email":"n@example.com","password":"short"}`, withCT(), 400, "invalid_request"},
		{"common password", "POST", "/v1/signup", `{"email":"n@example.com","password":"password1234"}`, withCT(), 400, "invalid_request"},
		{"truncated right password", "POST", "/v1/login", `{"email":"victim@example.com","password":"correct horse batter"}`, withCT(), 401, "invalid_credentials"},
		{"case-swapped password", "POST", "/v1/login", `{"email":"victim@example.com","password":"CORRECT HORSE BATTERY"}`, withCT(), 401, "invalid_credentials"},
		{"SQL-like password", "POST", "/v1/login", `{"email":"victim@example.com","password":"' OR '1'='1' --"}`, withCT(), 401, "invalid_credentials"},

		// Refresh tokens.
		{"refresh token null", "POST", "/v1/token/refresh", `{"refresh_token":null}`, withCT(), 400, "invalid_request"},
		{"refresh token empty", "POST", "/v1/token/refresh", `{"refresh_token":""}`, withCT(), 400, "invalid_request"},
		{"refresh token a number", "POST", "/v1/token/refresh", `{"refresh_token":12345}`, withCT(), 400, "invalid_request"},
		{"refresh token huge", "POST", "/v1/token/refresh", `{"refresh_token":"` + big + `"}`, withCT(), 401, "invalid_grant"},
		{"refresh token SQL", "POST", "/v1/token/refresh", `{"refresh_token":"' OR 1=1 --"}`, withCT(), 401, "invalid_grant"},
		{"access token as refresh token", "POST", "/v1/token/refresh", `{"refresh_token":"` + victim.access + `"}`, withCT(), 401, "invalid_grant"},
		{"refresh token with one char changed", "POST", "/v1/token/refresh", `{"refresh_token":"` + flip(victim.refresh) + `"}`, withCT(), 401, "invalid_grant"},

		// Bearer tokens and JWT attacks.
		{"alg none", "GET", "/v1/me", "", bearerH(tok(map[string]any{"alg": "none"}, nil, nil)), 401, "invalid_token"},
		{"alg NONE", "GET", "/v1/me", "", bearerH(tok(map[string]any{"alg": "NONE"}, nil, nil)), 401, "invalid_token"},
		{"HS256 keyed with the public key", "GET", "/v1/me", "", bearerH(tok(map[string]any{"alg": "HS256"}, nil, hs(pub))), 401, "invalid_token"},
		{"HS256 keyed with the public key PEM", "GET", "/v1/me", "", bearerH(tok(map[string]any{"alg": "HS256"}, nil, hs(pubPEM))), 401, "invalid_token"},
		{"attacker key with our kid", "GET", "/v1/me", "", bearerH(tok(nil, nil, theirs)), 401, "invalid_token"},
		{"stripped signature", "GET", "/v1/me", "", bearerH(parts[0] + "." + parts[1] + "."), 401, "invalid_token"},
		{"two segments", "GET", "/v1/me", "", bearerH(parts[0] + "." + parts[1]), 401, "invalid_token"},
		{"tampered role claim", "GET", "/v1/admin/users", "", bearerH(tampered), 401, "invalid_token"},
		{"unknown kid", "GET", "/v1/me", "", bearerH(tok(map[string]any{"kid": "kid-nobody-has"}, nil, theirs)), 401, "invalid_token"},
		{"path-like kid", "GET", "/v1/me", "", bearerH(tok(map[string]any{"kid": "../../../../dev/null"}, nil, hs(nil))), 401, "invalid_token"},
		{"SQL kid", "GET", "/v1/me", "", bearerH(tok(map[string]any{"kid": "x' UNION SELECT 'secret'--", "alg": "HS256"}, nil, hs([]byte("secret")))), 401, "invalid_token"},
		{"kid as an object", "GET", "/v1/me", "", bearerH(tok(map[string]any{"kid": map[string]any{"a": 1}}, nil, ours)), 401, "invalid_token"},
		{"typ JWT", "GET", "/v1/me", "", bearerH(tok(map[string]any{"typ": "JWT"}, nil, ours)), 401, "invalid_token"},
		{"typ missing", "GET", "/v1/me", "", bearerH(tok(map[string]any{"typ": nil}, nil, ours)), 401, "invalid_token"},
		{"crit header", "GET", "/v1/me", "", bearerH(tok(map[string]any{"crit": []string{"x-foo"}}, nil, ours)), 401, "invalid_token"},
		{"jku header", "GET", "/v1/me", "", bearerH(tok(map[string]any{"jku": "http://127.0.0.1:9/jwks.json"}, nil, theirs)), 401, "invalid_token"},
		{"expired", "GET", "/v1/me", "", bearerH(tok(nil, map[string]any{"exp": now.Unix() - 60}, ours)), 401, "invalid_token"},
		{"missing exp", "GET", "/v1/me", "", bearerH(tok(nil, map[string]any{"exp": nil}, ours)), 401, "invalid_token"},
		{"nbf in the future", "GET", "/v1/me", "", bearerH(tok(nil, map[string]any{"nbf": now.Unix() + 3600}, ours)), 401, "invalid_token"},
		{"iat in the future", "GET", "/v1/me", "", bearerH(tok(nil, map[string]any{"iat": now.Unix() + 3600}, ours)), 401, "invalid_token"},
		{"wrong issuer", "GET", "/v1/me", "", bearerH(tok(nil, map[string]any{"iss": "https://evil.example"}, ours)), 401, "invalid_token"},
		{"wrong audience", "GET", "/v1/me", "", bearerH(tok(nil, map[string]any{"aud": []string{"other"}}, ours)), 401, "invalid_token"},
		{"session that does not exist", "GET", "/v1/me", "", bearerH(tok(nil, map[string]any{"sid": "00000000-0000-4000-8000-000000000000"}, ours)), 401, "invalid_token"},
		{"other user's id with our session", "GET", "/v1/me", "", bearerH(tok(nil, map[string]any{"sub": other}, ours)), 401, "invalid_token"},
		{"refresh token as bearer", "GET", "/v1/me", "", bearerH(victim.refresh), 401, "invalid_token"},
		{"garbage bearer", "GET", "/v1/me", "", bearerH("garbage"), 401, "invalid_token"},
		{"JSON-serialized JWS", "GET", "/v1/me", "", bearerH(`{"payload":"x","signatures":[]}`), 401, "invalid_token"},
		{"five segments", "GET", "/v1/me", "", bearerH("a.b.c.d.e"), 401, "invalid_token"},
		{"token in the query string", "GET", "/v1/me?access_token=" + victim.access, "", nil, 401, "invalid_token"},
		{"20 KB Authorization header", "GET", "/v1/me", "", bearerH(strings.Repeat("a", 20<<10)), 401, "invalid_token"},
		{"Basic credentials", "GET", "/v1/me", "", []string{"Authorization", "Basic dmljdGltOnB3"}, 401, "invalid_token"},
		{"logout with a forged token", "POST", "/v1/logout", "", bearerH(tok(nil, nil, theirs)), 401, "invalid_token"},
		{"logout-all with a forged token", "POST", "/v1/logout/all", "", bearerH(tok(map[string]any{"alg": "none"}, nil, nil)), 401, "invalid_token"},

		// Protected routes with a valid token and a hostile request.
		{"delete session with SQL id", "DELETE", "/v1/sessions/'%20OR%201=1--", "", bearerH(victim.access), 404, "not_found"},
		{"delete another user's session id", "DELETE", "/v1/sessions/00000000-0000-4000-8000-000000000001", "", bearerH(victim.access), 404, "not_found"},
		{"password change with an unknown field", "POST", "/v1/password", `{"current_password":"correct horse battery","new_password":"a fine new passphrase","user_id":"` + other + `"}`, withCT(bearerH(victim.access)...), 400, "invalid_request"},
		{"password change with the wrong password", "POST", "/v1/password", `{"current_password":"guess guess guess","new_password":"a fine new passphrase"}`, withCT(bearerH(victim.access)...), 401, "invalid_credentials"},
		{"user listing as a user", "GET", "/v1/admin/users", "", bearerH(victim.access), 403, "forbidden"},
		{"admin logout as a user", "POST", "/v1/admin/users/" + other + "/logout", "", bearerH(victim.access), 403, "forbidden"},
		{"events of all as a user", "GET", "/v1/admin/events", "", bearerH(victim.access), 403, "forbidden"},
		{"SQL in limit", "GET", "/v1/me/events?limit=1;DROP%20TABLE%20users", "", bearerH(victim.access), 400, "invalid_request"},
		{"SQL in cursor", "GET", "/v1/me/events?cursor='%20OR%201=1", "", bearerH(victim.access), 400, "invalid_request"},
		{"path traversal", "GET", "/v1/../../etc/passwd", "", nil, 404, "not_found"},
		{"PUT on login", "PUT", "/v1/login", cred, withCT(), 405, "method_not_allowed"},
		{"POST on jwks", "POST", "/.well-known/jwks.json", "", nil, 405, "method_not_allowed"},
	}
	if len(cases) < 60 {
		t.Fatalf("only %d hostile cases", len(cases))
	}

	before := snapshot(t, e)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			hdr := tc.hdr
			if body != nil && !hasHeader(hdr, "Content-Type") {
				hdr = append([]string{"Content-Type", ""}, hdr...) // send none
			}
			r := e.req(t, tc.method, tc.path, body, hdr...)
			r.want(t, tc.status, tc.code)
			if strings.Contains(r.raw, "correct horse battery") || strings.Contains(r.raw, victim.access) || strings.Contains(r.raw, victim.refresh) {
				t.Fatal("the answer echoes a secret")
			}
			for _, leak := range []string{"SQLSTATE", "pgx", "panic", "goroutine", "runtime error"} {
				if strings.Contains(r.raw, leak) {
					t.Fatalf("the answer leaks %q: %s", leak, r.raw)
				}
			}
		})
	}
	if after := snapshot(t, e); after != before {
		t.Fatalf("hostile requests changed the database:\nbefore %s\nafter  %s", before, after)
	}
	// And the victim's session is untouched.
	e.req(t, "GET", "/v1/me", nil, bearer(victim.access)...).want(t, 200, "")
	e.req(t, "POST", "/v1/token/refresh", map[string]string{"refresh_token": victim.refresh}).want(t, 200, "")
}

func hasHeader(hdr []string, name string) bool {
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], name) {
			return true
		}
	}
	return false
}

// flip changes the first character of s to another base64url character.
func flip(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}
