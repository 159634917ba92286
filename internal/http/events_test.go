package http_test

import (
	"testing"
)

func TestAuditEventsEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	meID := e.signup(t, "me@example.com")
	e.signup(t, "them@example.com")
	e.req(t, "POST", "/v1/login", map[string]string{"email": "me@example.com", "password": "not my password"}).want(t, 401, "invalid_credentials")
	me := e.login(t, "me@example.com")
	them := e.login(t, "them@example.com")

	r := e.req(t, "GET", "/v1/me/events", nil, bearer(me.access)...)
	r.want(t, 200, "")
	events := r.body["events"].([]any)
	var kinds []string
	for _, ev := range events {
		m := ev.(map[string]any)
		if m["user_id"] != meID {
			t.Fatalf("another user's event in /v1/me/events: %v", m)
		}
		for _, k := range []string{"id", "event", "created_at", "session_id", "ip", "user_agent", "request_id", "detail"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("event lacks %s: %v", k, m)
			}
		}
		kinds = append(kinds, m["event"].(string))
	}
	// Newest first: login succeeded, login failed (reason recorded), signup.
	if len(kinds) != 3 || kinds[0] != "login_succeeded" || kinds[1] != "login_failed" || kinds[2] != "signup" {
		t.Fatalf("events = %v", kinds)
	}
	if d := events[1].(map[string]any)["detail"].(map[string]any); d["reason"] != "wrong_password" {
		t.Fatalf("login_failed detail = %v", d)
	}
	if r.body["next_cursor"] != nil {
		t.Fatalf("next_cursor = %v on the only page", r.body["next_cursor"])
	}

	// Paging.
	r = e.req(t, "GET", "/v1/me/events?limit=2", nil, bearer(me.access)...)
	next, _ := r.body["next_cursor"].(string)
	if len(r.body["events"].([]any)) != 2 || next == "" {
		t.Fatalf("first page = %s", r.raw)
	}
	r = e.req(t, "GET", "/v1/me/events?limit=2&cursor="+next, nil, bearer(me.access)...)
	if got := r.body["events"].([]any); len(got) != 1 || got[0].(map[string]any)["event"] != "signup" || r.body["next_cursor"] != nil {
		t.Fatalf("second page = %s", r.raw)
	}
	for _, q := range []string{"limit=0", "limit=101", "limit=x", "cursor=!!", "cursor=MA"} {
		e.req(t, "GET", "/v1/me/events?"+q, nil, bearer(me.access)...).want(t, 400, "invalid_request")
	}
	e.req(t, "GET", "/v1/me/events", nil).want(t, 401, "invalid_token")

	e.req(t, "GET", "/v1/admin/events", nil, bearer(them.access)...).want(t, 403, "forbidden")
	admin := e.makeAdmin(t, "them@example.com")
	r = e.req(t, "GET", "/v1/admin/events", nil, bearer(admin.access)...)
	r.want(t, 200, "")
	users := map[any]bool{}
	for _, ev := range r.body["events"].([]any) {
		users[ev.(map[string]any)["user_id"]] = true
	}
	if len(users) != 2 {
		t.Fatalf("admin events cover %d users, want both", len(users))
	}
}
