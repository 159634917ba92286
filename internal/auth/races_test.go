package auth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/store"
	"github.com/acme/accounts/internal/testdb"
)

// holdLock runs sql (a SELECT ... FOR UPDATE) in a transaction of its own
// and keeps the transaction open: the rows it locked stay locked until
// the returned function commits it.
func holdLock(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) (commit func(extra ...string)) {
	t.Helper()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		t.Fatal(err)
	}
	done := false
	t.Cleanup(func() {
		if !done {
			_ = tx.Rollback(ctx)
		}
	})
	return func(extra ...string) {
		for _, q := range extra {
			if _, err := tx.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		done = true
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// waitForLockWaiters returns once n backends of pool's database wait on a
// lock: a use case started in another goroutine has reached the lock the
// test holds. It waits on that state, not on a guess of how long it takes.
func waitForLockWaiters(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d backends wait on a lock after 30 s, want %d", waiting, n)
		}
		time.Sleep(time.Millisecond) // polling the server's state
	}
}

// gate stops a goroutine at a hook until the test opens it.
type gate struct {
	reached chan struct{}
	open    chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{reached: make(chan struct{}), open: make(chan struct{})} }

// hook is installed as the hook: the first caller stops there.
func (g *gate) hook() {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.reached)
		<-g.open
	}
}

func TestRotationRacingThePurge(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		legacy bool
	}{{"format 2: the session's row is deleted", false}, {"format 1: the token's row is deleted", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) {
				c.RefreshTTL = time.Hour
				c.LegacyRefreshTokens = tc.legacy
			}})
			_, p := signupLogin(t, k, "purged@example.com")
			var sid string
			if err := k.Pool.QueryRow(ctx, `SELECT id::text FROM sessions`).Scan(&sid); err != nil {
				t.Fatal(err)
			}
			commit := holdLock(t, k.Pool, `SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE`, sid)
			var purge string
			if tc.legacy {
				// The token expires (its 90-day session does not) and the
				// purge, which needs no session lock, deletes it meanwhile.
				k.Clock.Advance(2 * time.Hour)
				purge = `DELETE FROM refresh_tokens`
			} else {
				// The session's row goes (an account deleted, or the purge)
				// while the rotation waits for it.
				purge = `DELETE FROM sessions`
			}
			type result struct {
				pair auth.TokenPair
				err  error
			}
			done := make(chan result, 1)
			go func() {
				pair, err := k.Service.Refresh(ctx, p.RefreshToken, auth.Client{})
				done <- result{pair, err}
			}()
			waitForLockWaiters(t, k.Pool, 1) // the rotation waits for the session
			if tc.legacy {
				if _, ran, err := k.Store.PurgeExclusive(ctx, k.Clock.Now(), k.Clock.Now().Add(-time.Hour), 1000); err != nil || !ran {
					t.Fatalf("purge: ran %v, %v", ran, err)
				}
				commit()
			} else {
				commit(purge)
			}
			r := <-done
			if !errors.Is(r.err, auth.ErrInvalidGrant) {
				t.Fatalf("refresh of a token whose row went while it waited: %+v, %v; want ErrInvalidGrant", r.pair, r.err)
			}
			if n := k.Count(t, liveRefreshTokens); n != 0 {
				t.Fatalf("%d live refresh tokens, want 0 (nothing came back to life)", n)
			}
		})
	}
}

func TestIssueRefusesInvalidClaims(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	const uid, sid = "7c1f7a0e-8f0e-4d53-9a57-3f4f5c0d2b11", "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"
	for _, tc := range []struct{ name, uid, sid, role string }{
		{"empty role", uid, sid, ""},
		{"unknown role", uid, sid, "root"},
		{"sub not a uuid", "alice", sid, auth.RoleUser},
		{"empty sub", "", sid, auth.RoleUser},
		{"sid not a uuid", uid, "1", auth.RoleUser},
		{"empty sid", uid, "", auth.RoleUser},
	} {
		if it, err := k.Service.Tokens().Issue(tc.uid, tc.sid, tc.role, time.Time{}); err == nil {
			t.Errorf("%s: signed %q", tc.name, it.Token)
		}
	}
	if _, err := k.Service.Tokens().Issue(uid, sid, auth.RoleUser, time.Time{}); err != nil {
		t.Fatalf("valid claims: %v", err)
	}
}

// loginRacing logs in with pw and, once the login has checked the password
// (at the hook), runs during; it returns the login's result.
func loginRacing(t *testing.T, k *testdb.Kit, email, password string, setHook func(*gate), during func()) (auth.TokenPair, error) {
	t.Helper()
	g := newGate()
	setHook(g)
	type result struct {
		pair auth.TokenPair
		err  error
	}
	done := make(chan result, 1)
	go func() {
		pair, err := k.Service.Login(ctx, email, password, auth.Client{})
		done <- result{pair, err}
	}()
	<-g.reached
	during()
	close(g.open)
	r := <-done
	k.Service.SetHooks(auth.Hooks{})
	return r.pair, r.err
}

func TestLoginRacingSessionEnds(t *testing.T) {
	t.Parallel()
	const newPW = "a brand new passphrase"
	for _, tc := range []struct {
		name string
		end  func(k *testdb.Kit, p auth.Principal) error
	}{
		{"password change", func(k *testdb.Kit, p auth.Principal) error {
			return k.Service.ChangePassword(ctx, p, pw, newPW, auth.Client{})
		}},
		{"logout all", func(k *testdb.Kit, p auth.Principal) error {
			return k.Service.LogoutAll(ctx, p, auth.Client{})
		}},
		{"admin logout", func(k *testdb.Kit, p auth.Principal) error {
			return k.Service.AdminLogoutUser(ctx, adminPrincipal(t, k), p.UserID, auth.Client{})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := testdb.NewKit(t, testdb.KitOptions{})
			_, a := signupLogin(t, k, "race@example.com")
			pa := wantTokenLive(t, k, a.AccessToken)
			pair, err := loginRacing(t, k, "race@example.com", pw,
				func(g *gate) { k.Service.SetHooks(auth.Hooks{BeforeOpenSession: g.hook}) },
				func() {
					if err := tc.end(k, pa); err != nil {
						t.Fatal(err)
					}
				})
			if err == nil {
				// Whatever it answered, no session may survive that the end
				// of every session should have ended.
				if _, rerr := refresh(t, k, pair.RefreshToken); rerr == nil {
					t.Fatal("a login that checked the password before the sessions ended holds a live session")
				}
				t.Fatalf("login racing the %s succeeded", tc.name)
			}
			if !errors.Is(err, auth.ErrInvalidCredentials) {
				t.Fatalf("login racing the %s: %v, want ErrInvalidCredentials", tc.name, err)
			}
			live := k.Count(t, `SELECT count(*) FROM sessions WHERE ended_at IS NULL AND user_id = $1`, pa.UserID)
			want := 0
			if tc.name == "password change" {
				want = 1 // the changer's own session
			}
			if live != want {
				t.Fatalf("%d live sessions after the %s, want %d", live, tc.name, want)
			}
		})
	}
}

func adminPrincipal(t *testing.T, k *testdb.Kit) auth.Principal {
	t.Helper()
	email := fmt.Sprintf("admin-%d@example.com", time.Now().UnixNano())
	if _, err := k.Service.Signup(ctx, email, pw, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Service.SetRole(ctx, email, auth.RoleAdmin, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	return wantTokenLive(t, k, login(t, k, email).AccessToken)
}

func TestRehashRacingPasswordChange(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	const newPW = "a brand new passphrase"
	weak, _ := auth.HashPassword(pw, auth.Argon2Params{MemoryKiB: 32, Time: 1, Threads: 1})
	if _, err := k.Store.CreateUser(ctx, auth.NewUser{Email: "rehash@example.com", PasswordHash: weak, Now: k.Clock.Now()}); err != nil {
		t.Fatal(err)
	}
	pa := wantTokenLive(t, k, login(t, k, "rehash@example.com").AccessToken) // rehashed once here
	// Back to the old parameters, so that the next login rehashes again.
	if _, err := k.Pool.Exec(ctx, `UPDATE users SET password_hash = $1`, weak); err != nil {
		t.Fatal(err)
	}
	_, err := loginRacing(t, k, "rehash@example.com", pw,
		func(g *gate) { k.Service.SetHooks(auth.Hooks{BeforeRehash: g.hook}) },
		func() {
			if err := k.Service.ChangePassword(ctx, pa, pw, newPW, auth.Client{}); err != nil {
				t.Fatal(err)
			}
		})
	if err == nil {
		t.Fatal("the racing login opened a session with the old password")
	}
	if _, err := k.Service.Login(ctx, "rehash@example.com", pw, auth.Client{}); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("the old password after a change answered 204: %v, want ErrInvalidCredentials", err)
	}
	if _, err := k.Service.Login(ctx, "rehash@example.com", newPW, auth.Client{}); err != nil {
		t.Fatalf("the new password: %v", err)
	}
}

func TestConcurrentGuessesEvaluateAtMostTheLimit(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) {
		c.LoginLimit = auth.RateLimit{N: 3, Window: 15 * time.Minute}
		c.HashSlots = 20
	}})
	signupLogin(t, k, "guessed@example.com")
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = k.Service.Login(ctx, "guessed@example.com", fmt.Sprintf("wrong guess %d!", i), auth.Client{})
		}()
	}
	close(start)
	wg.Wait()
	evaluated, limited := 0, 0
	for _, err := range errs {
		switch {
		case errors.Is(err, auth.ErrInvalidCredentials):
			evaluated++
		case errors.Is(err, auth.ErrTooManyRequests):
			limited++
		default:
			t.Fatalf("guess: %v", err)
		}
	}
	if evaluated != 3 || limited != n-3 {
		t.Fatalf("%d guesses evaluated, %d refused; want 3 and %d", evaluated, limited, n-3)
	}
	if got := k.Count(t, `SELECT count(*) FROM audit_events WHERE event = 'login_failed'`); got != 3 {
		t.Fatalf("%d failed logins audited, want 3", got)
	}
	// The right password within the window is refused too (the lockout).
	if _, err := k.Service.Login(ctx, "guessed@example.com", pw, auth.Client{}); !errors.Is(err, auth.ErrTooManyRequests) {
		t.Fatalf("right password during the lockout: %v", err)
	}
}

func TestRightPasswordsDoNotCountAgainstTheLimit(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) {
		c.LoginLimit = auth.RateLimit{N: 2, Window: 15 * time.Minute}
	}})
	signupLogin(t, k, "often@example.com")
	for range 5 {
		login(t, k, "often@example.com")
	}
	for range 2 {
		if _, err := k.Service.Login(ctx, "often@example.com", "wrong guess here", auth.Client{}); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("failure within the limit: %v", err)
		}
	}
	if _, err := k.Service.Login(ctx, "often@example.com", pw, auth.Client{}); !errors.Is(err, auth.ErrTooManyRequests) {
		t.Fatalf("past the limit: %v", err)
	}
}

func TestIPLimitKeysIPv6By64AndGlobalLimit(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) {
		c.IPLimit = auth.RateLimit{N: 2, Window: time.Minute}
	}})
	allow := func(ip string) error { return k.Service.AllowRequest(ctx, auth.Client{IP: ip}) }
	for _, ip := range []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"} {
		if err := allow(ip); err != nil {
			t.Fatal(err)
		}
	}
	for _, ip := range []string{"2001:db8:1:2::abcd", "2001:db8:1:2:8000::1%eth0"} {
		if err := allow(ip); !errors.Is(err, auth.ErrTooManyRequests) {
			t.Fatalf("%s, in a /64 that spent its limit: %v", ip, err)
		}
	}
	for _, ip := range []string{"2001:db8:1:3::1", "192.0.2.7", "::ffff:192.0.2.8"} {
		if err := allow(ip); err != nil {
			t.Fatalf("%s, another bucket: %v", ip, err)
		}
	}
	// An IPv4-mapped IPv6 address is the IPv4 address.
	if err := allow("192.0.2.8"); err != nil {
		t.Fatal(err)
	}
	if err := allow("::ffff:192.0.2.8"); !errors.Is(err, auth.ErrTooManyRequests) {
		t.Fatalf("::ffff:192.0.2.8 and 192.0.2.8 share a bucket: %v", err)
	}

	g := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) {
		c.IPLimit = auth.RateLimit{N: 100, Window: time.Minute}
		c.GlobalLimit = auth.RateLimit{N: 3, Window: time.Minute}
	}})
	for i := range 3 {
		if err := g.Service.AllowRequest(ctx, auth.Client{IP: fmt.Sprintf("198.51.100.%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var rl *auth.RateLimitError
	if err := g.Service.AllowRequest(ctx, auth.Client{IP: "203.0.113.1"}); !errors.As(err, &rl) || rl.RetryAfter > time.Minute {
		t.Fatalf("4th request from anyone under a global limit of 3: %v", err)
	}
	g.Clock.Advance(time.Minute)
	if err := g.Service.AllowRequest(ctx, auth.Client{IP: "203.0.113.1"}); err != nil {
		t.Fatalf("next window: %v", err)
	}
}

func TestPasswordChangeIsThrottled(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) {
		c.LoginLimit = auth.RateLimit{N: 3, Window: 15 * time.Minute}
	}})
	_, a := signupLogin(t, k, "oracle@example.com")
	p := wantTokenLive(t, k, a.AccessToken)
	// The strength of the new password is judged only after the current
	// one checked out: a wrong guess with a weak new password is a 401.
	if err := k.Service.ChangePassword(ctx, p, "wrong guess 0!", "password1234", auth.Client{}); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("wrong current, weak new: %v, want ErrInvalidCredentials", err)
	}
	for i := 1; i < 3; i++ {
		if err := k.Service.ChangePassword(ctx, p, fmt.Sprintf("wrong guess %d!", i), "a brand new passphrase", auth.Client{}); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	for i := 3; i < 15; i++ {
		if err := k.Service.ChangePassword(ctx, p, fmt.Sprintf("wrong guess %d!", i), "a brand new passphrase", auth.Client{}); !errors.Is(err, auth.ErrTooManyRequests) {
			t.Fatalf("guess %d past the limit: %v, want ErrTooManyRequests", i, err)
		}
	}
	if n := k.Count(t, `SELECT count(*) FROM audit_events WHERE event = 'password_change_failed'`); n != 3 {
		t.Fatalf("%d password_change_failed events, want 3", n)
	}
	// Apart from the login lockout: the owner can still log in.
	login(t, k, "oracle@example.com")
	// Concurrent guesses evaluate at most the limit too.
	q := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) {
		c.LoginLimit = auth.RateLimit{N: 3, Window: 15 * time.Minute}
		c.HashSlots = 20
	}})
	_, b := signupLogin(t, q, "oracle2@example.com")
	pb := wantTokenLive(t, q, b.AccessToken)
	var wg sync.WaitGroup
	var mu sync.Mutex
	evaluated := 0
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := q.Service.ChangePassword(ctx, pb, fmt.Sprintf("wrong guess %d!", i), "a brand new passphrase", auth.Client{})
			if errors.Is(err, auth.ErrInvalidCredentials) {
				mu.Lock()
				evaluated++
				mu.Unlock()
			} else if !errors.Is(err, auth.ErrTooManyRequests) {
				t.Errorf("guess %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if evaluated != 3 {
		t.Fatalf("%d concurrent wrong current passwords evaluated, want 3", evaluated)
	}
}

func TestDemotedAdminLosesAdminPowersAtOnce(t *testing.T) {
	t.Parallel()
	a, b := twoInstances(t)
	signupLogin(t, a, "boss@example.com")
	if _, err := a.Service.SetRole(ctx, "boss@example.com", auth.RoleAdmin, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	tok := login(t, a, "boss@example.com").AccessToken // role admin in the token
	for _, k := range []*testdb.Kit{a, b} {
		if _, _, err := k.Service.ListUsers(ctx, wantTokenLive(t, k, tok), 10, ""); err != nil {
			t.Fatalf("admin listing: %v", err)
		}
	}
	if _, err := a.Service.SetRole(ctx, "boss@example.com", auth.RoleUser, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	// Where the demotion was made: at once.
	if _, _, err := a.Service.ListUsers(ctx, wantTokenLive(t, a, tok), 10, ""); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("demoted admin on the instance that demoted: %v, want ErrForbidden", err)
	}
	// Elsewhere: as soon as the notification arrives, like any revocation.
	deadline := time.Now().Add(time.Second)
	for {
		_, _, err := b.Service.ListUsers(ctx, wantTokenLive(t, b, tok), 10, "")
		if errors.Is(err, auth.ErrForbidden) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("demoted admin on another instance a second later: %v", err)
		}
		time.Sleep(2 * time.Millisecond) // polling the other instance's state
	}
	if err := b.Service.AdminLogoutUser(ctx, wantTokenLive(t, b, tok), wantTokenLive(t, b, tok).UserID, auth.Client{}); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("demoted admin logging a user out: %v", err)
	}
}

func TestRevocationsOutliveTheShortestTTL(t *testing.T) {
	t.Parallel()
	url := testdb.URL(t)
	clock := testdb.NewClock()
	open := func(ttl time.Duration) *testdb.Kit {
		pool, err := store.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		return testdb.NewKit(t, testdb.KitOptions{Pool: pool, Clock: clock,
			Config: func(c *auth.Config) { c.AccessTTL = ttl }})
	}
	long, short := open(time.Hour), open(time.Minute) // a rolling deploy lowering the TTL
	signupLogin(t, long, "ttl@example.com")
	pair := login(t, long, "ttl@example.com") // lives an hour
	p := wantTokenLive(t, short, pair.AccessToken)
	if err := long.Service.EndSession(ctx, p, p.SessionID, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	refusedWithin(t, short, pair.AccessToken, time.Second)
	// Thirty minutes on (far past the short instance's own TTL), after a
	// resync that prunes what can no longer matter, the token (still
	// unexpired) must still be refused there.
	clock.Advance(30 * time.Minute)
	if err := short.Revocations.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	wantTokenDead(t, short, pair.AccessToken)

	// A token living longer than any instance remembers revocations for
	// is refused outright.
	forced := open(2 * time.Hour) // ACCESS_TOKEN_TTL_FORCE elsewhere
	signupLogin(t, forced, "forced@example.com")
	wantTokenDead(t, short, login(t, forced, "forced@example.com").AccessToken)
}

func TestSilentListenerIsDetected(t *testing.T) {
	t.Parallel()
	url := testdb.URL(t)
	fwd := testdb.NewForwarder(t, hostPort(t, url))
	pool := func() *pgxpool.Pool {
		p, err := store.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	a := testdb.NewKit(t, testdb.KitOptions{Pool: pool()})
	bPool := pool()
	bStore := store.New(bPool)
	bStore.ListenOn(fwd.Via(t, url)) // B listens through the forwarder
	b := testdb.NewKit(t, testdb.KitOptions{Pool: bPool, Store: bStore, Heartbeat: 100 * time.Millisecond})

	signupLogin(t, a, "silent@example.com")
	pair := login(t, a, "silent@example.com")
	p := wantTokenLive(t, b, pair.AccessToken)
	if b.Revocations.Synced() && b.Revocations.HeartbeatAge() < 0 {
		t.Fatal("no heartbeat age reported while synced")
	}
	fwd.Stall() // B's listener connection stays open but delivers nothing
	if err := a.Service.Logout(ctx, p, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	// Within 3.5 heartbeat intervals B stops trusting its state...
	deadline := time.Now().Add(10 * time.Second)
	for b.Revocations.Synced() {
		if time.Now().After(deadline) {
			t.Fatal("B still trusts its state 10 s after its listener went silent")
		}
		time.Sleep(5 * time.Millisecond) // polling B's state
	}
	// ...and then checks the database, which knows of the logout.
	wantTokenDead(t, b, pair.AccessToken)
	// It reconnects (through the forwarder, on a new connection) and syncs.
	deadline = time.Now().Add(10 * time.Second)
	for !b.Revocations.Synced() {
		if time.Now().After(deadline) {
			t.Fatal("B did not resync within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	wantTokenDead(t, b, pair.AccessToken)
}

func hostPort(t *testing.T, databaseURL string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
}

func TestFailedLoginsCostAHashAtTheCurrentParameters(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	old := auth.Argon2Params{MemoryKiB: 32, Time: 1, Threads: 1} // before an ARGON2_* change
	weak, _ := auth.HashPassword(pw, old)
	if _, err := k.Store.CreateUser(ctx, auth.NewUser{Email: "old@example.com", PasswordHash: weak, Now: k.Clock.Now()}); err != nil {
		t.Fatal(err)
	}
	signupLogin(t, k, "current@example.com")
	for _, email := range []string{"old@example.com", "current@example.com", "unknown@example.com"} {
		var mu sync.Mutex
		atCurrent := 0
		k.Service.SetHooks(auth.Hooks{OnHash: func(p auth.Argon2Params) {
			mu.Lock()
			defer mu.Unlock()
			if p == k.Config.Argon2 {
				atCurrent++
			}
		}})
		if _, err := k.Service.Login(ctx, email, "a wrong password", auth.Client{}); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("%s: %v", email, err)
		}
		if atCurrent < 1 {
			t.Errorf("a failed login for %s cost no hash at the current parameters", email)
		}
	}
	k.Service.SetHooks(auth.Hooks{})
}

func TestEmailsAreNFC(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	const composed, decomposed = "ren\u00e9@example.com", "rene\u0301@example.com"
	u, err := k.Service.Signup(ctx, decomposed, pw, auth.Client{})
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != composed {
		t.Fatalf("stored %q, want the NFC form %q", u.Email, composed)
	}
	if _, err := k.Service.Signup(ctx, composed, pw, auth.Client{}); !errors.Is(err, auth.ErrEmailTaken) {
		t.Fatalf("the same address precomposed: %v, want ErrEmailTaken", err)
	}
	if _, err := k.Service.Login(ctx, strings.ToUpper(decomposed[:1])+decomposed[1:], pw, auth.Client{}); err != nil {
		t.Fatalf("login with the decomposed form: %v", err)
	}
	// Limits are keyed on the normalised address: two spellings, one counter.
	l := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) {
		c.LoginLimit = auth.RateLimit{N: 1, Window: time.Minute}
	}})
	_, _ = l.Service.Login(ctx, composed, "wrong guess here", auth.Client{})
	if _, err := l.Service.Login(ctx, decomposed, "wrong guess here", auth.Client{}); !errors.Is(err, auth.ErrTooManyRequests) {
		t.Fatalf("the other spelling after the limit: %v, want ErrTooManyRequests", err)
	}
}

// failingKeyStore fails SigningKeys while fail is set.
type failingKeyStore struct {
	auth.KeyStore
	mu   sync.Mutex
	fail bool
}

func (f *failingKeyStore) SigningKeys(ctx context.Context, alg string, after time.Time) ([]auth.StoredKey, error) {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return nil, errors.New("database unavailable")
	}
	return f.KeyStore.SigningKeys(ctx, alg, after)
}

func TestKeyReloadCannotBeStarved(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	fs := &failingKeyStore{KeyStore: k.Store}
	ring, err := auth.NewKeyRing(ctx, auth.KeyConfig{Alg: auth.AlgEdDSA, Retention: time.Hour}, fs, k.Clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	verifier := auth.NewTokens(ring, testdb.Issuer, testdb.Audience, 15*time.Minute, 0, k.Clock.Now)
	junk := func(c context.Context) {
		_, _ = verifier.Verify(c, testdb.CraftJWT(t, testdb.Header("junk-kid", nil), testdb.Claims(
			"7c1f7a0e-8f0e-4d53-9a57-3f4f5c0d2b11", "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed", k.Clock.Now(), nil), nil))
	}
	// Another instance rotates a key in.
	if _, err := k.Keys.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := login(t, k, signupEmail(t, k)).AccessToken
	// A junk kid arrives on a request whose client has already gone: the
	// reload it triggers must not die with that request.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	k.Clock.Advance(time.Second)
	junk(cancelled)
	if _, err := verifier.Verify(ctx, fresh); err != nil {
		t.Fatalf("a token of the new key after a reload triggered by a cancelled request: %v", err)
	}

	// A reload that fails does not spend the second: it is retried soon.
	if _, err := k.Keys.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	newer := login(t, k, signupEmail(t, k)).AccessToken
	k.Clock.Advance(time.Second)
	fs.mu.Lock()
	fs.fail = true
	fs.mu.Unlock()
	junk(ctx) // the reload fails
	fs.mu.Lock()
	fs.fail = false
	fs.mu.Unlock()
	k.Clock.Advance(200 * time.Millisecond) // well within the second
	if _, err := verifier.Verify(ctx, newer); err != nil {
		t.Fatalf("a token of a newly rotated key 200 ms after a failed reload: %v", err)
	}
}

func signupEmail(t *testing.T, k *testdb.Kit) string {
	t.Helper()
	email := fmt.Sprintf("u%d@example.com", time.Now().UnixNano())
	if _, err := k.Service.Signup(ctx, email, pw, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	return email
}

func TestExpiresInIsTheTokensOwnLifetime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ttl  time.Duration
		want int
	}{{15 * time.Minute, 900}, {time.Second, 1}} {
		t.Run(tc.ttl.String(), func(t *testing.T) {
			t.Parallel()
			k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) { c.AccessTTL = tc.ttl }})
			signupEmailFixed := "exp@example.com"
			if _, err := k.Service.Signup(ctx, signupEmailFixed, pw, auth.Client{}); err != nil {
				t.Fatal(err)
			}
			// 0.6 s into a second: a lifetime computed from the clock would
			// round to one second less than the claims say.
			k.Clock.Advance(600 * time.Millisecond)
			for _, pair := range []auth.TokenPair{login(t, k, signupEmailFixed)} {
				p2 := mustRefresh(t, k, pair.RefreshToken)
				for _, p := range []auth.TokenPair{pair, p2} {
					c := claimsOf(t, p.AccessToken)
					if got := int(c["exp"].(float64) - c["iat"].(float64)); p.ExpiresIn != got || p.ExpiresIn != tc.want {
						t.Fatalf("expires_in %d, exp − iat %d, want %d", p.ExpiresIn, got, tc.want)
					}
				}
			}
		})
	}
}

func TestMaxSessionsPerUser(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) { c.MaxSessions = 3 }})
	_, first := signupLogin(t, k, "many@example.com")
	var pairs []auth.TokenPair
	for range 2 {
		k.Clock.Advance(time.Second)
		pairs = append(pairs, login(t, k, "many@example.com"))
	}
	// The first session is used again: it becomes the most recent.
	k.Clock.Advance(time.Second)
	first = mustRefresh(t, k, first.RefreshToken)
	k.Clock.Advance(time.Second)
	fourth := login(t, k, "many@example.com")
	if n := k.Count(t, `SELECT count(*) FROM sessions WHERE ended_at IS NULL`); n != 3 {
		t.Fatalf("%d live sessions with a cap of 3", n)
	}
	// The least recently used one (the second login) ended, tokens and all.
	wantTokenDead(t, k, pairs[0].AccessToken)
	_, err := refresh(t, k, pairs[0].RefreshToken)
	wantGrant(t, err)
	for _, p := range []auth.TokenPair{first, pairs[1], fourth} {
		wantTokenLive(t, k, p.AccessToken)
	}
}

func TestFunctionsPinTheirSearchPath(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	rows, err := k.Pool.Query(ctx, `SELECT p.proname, coalesce(array_to_string(p.proconfig, ','), '')
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = current_schema() AND p.prokind = 'f'`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var name, cfg string
		if err := rows.Scan(&name, &cfg); err != nil {
			t.Fatal(err)
		}
		n++
		if !strings.Contains(cfg, "search_path=pg_catalog, public, pg_temp") {
			t.Errorf("function %s has config %q, want a pinned search_path", name, cfg)
		}
	}
	if n == 0 {
		t.Fatal("no functions found")
	}
}

// claimsOf decodes a JWT's claims without checking anything.
func claimsOf(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}
