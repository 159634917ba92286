package auth_test

// Hostile review of d7dce07: attacks that did NOT break a claim. These
// pass on d7dce07 and stay as regression tests.

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/testdb"
)

// R8 (defect, fails). A password change racing a login's rehash: the
// change read hash H0 and verified the right current password; the login
// (which verified H0 too) replaces H0 by H0' (same password, new
// parameters) first; the change's "WHERE password_hash = H0" then matches
// nothing and the user, who typed the right current password, gets
// ErrInvalidCredentials (401).
func TestPasswordChangeRacingARehashSucceeds(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	weak, _ := auth.HashPassword(pw, legacyParams)
	if _, err := k.Store.CreateUser(ctx, auth.NewUser{Email: "rehash2@example.com", PasswordHash: weak, Now: k.Clock.Now()}); err != nil {
		t.Fatal(err)
	}
	p := wantTokenLive(t, k, login(t, k, "rehash2@example.com").AccessToken)
	if _, err := k.Pool.Exec(ctx, `UPDATE users SET password_hash = $1`, weak); err != nil {
		t.Fatal(err)
	}
	g := newGate()
	k.Service.SetHooks(auth.Hooks{BeforeRehash: g.hook})
	loginDone := make(chan error, 1)
	go func() {
		_, err := k.Service.Login(ctx, "rehash2@example.com", pw, auth.Client{})
		loginDone <- err
	}()
	<-g.reached // the login verified H0 and computed H0'
	commit := holdLock(t, k.Pool, `SELECT 1 FROM users WHERE email = 'rehash2@example.com' FOR UPDATE`)
	close(g.open)
	waitForLockWaiters(t, k.Pool, 1) // the rehash's UPDATE waits
	changed := make(chan error, 1)
	go func() { changed <- k.Service.ChangePassword(ctx, p, pw, "a brand new passphrase", auth.Client{}) }()
	waitForLockWaiters(t, k.Pool, 2) // the change (which read H0) waits behind it
	commit()
	// The change commits before the login opens its session: the login,
	// which checked the old password, opens none (the races issue, point 2).
	if err := <-loginDone; err != nil && !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatal(err)
	}
	k.Service.SetHooks(auth.Hooks{})
	if err := <-changed; err != nil {
		t.Errorf("password change with the right current password, racing a rehash: %v", err)
	}
	if _, err := k.Service.Login(ctx, "rehash2@example.com", "a brand new passphrase", auth.Client{}); err != nil {
		t.Fatalf("the new password: %v", err)
	}
}

// Claim 14 (holds): concurrent logins cannot exceed MAX_SESSIONS_PER_USER
// (they serialise on the user's row lock, and each statement after the
// lock sees the others' sessions).
func TestSessionCapHoldsUnderConcurrentLogins(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) { c.MaxSessions = 3; c.HashSlots = 16 }})
	signupLogin(t, k, "burst@example.com")
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := k.Service.Login(ctx, "burst@example.com", pw, auth.Client{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := k.Count(t, `SELECT count(*) FROM sessions WHERE ended_at IS NULL`); n != 3 {
		t.Fatalf("%d live sessions after 17 logins with a cap of 3", n)
	}
}

// Claim 2 (holds): two password changes racing: exactly one wins; the
// loser (whose current password is no longer current) gets 401; the
// winner's session is the only one left.
func TestPasswordChangeRacingPasswordChange(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) { c.HashSlots = 8 }})
	_, a := signupLogin(t, k, "twice@example.com")
	b := login(t, k, "twice@example.com")
	pa, pb := wantTokenLive(t, k, a.AccessToken), wantTokenLive(t, k, b.AccessToken)
	commit := holdLock(t, k.Pool, `SELECT 1 FROM users WHERE email = 'twice@example.com' FOR UPDATE`)
	errs := make(chan error, 2)
	go func() { errs <- k.Service.ChangePassword(ctx, pa, pw, "first brand new passphrase", auth.Client{}) }()
	go func() { errs <- k.Service.ChangePassword(ctx, pb, pw, "second brand new passphrase", auth.Client{}) }()
	waitForLockWaiters(t, k.Pool, 2)
	commit()
	e1, e2 := <-errs, <-errs
	if (e1 == nil) == (e2 == nil) {
		t.Fatalf("two racing changes: %v, %v; want exactly one to succeed", e1, e2)
	}
	if n := k.Count(t, `SELECT count(*) FROM sessions WHERE ended_at IS NULL`); n != 1 {
		t.Fatalf("%d live sessions, want the winner's only", n)
	}
}

// Claim 2 (holds): a user deleted between the password check and the
// session: the login fails and opens nothing.
func TestUserDeletedMidLogin(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	signupLogin(t, k, "gone@example.com")
	_, err := loginRacing(t, k, "gone@example.com", pw,
		func(g *gate) { k.Service.SetHooks(auth.Hooks{BeforeOpenSession: g.hook}) },
		func() {
			if _, err := k.Pool.Exec(ctx, `DELETE FROM users WHERE email = 'gone@example.com'`); err != nil {
				t.Fatal(err)
			}
		})
	if !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("login of a user deleted meanwhile: %v", err)
	}
	if n := k.Count(t, `SELECT count(*) FROM sessions`); n != 0 {
		t.Fatalf("%d sessions", n)
	}
}

// Claim 4 (holds): a right password whose window rolled over between
// reserve and release gives nothing back to the new window.
func TestReleaseNeverReachesTheNextWindow(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) {
		c.LoginLimit = auth.RateLimit{N: 2, Window: time.Minute}
	}})
	signupLogin(t, k, "roll@example.com")
	inner := false
	k.Service.SetHooks(auth.Hooks{OnHash: func(auth.Argon2Params) {
		if inner {
			return
		}
		inner = true
		// While the right password is being checked, the window ends and a
		// wrong guess opens the next one.
		k.Clock.Advance(2 * time.Minute)
		if _, err := k.Service.Login(ctx, "roll@example.com", "a wrong guess!", auth.Client{}); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Errorf("guess: %v", err)
		}
	}})
	if _, err := k.Service.Login(ctx, "roll@example.com", pw, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	k.Service.SetHooks(auth.Hooks{})
	if n := k.Count(t, `SELECT count FROM rate_limits WHERE key LIKE 'login:%'`); n != 1 {
		t.Fatalf("count %d in the new window, want 1 (the guess; the old window's release must not land here)", n)
	}
}

// Claim 5 (holds): the global row and the IP rows under concurrent load:
// no deadlock, no error, exact counts.
func TestGlobalAndIPCountersUnderLoad(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) {
		c.IPLimit = auth.RateLimit{N: 1000, Window: time.Minute}
		c.GlobalLimit = auth.RateLimit{N: 100000, Window: time.Minute}
	}})
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				ip := fmt.Sprintf("2001:db8:%x::%x%%eth0", i%4, j)
				if j%2 == 0 {
					ip = fmt.Sprintf("::ffff:192.0.2.%d", i%8)
				}
				if err := k.Service.AllowRequest(ctx, auth.Client{IP: ip}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := k.Count(t, `SELECT count FROM rate_limits WHERE key = 'global'`); n != 640 {
		t.Fatalf("global count %d, want 640", n)
	}
	if n := k.Count(t, `SELECT count(*) FROM rate_limits WHERE key <> 'global'`); n != 12 {
		t.Fatalf("%d IP buckets, want 12 (8 IPv4, 4 IPv6 /64s)", n)
	}
}

// Claim 13 (holds): a session ending within the second gets no dead token;
// one ending 1.5 s later gets expires_in = exp − iat.
func TestExpiresInAtTheSessionsEnd(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) { c.SessionMaxAge = time.Hour }})
	k.Clock.Advance(700 * time.Millisecond)
	_, p := signupLogin(t, k, "edge@example.com") // the session ends at x.7 s
	k.Clock.Advance(time.Hour - 2*time.Second)    // 2 s before its end
	p = mustRefresh(t, k, p.RefreshToken)
	c := claimsOf(t, p.AccessToken)
	if got := int(c["exp"].(float64) - c["iat"].(float64)); got != p.ExpiresIn || got < 1 {
		t.Fatalf("expires_in %d, exp − iat %d", p.ExpiresIn, got)
	}
	k.Clock.Advance(1500 * time.Millisecond) // 0.5 s before its end
	if _, err := refresh(t, k, p.RefreshToken); !errors.Is(err, auth.ErrInvalidGrant) {
		t.Fatalf("a refresh 0.5 s before the session's end: %v, want ErrInvalidGrant", err)
	}
}
