package auth_test

// Found by a hostile review (caches).

import (
	"context"
	"testing"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/testdb"
)

// TestEndedSessionsLeaveTheSessionMaps: ce64ac4 found that a cache
// holding every entry ever seen until its cap is a leak (the soak's RSS
// rose by ~2.5 MiB a minute) and sweeps the verified-token cache. The two
// session maps (session -> user, session -> client; cap 200,000 each, no
// expiry, no sweep) have the same shape: every login adds an entry to
// both, and nothing ever removes one, not even when the session ends,
// after which the entry can never be used again (the revocation state
// answers first, and no token outlives its session). So both maps grow
// with every login until they hold 200,000 entries each (at the soak's 2 %
// logins of 300 requests/s, within about 9 hours): tens of MiB that a
// service with a few hundred live sessions never needs, held for good.
func TestEndedSessionsLeaveTheSessionMaps(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	ctx := context.Background()
	if _, err := k.Service.Signup(ctx, "maps@example.com", "correct horse battery", auth.Client{}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var last auth.TokenPair
	for range n {
		p, err := k.Service.Login(ctx, "maps@example.com", "correct horse battery", auth.Client{})
		if err != nil {
			t.Fatal(err)
		}
		last = p
	}
	if users, clients := k.Service.CachedSessions(); users != n || clients != n {
		t.Fatalf("after %d logins the maps hold %d and %d sessions, want %d", n, users, clients, n)
	}
	p, err := k.Service.Authenticate(ctx, last.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Service.LogoutAll(ctx, p, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	// Every session is over; what Run does every minute has run too.
	k.Service.Tokens().SweepCache()
	if users, clients := k.Service.CachedSessions(); users != 0 || clients != 0 {
		t.Errorf("every session ended, yet the session maps still hold %d and %d of them (and keep every session ever opened until 200,000 each)", users, clients)
	}
}
