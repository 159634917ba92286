package auth_test

import (
	"errors"
	"testing"
	"time"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/store"
	"github.com/acme/accounts/internal/testdb"
)

// twoInstances returns two services on one database, each with its own
// pool and revocation listener, sharing a clock.
func twoInstances(t *testing.T) (*testdb.Kit, *testdb.Kit) {
	t.Helper()
	url, clock := testdb.URL(t), testdb.NewClock()
	return openInstance(t, url, clock), openInstance(t, url, clock)
}

// openInstance is one more instance on the database at url: its own pool
// and revocation listener, on the shared clock (each Kit's own clock would
// be the second it was made in, and two made in different seconds refuse
// each other's tokens: iat in the future, no leeway).
func openInstance(t *testing.T, url string, clock *testdb.Clock) *testdb.Kit {
	t.Helper()
	pool, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return testdb.NewKit(t, testdb.KitOptions{Pool: pool, Clock: clock})
}

// within polls until b refuses token, and fails past one second: the
// promise is that a revocation anywhere holds everywhere within 1 s.
func refusedWithin(t *testing.T, k *testdb.Kit, token string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		_, err := k.Service.Authenticate(ctx, token)
		if errors.Is(err, auth.ErrInvalidToken) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("token still accepted %s after its revocation (err %v)", d, err)
		}
		time.Sleep(2 * time.Millisecond) // polling the other instance's state
	}
}

func TestRevocationReachesOtherInstancesWithinOneSecond(t *testing.T) {
	t.Parallel()
	a, b := twoInstances(t)
	signupLogin(t, a, "spread@example.com")

	admin := adminPrincipal(t, a)
	cases := []struct {
		name   string
		revoke func(p auth.Principal) error
	}{
		{"logout", func(p auth.Principal) error { return a.Service.Logout(ctx, p, auth.Client{}) }},
		{"logout all", func(p auth.Principal) error { return a.Service.LogoutAll(ctx, p, auth.Client{}) }},
		{"session deleted", func(p auth.Principal) error { return a.Service.EndSession(ctx, p, p.SessionID, auth.Client{}) }},
		{"admin logout", func(p auth.Principal) error {
			return a.Service.AdminLogoutUser(ctx, admin, p.UserID, auth.Client{})
		}},
	}
	for _, tc := range cases {
		a.Clock.Advance(time.Second) // a new second, past any earlier logout-all cut-off
		pair := login(t, a, "spread@example.com")
		p := wantTokenLive(t, b, pair.AccessToken) // B has verified and cached it
		if err := tc.revoke(p); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		wantTokenDead(t, a, pair.AccessToken) // at once where it was made
		refusedWithin(t, b, pair.AccessToken, time.Second)
	}

	// Reuse detection on A ends the session for B too.
	a.Clock.Advance(time.Second)
	p1 := login(t, a, "spread@example.com")
	p2 := mustRefresh(t, a, p1.RefreshToken)
	wantTokenLive(t, b, p2.AccessToken)
	a.Clock.Advance(time.Minute)
	_, err := refresh(t, a, p1.RefreshToken)
	wantGrant(t, err)
	refusedWithin(t, b, p2.AccessToken, time.Second)

	// A password change on A ends B's view of the other sessions.
	a.Clock.Advance(time.Second)
	keep, other := login(t, a, "spread@example.com"), login(t, a, "spread@example.com")
	wantTokenLive(t, b, other.AccessToken)
	pk := wantTokenLive(t, a, keep.AccessToken)
	if err := a.Service.ChangePassword(ctx, pk, pw, "a different long passphrase", auth.Client{}); err != nil {
		t.Fatal(err)
	}
	refusedWithin(t, b, other.AccessToken, time.Second)
	wantTokenLive(t, b, keep.AccessToken)
}

func TestListenerDownFailsClosed(t *testing.T) {
	t.Parallel()
	a, b := twoInstances(t)
	signupLogin(t, a, "down@example.com")
	pair := login(t, a, "down@example.com")
	p := wantTokenLive(t, b, pair.AccessToken)

	b.StopListening()
	if b.Revocations.Synced() {
		t.Fatal("state still trusted with no listener")
	}
	if err := a.Service.Logout(ctx, p, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	// No notification can reach B now: it must ask the database.
	wantTokenDead(t, b, pair.AccessToken)

	// Back up: the snapshot taken after listening holds the revocation.
	b.StartListening(t)
	wantTokenDead(t, b, pair.AccessToken)
}

func TestListenerReconnects(t *testing.T) {
	t.Parallel()
	a, b := twoInstances(t)
	signupLogin(t, a, "again@example.com")
	var db string
	if err := b.Pool.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	listeners := func() []int {
		rows, _ := b.Pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = 'accounts-listener' AND datname = $1`, db)
		var pids []int
		for rows.Next() {
			var pid int
			_ = rows.Scan(&pid)
			pids = append(pids, pid)
		}
		return pids
	}
	before := listeners()
	if len(before) != 2 {
		t.Fatalf("%d listeners, want one per instance", len(before))
	}
	if _, err := b.Pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'accounts-listener' AND datname = $1`, db); err != nil {
		t.Fatal(err)
	}
	// Both instances reconnect (with back-off) and sync again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		now := listeners()
		fresh := len(now) == 2
		for _, pid := range now {
			fresh = fresh && pid != before[0] && pid != before[1]
		}
		if fresh && a.Revocations.Synced() && b.Revocations.Synced() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listeners did not come back: %v (were %v)", now, before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	pair := login(t, a, "again@example.com")
	p := wantTokenLive(t, b, pair.AccessToken)
	if err := a.Service.Logout(ctx, p, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	refusedWithin(t, b, pair.AccessToken, time.Second)
}

func TestRoleChangeReachesCachedUsers(t *testing.T) {
	t.Parallel()
	a, b := twoInstances(t)
	signupLogin(t, a, "role@example.com")
	pair := login(t, a, "role@example.com")
	me := func() (auth.User, error) { // one request: authenticate, then /v1/me
		return b.Service.Me(ctx, wantTokenLive(t, b, pair.AccessToken))
	}
	for range 2 { // the first fills B's caches, the second is served from them
		if u, err := me(); err != nil || u.Role != auth.RoleUser {
			t.Fatalf("me = %+v, %v", u, err)
		}
	}
	if _, err := a.Service.SetRole(ctx, "role@example.com", auth.RoleAdmin, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		u, err := me()
		if err == nil && u.Role == auth.RoleAdmin {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B still shows %+v (%v) a second after the role change", u, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestAccessTokenNeverOutlivesItsSession(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) {
		c.SessionMaxAge = time.Hour
	}})
	_, p := signupLogin(t, k, "cap2@example.com")
	if p.ExpiresIn != 900 {
		t.Fatalf("expires_in = %d, want 900", p.ExpiresIn)
	}
	k.Clock.Advance(55 * time.Minute)
	p = mustRefresh(t, k, p.RefreshToken)
	if p.ExpiresIn != 300 {
		t.Fatalf("expires_in = %d five minutes before the session's end, want 300", p.ExpiresIn)
	}
	k.Clock.Advance(5*time.Minute + time.Second)
	wantTokenDead(t, k, p.AccessToken)
}

func TestForeignSessionRefusedWithoutTheDatabaseSayingSo(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	u, p := signupLogin(t, k, "own@example.com")
	other, _ := signupLogin(t, k, "notown@example.com")
	pp := wantTokenLive(t, k, p.AccessToken)
	// Signed with our own key, naming another user with our session (a
	// leaked signing key could do this): refused, from memory.
	forgedIssued, err := k.Service.Tokens().Issue(other.ID, pp.SessionID, auth.RoleUser, time.Time{})
	forged := forgedIssued.Token
	if err != nil {
		t.Fatal(err)
	}
	wantTokenDead(t, k, forged)
	// And a session id that never existed is refused by the database check.
	ghostIssued, _ := k.Service.Tokens().Issue(u.ID, "00000000-0000-4000-8000-00000000abcd", auth.RoleUser, time.Time{})
	ghost := ghostIssued.Token
	wantTokenDead(t, k, ghost)
}
