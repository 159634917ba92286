package auth_test

// Hostile review of d7dce07: deterministic reproductions. Each test asserts
// the behaviour the README claims and fails on d7dce07.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/testdb"
)

var legacyParams = auth.Argon2Params{MemoryKiB: 32, Time: 1, Threads: 1} // before an ARGON2_* change

// R1. A wrong password against a hash made with older parameters is
// evaluated, then verifyFailure spends a second hash at the current
// parameters. If that second hash cannot get a slot (503 under load) or
// the client hangs up while it waits, Login sees a non-credentials error
// and RELEASES the reservation: the guess was evaluated but never counted
// (and never audited). A right password never takes the second hash, so
// 200 vs 503 is the answer the attacker reads.
func TestLegacyHashGuessesCountAgainstTheLoginLimit(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"503 at the second hash", "client gone at the second hash"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) {
				c.LoginLimit = auth.RateLimit{N: 3, Window: 15 * time.Minute}
				c.HashSlots = 1
				if mode == "503 at the second hash" {
					c.HashWait = time.Millisecond
				} else {
					c.HashWait = time.Hour
				}
			}})
			weak, _ := auth.HashPassword(pw, legacyParams)
			if _, err := k.Store.CreateUser(ctx, auth.NewUser{Email: "legacy@example.com", PasswordHash: weak, Now: k.Clock.Now()}); err != nil {
				t.Fatal(err)
			}
			evaluated := 0
			var release func()
			var cancel context.CancelFunc
			k.Service.SetHooks(auth.Hooks{OnHash: func(p auth.Argon2Params) {
				if p == legacyParams {
					evaluated++ // the guess is being checked against the real hash
					return
				}
				// The extra hash at the current parameters: the slots are
				// busy (other logins), or the client hangs up meanwhile.
				release = k.Service.FillHashSlots()
				if cancel != nil {
					cancel()
				}
			}})
			const guesses = 12
			for i := range guesses {
				c, cf := context.WithCancel(ctx)
				if mode != "503 at the second hash" {
					cancel = cf
				}
				_, err := k.Service.Login(c, "legacy@example.com", fmt.Sprintf("wrong guess %d!", i), auth.Client{})
				cf()
				if release != nil {
					release()
					release = nil
				}
				if errors.Is(err, auth.ErrTooManyRequests) {
					break
				}
				if errors.Is(err, auth.ErrInvalidCredentials) {
					continue
				}
				if i == 0 {
					t.Logf("each guess answered %v (503 over HTTP, or nobody listening)", err)
				}
			}
			k.Service.SetHooks(auth.Hooks{})
			counted := k.Count(t, `SELECT coalesce(sum(count), 0)::int FROM rate_limits`)
			audited := k.Count(t, `SELECT count(*) FROM audit_events WHERE event = 'login_failed'`)
			if evaluated > 3 {
				t.Errorf("%d wrong passwords evaluated against the real hash with LOGIN_RATE_LIMIT=3 (counted %d, audited %d)",
					evaluated, counted, audited)
			}
		})
	}
}

// R1b. The same hole on POST /v1/password (re-authentication limit).
func TestLegacyHashGuessesCountAgainstTheReauthLimit(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) {
		c.LoginLimit = auth.RateLimit{N: 3, Window: 15 * time.Minute}
		c.HashSlots = 1
		c.HashWait = time.Millisecond
	}})
	weak, _ := auth.HashPassword(pw, legacyParams)
	if _, err := k.Store.CreateUser(ctx, auth.NewUser{Email: "stolen@example.com", PasswordHash: weak, Now: k.Clock.Now()}); err != nil {
		t.Fatal(err)
	}
	p := wantTokenLive(t, k, login(t, k, "stolen@example.com").AccessToken)                  // the thief's token
	if _, err := k.Pool.Exec(ctx, `UPDATE users SET password_hash = $1`, weak); err != nil { // still a legacy hash
		t.Fatal(err)
	}
	evaluated := 0
	var release func()
	k.Service.SetHooks(auth.Hooks{OnHash: func(pa auth.Argon2Params) {
		if pa == legacyParams {
			evaluated++
			return
		}
		release = k.Service.FillHashSlots()
	}})
	for i := range 12 {
		err := k.Service.ChangePassword(ctx, p, fmt.Sprintf("wrong guess %d!", i), "a brand new passphrase", auth.Client{})
		if release != nil {
			release()
			release = nil
		}
		if errors.Is(err, auth.ErrTooManyRequests) {
			break
		}
	}
	k.Service.SetHooks(auth.Hooks{})
	if evaluated > 3 {
		t.Errorf("%d wrong current passwords evaluated with a re-authentication limit of 3", evaluated)
	}
}

// R2. "a failed one against such a hash spends one more hash at the
// current parameters, so that after an ARGON2_* change a wrong password
// still costs what an unknown email does": it costs strictly more (the
// legacy hash plus the current one), so timing tells accounts that exist
// (and have not logged in since the change) from unknown emails.
func TestFailedLoginsCostTheSameWhateverTheAccount(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	weak, _ := auth.HashPassword(pw, legacyParams)
	if _, err := k.Store.CreateUser(ctx, auth.NewUser{Email: "dormant@example.com", PasswordHash: weak, Now: k.Clock.Now()}); err != nil {
		t.Fatal(err)
	}
	signupLogin(t, k, "current@example.com")
	cost := func(email string) []auth.Argon2Params {
		var hashes []auth.Argon2Params
		k.Service.SetHooks(auth.Hooks{OnHash: func(p auth.Argon2Params) { hashes = append(hashes, p) }})
		defer k.Service.SetHooks(auth.Hooks{})
		if _, err := k.Service.Login(ctx, email, "a wrong password", auth.Client{}); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("%s: %v", email, err)
		}
		return hashes
	}
	// The service learns of the parameter sets in use at start and every
	// minute; this account appeared after it started.
	if err := k.Service.LoadGenerations(ctx); err != nil {
		t.Fatal(err)
	}
	sorted := func(ps []auth.Argon2Params) string {
		s := make([]string, len(ps))
		for i, p := range ps {
			s[i] = fmt.Sprint(p)
		}
		slices.Sort(s)
		return strings.Join(s, " ")
	}
	current := cost("current@example.com")
	unknown, dormant := cost("nobody@example.com"), cost("dormant@example.com")
	if sorted(unknown) != sorted(dormant) || sorted(unknown) != sorted(current) || len(unknown) != 2 {
		t.Errorf("hashes spent: unknown email %v, wrong password on a legacy hash %v, on a current one %v: timing tells them apart", unknown, dormant, current)
	}
}

// R3a. MAX_SESSIONS_PER_USER: the login picks the sessions to end by
// last_used_at against its own "now", taken before it waited for the
// user's row lock. A session refreshed meanwhile (the rotation needs no
// user lock) is newer than the login's own session, so with a cap of 1 the
// login ends ITSELF and answers 200 with tokens of a dead session.
func TestSessionCapNeverEndsTheNewSession(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) { c.MaxSessions = 1 }})
	_, phone := signupLogin(t, k, "single@example.com")
	commit := holdLock(t, k.Pool, `SELECT 1 FROM users WHERE email = 'single@example.com' FOR UPDATE`)
	type result struct {
		pair auth.TokenPair
		err  error
	}
	done := make(chan result, 1)
	go func() {
		pair, err := k.Service.Login(ctx, "single@example.com", pw, auth.Client{UserAgent: "laptop"})
		done <- result{pair, err}
	}()
	waitForLockWaiters(t, k.Pool, 1) // the login (its now taken) waits for the user's row
	k.Clock.Advance(time.Second)
	phone = mustRefresh(t, k, phone.RefreshToken) // the phone refreshes meanwhile
	commit()
	r := <-done
	if r.err != nil {
		t.Fatalf("login: %v", r.err)
	}
	if _, err := k.Service.Authenticate(ctx, r.pair.AccessToken); err != nil {
		t.Errorf("the login answered 200 but its own access token is refused: %v", err)
	}
	if _, err := refresh(t, k, r.pair.RefreshToken); err != nil {
		t.Errorf("the login answered 200 but its own refresh token is refused: %v", err)
	}
	if n := k.Count(t, `SELECT count(*) FROM audit_events WHERE event = 'session_deleted' AND session_id = (
		SELECT session_id FROM audit_events WHERE event = 'login_succeeded' ORDER BY id DESC LIMIT 1)`); n != 0 {
		t.Errorf("the login's own session was ended as least recently used")
	}
}

// R3b. The eviction is decided on the statement's snapshot, not on the
// rows it locks: a session that is being refreshed when the login's UPDATE
// reaches it (it waits for the rotation's lock) is ended although, once
// the lock is granted, it is the most recently used one.
func TestSessionCapDecidesOnCurrentRows(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) { c.MaxSessions = 2 }})
	_, oldest := signupLogin(t, k, "two@example.com")
	k.Clock.Advance(time.Second)
	middle := login(t, k, "two@example.com")
	var oldestID string
	if err := k.Pool.QueryRow(ctx, `SELECT id::text FROM sessions ORDER BY last_used_at LIMIT 1`).Scan(&oldestID); err != nil {
		t.Fatal(err)
	}
	k.Clock.Advance(time.Second)
	// The device of the oldest session refreshes; its rotation holds the
	// session's row (held here from a second connection so that the login
	// arrives while it does).
	commit := holdLock(t, k.Pool, `SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE`, oldestID)
	refreshed := make(chan error, 1)
	var fresh auth.TokenPair
	go func() {
		var err error
		fresh, err = refresh(t, k, oldest.RefreshToken)
		refreshed <- err
	}()
	waitForLockWaiters(t, k.Pool, 1)
	loggedIn := make(chan error, 1)
	go func() {
		_, err := k.Service.Login(ctx, "two@example.com", pw, auth.Client{})
		loggedIn <- err
	}()
	waitForLockWaiters(t, k.Pool, 2) // the login's eviction UPDATE queues behind the rotation
	commit()
	if err := <-refreshed; err != nil {
		t.Fatal(err)
	}
	if err := <-loggedIn; err != nil {
		t.Fatal(err)
	}
	// Now: "oldest" was used last (just refreshed), "middle" is the least
	// recently used one and should be the one ended.
	if _, err := k.Service.Authenticate(ctx, fresh.AccessToken); err != nil {
		t.Errorf("the session refreshed a moment ago was ended as least recently used: %v", err)
	}
	if _, err := k.Service.Authenticate(ctx, middle.AccessToken); err == nil {
		t.Errorf("the least recently used session survived")
	}
}

// R5. Lock-order inversion between the purge (one transaction: expired
// refresh tokens first, then sessions over for a week) and every "end all
// sessions" statement (sessions first, then their tokens), on a session
// that reached SESSION_MAX_AGE over a week ago without being ended. The
// user's logout-all (or password change, or admin logout) dies with a
// deadlock (40P01) and ends nothing.
func TestPurgeAndLogoutAllDoNotDeadlock(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) {
		c.SessionMaxAge, c.RefreshTTL = time.Hour, time.Hour
	}})
	signupLogin(t, k, "old@example.com") // this session will reach its max age, never ended
	k.Clock.Advance(8 * 24 * time.Hour)
	p := wantTokenLive(t, k, login(t, k, "old@example.com").AccessToken) // a new device, today
	now := k.Clock.Now()
	// An ended rate-limit window: held here so that the purge stops after
	// deleting the expired refresh tokens and before deleting the sessions.
	if _, err := k.Pool.Exec(ctx, `INSERT INTO rate_limits VALUES ('review', $1, $1, 1)`, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	commit := holdLock(t, k.Pool, `SELECT 1 FROM rate_limits WHERE key = 'review' FOR UPDATE`)
	purged := make(chan error, 1)
	go func() {
		_, _, err := k.Store.PurgeExclusive(ctx, now, now.Add(-90*24*time.Hour), 1000)
		purged <- err
	}()
	waitForLockWaiters(t, k.Pool, 1)
	loggedOut := make(chan error, 1)
	go func() { loggedOut <- k.Service.LogoutAll(ctx, p, auth.Client{}) }()
	// logout-all holds the old session and waits for its token (on d7dce07),
	// or, once fixed, does not need either.
	var lerr error
	lerrSet := false
	for deadline := time.Now().Add(30 * time.Second); ; {
		var waiting int
		if err := k.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting >= 2 {
			break
		}
		select {
		case lerr = <-loggedOut:
			lerrSet = true
		default:
		}
		if lerrSet {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("logout-all neither finished nor waited")
		}
		time.Sleep(time.Millisecond) // polling the server's state
	}
	commit()
	perr := <-purged
	if !lerrSet {
		lerr = <-loggedOut
	}
	if perr != nil || lerr != nil {
		t.Errorf("purge: %v; logout-all: %v", perr, lerr)
	}
	if lerr != nil {
		if n := k.Count(t, `SELECT count(*) FROM sessions WHERE ended_at IS NULL AND expires_at > $1`, now); n != 0 {
			t.Errorf("after the failed logout-all %d live sessions remain", n)
		}
	}
}

// R4. The revocation listener is declared silent when the snapshot it
// loads takes longer than ~2.5 heartbeat intervals: lastBeat is set before
// the load and no heartbeat is sent during it, so the first check after
// the load fails and the listener is torn down, reconnects, reloads the
// same slow snapshot, and so on: the instance never stays synced (and
// reloads a full snapshot every few seconds). The same happens at every
// periodic resync once the state has grown that large.
type slowSnapshots struct {
	delay func(call int) time.Duration // a slow database
	calls atomic.Int32
	mu    sync.Mutex
	on    func(auth.Revocation)
	// listens counts connections; beats counts heartbeats delivered.
	listens, beats atomic.Int32
}

func (s *slowSnapshots) RevocationSnapshot(ctx context.Context, now time.Time, window time.Duration) (auth.Snapshot, error) {
	d := s.delay(int(s.calls.Add(1)))
	select { // the query runs for d
	case <-time.After(d):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return nil, nil
}

func (s *slowSnapshots) ListenRevocations(ctx context.Context, ready func(), on func(auth.Revocation)) error {
	s.listens.Add(1)
	s.mu.Lock()
	s.on = on
	s.mu.Unlock()
	ready()
	<-ctx.Done() // a healthy connection: it never fails by itself
	s.mu.Lock()
	s.on = nil
	s.mu.Unlock()
	return ctx.Err()
}

func (s *slowSnapshots) SendHeartbeat(ctx context.Context, nonce string) error {
	s.mu.Lock()
	on := s.on
	s.mu.Unlock()
	if on != nil { // delivered at once: the listener works
		on(auth.Revocation{Kind: auth.Heartbeat, ID: nonce})
		s.beats.Add(1)
	}
	return nil
}

func TestSlowSnapshotDoesNotSilenceAHealthyListener(t *testing.T) {
	t.Parallel()
	// Long enough that a heartbeat goroutine descheduled on a loaded
	// machine (between marking a heartbeat sent and sending it) does not
	// look like a silent listener: silence is 3 intervals.
	const hb = 200 * time.Millisecond
	for _, tc := range []struct {
		name   string
		resync time.Duration
		delay  func(int) time.Duration
	}{
		{"first snapshot slow", time.Hour, func(int) time.Duration { return 5 * hb }},
		{"periodic resync slow", 10 * hb, func(call int) time.Duration {
			if call == 1 {
				return 0
			}
			return 5 * hb
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := &slowSnapshots{delay: tc.delay}
			r := auth.NewRevocations(src, time.Hour, testdb.NewKit(t, testdb.KitOptions{NoRevocations: true}).Log, time.Now)
			c, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { r.Run(c, tc.resync, hb); close(done) }()
			defer func() { cancel(); <-done }()
			// Wait for one of: the listener was torn down (a reconnect), or
			// 30 heartbeats came back on the first connection (healthy).
			deadline := time.Now().Add(60 * time.Second)
			for src.listens.Load() < 2 && src.beats.Load() < 30 {
				if time.Now().After(deadline) {
					t.Fatal("neither a reconnect nor 30 heartbeats in 60 s")
				}
				time.Sleep(time.Millisecond) // polling the fake's counters
			}
			if n := src.listens.Load(); n > 1 {
				t.Errorf("a listener that delivered every heartbeat was torn down (%d connections, %d heartbeats back, %d snapshots)",
					n, src.beats.Load(), src.calls.Load())
			}
		})
	}
}
