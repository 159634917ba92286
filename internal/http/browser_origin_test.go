package http_test

// Hostile review, round 3 (cookie mode's cross-origin check): fails on the
// code it was written against.

import "testing"

// TestListedOriginIsCaseInsensitive: CORS_ALLOWED_ORIGINS accepts
// an origin with capitals (config.go checks only that it parses as
// scheme://host), and the CORS layer (go-chi/cors) compares origins
// case-insensitively, so the listed page's preflight passes. But
// browserGuard hands the string as written to CrossOriginProtection,
// whose trusted-origin look-up is an exact map key, while browsers always
// send the serialized origin, lowercase (RFC 6454 §6.1). Every cookie-mode
// request from the listed page is then 403: the contract says it passes
// "when its Origin ... is listed in CORS_ALLOWED_ORIGINS".
func TestListedOriginIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{cors: []string{"https://App.Example.test"}})
	pre := e.req(t, "OPTIONS", "/v1/browser/login", nil, "Origin", app, "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "content-type,x-requested-with")
	if pre.header.Get("Access-Control-Allow-Origin") != app {
		t.Fatalf("preflight: %d %v", pre.status, pre.header)
	}
	e.signup(t, "case@example.com")
	r := e.req(t, "POST", "/v1/browser/login", map[string]string{"email": "case@example.com", "password": pw},
		with(xhr, []string{"Origin", app, "Sec-Fetch-Site", "same-site"})...)
	if r.status != 200 {
		t.Fatalf("cookie-mode login from the listed page %s (listed as https://App.Example.test): %d %s", app, r.status, r.raw)
	}
}
