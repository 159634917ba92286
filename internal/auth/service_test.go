package auth_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/testdb"
)

const pw = "correct horse battery"

var ctx = context.Background()

func signupLogin(t *testing.T, k *testdb.Kit, email string) (auth.User, auth.TokenPair) {
	t.Helper()
	u, err := k.Service.Signup(ctx, email, pw, auth.Client{IP: "192.0.2.1"})
	if err != nil {
		t.Fatalf("signup: %v", err)
	}
	pair, err := k.Service.Login(ctx, email, pw, auth.Client{IP: "192.0.2.1", UserAgent: "test"})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return u, pair
}

func login(t *testing.T, k *testdb.Kit, email string) auth.TokenPair {
	t.Helper()
	p, err := k.Service.Login(ctx, email, pw, auth.Client{})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return p
}

func refresh(t *testing.T, k *testdb.Kit, rt string) (auth.TokenPair, error) {
	t.Helper()
	return k.Service.Refresh(ctx, rt, auth.Client{IP: "192.0.2.2", UserAgent: "refresher"})
}

func mustRefresh(t *testing.T, k *testdb.Kit, rt string) auth.TokenPair {
	t.Helper()
	p, err := refresh(t, k, rt)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	return p
}

func wantGrant(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, auth.ErrInvalidGrant) {
		t.Fatalf("err = %v, want ErrInvalidGrant", err)
	}
}

func wantTokenDead(t *testing.T, k *testdb.Kit, at string) {
	t.Helper()
	if _, err := k.Service.Authenticate(ctx, at); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("Authenticate = %v, want ErrInvalidToken", err)
	}
}

func wantTokenLive(t *testing.T, k *testdb.Kit, at string) auth.Principal {
	t.Helper()
	p, err := k.Service.Authenticate(ctx, at)
	if err != nil {
		t.Fatalf("Authenticate = %v, want success", err)
	}
	return p
}

func TestRotationRules(t *testing.T) {
	t.Parallel()

	t.Run("each refresh rotates", func(t *testing.T) {
		t.Parallel()
		k := testdb.NewKit(t, testdb.KitOptions{})
		_, p1 := signupLogin(t, k, "rot@example.com")
		p2 := mustRefresh(t, k, p1.RefreshToken)
		p3 := mustRefresh(t, k, p2.RefreshToken)
		if p2.RefreshToken == p1.RefreshToken || p3.RefreshToken == p2.RefreshToken || p3.AccessToken == p2.AccessToken {
			t.Fatal("refresh did not rotate")
		}
		wantTokenLive(t, k, p3.AccessToken)
		if n := k.Count(t, liveRefreshTokens); n != 1 {
			t.Fatalf("%d live refresh tokens, want 1", n)
		}
	})

	t.Run("grace window returns the same successor", func(t *testing.T) {
		t.Parallel()
		k := testdb.NewKit(t, testdb.KitOptions{})
		_, p1 := signupLogin(t, k, "grace@example.com")
		p2 := mustRefresh(t, k, p1.RefreshToken)
		k.Clock.Advance(9 * time.Second)
		again := mustRefresh(t, k, p1.RefreshToken)
		if again.RefreshToken != p2.RefreshToken {
			t.Fatal("retry within the grace window got another successor")
		}
		wantTokenLive(t, k, again.AccessToken)
		// The successor still works and rotates on.
		mustRefresh(t, k, p2.RefreshToken)
	})

	t.Run("just-spent token after the grace window ends the session", func(t *testing.T) {
		t.Parallel()
		k := testdb.NewKit(t, testdb.KitOptions{})
		_, p1 := signupLogin(t, k, "late@example.com")
		p2 := mustRefresh(t, k, p1.RefreshToken)
		k.Clock.Advance(10 * time.Second)
		_, err := refresh(t, k, p1.RefreshToken)
		wantGrant(t, err)
		_, err = refresh(t, k, p2.RefreshToken)
		wantGrant(t, err)
		wantTokenDead(t, k, p2.AccessToken)
		wantTokenDead(t, k, p1.AccessToken)
		if n := k.Count(t, `SELECT count(*) FROM audit_events WHERE event = 'refresh_reuse_detected'`); n != 1 {
			t.Fatalf("%d reuse events, want 1", n)
		}
	})

	t.Run("an older spent token is reuse even within the window", func(t *testing.T) {
		t.Parallel()
		k := testdb.NewKit(t, testdb.KitOptions{})
		_, p1 := signupLogin(t, k, "older@example.com")
		p2 := mustRefresh(t, k, p1.RefreshToken)
		p3 := mustRefresh(t, k, p2.RefreshToken)
		_, err := refresh(t, k, p1.RefreshToken)
		wantGrant(t, err)
		_, err = refresh(t, k, p3.RefreshToken)
		wantGrant(t, err)
	})

	t.Run("grace 0 makes every second presentation a reuse", func(t *testing.T) {
		t.Parallel()
		k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) { c.ReuseGrace = 0 }})
		_, p1 := signupLogin(t, k, "nograce@example.com")
		p2 := mustRefresh(t, k, p1.RefreshToken)
		_, err := refresh(t, k, p1.RefreshToken)
		wantGrant(t, err)
		_, err = refresh(t, k, p2.RefreshToken)
		wantGrant(t, err)
		wantTokenDead(t, k, p2.AccessToken)
	})

	t.Run("an ended session never reopens", func(t *testing.T) {
		t.Parallel()
		k := testdb.NewKit(t, testdb.KitOptions{})
		_, p1 := signupLogin(t, k, "ended@example.com")
		p2 := mustRefresh(t, k, p1.RefreshToken)
		pr := wantTokenLive(t, k, p2.AccessToken)
		if err := k.Service.Logout(ctx, pr, auth.Client{}); err != nil {
			t.Fatal(err)
		}
		_, err := refresh(t, k, p1.RefreshToken) // within the grace window
		wantGrant(t, err)
		_, err = refresh(t, k, p2.RefreshToken)
		wantGrant(t, err)
	})

	t.Run("idle expiry", func(t *testing.T) {
		t.Parallel()
		k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) { c.RefreshTTL = time.Hour }})
		_, p1 := signupLogin(t, k, "idle@example.com")
		k.Clock.Advance(50 * time.Minute)
		p2 := mustRefresh(t, k, p1.RefreshToken) // sliding: a fresh hour from here
		k.Clock.Advance(50 * time.Minute)
		p3 := mustRefresh(t, k, p2.RefreshToken)
		k.Clock.Advance(time.Hour)
		_, err := refresh(t, k, p3.RefreshToken)
		wantGrant(t, err)
	})

	t.Run("absolute session cap", func(t *testing.T) {
		t.Parallel()
		k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) {
			c.RefreshTTL = time.Hour
			c.SessionMaxAge = 2 * time.Hour
		}})
		_, p := signupLogin(t, k, "cap@example.com")
		for range 2 {
			k.Clock.Advance(50 * time.Minute)
			p = mustRefresh(t, k, p.RefreshToken)
		}
		// 100 minutes in; the token's own hour would reach 160, the cap is 120.
		k.Clock.Advance(21 * time.Minute)
		_, err := refresh(t, k, p.RefreshToken)
		wantGrant(t, err)
	})

	t.Run("malformed and unknown tokens", func(t *testing.T) {
		t.Parallel()
		k := testdb.NewKit(t, testdb.KitOptions{})
		_, p := signupLogin(t, k, "unknown@example.com")
		for _, rt := range []string{"x", strings.Repeat("A", 43), p.AccessToken, "' OR 1=1 --"} {
			_, err := refresh(t, k, rt)
			wantGrant(t, err)
		}
		var ve *auth.ValidationError
		if _, err := refresh(t, k, ""); !errors.As(err, &ve) || ve.Fields["refresh_token"] == "" {
			t.Fatalf("empty token: %v, want a validation error on refresh_token", err)
		}
		mustRefresh(t, k, p.RefreshToken) // the session is untouched
	})
}

func TestDatabaseHoldsNoUsableRefreshToken(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	_, p1 := signupLogin(t, k, "hash@example.com")
	p2 := mustRefresh(t, k, p1.RefreshToken)
	raw, _ := base64.RawURLEncoding.DecodeString(p2.RefreshToken)
	var dump string
	err := k.Pool.QueryRow(ctx, `SELECT string_agg(row_to_json(t)::text, ' ') FROM
		(SELECT encode(hash, 'hex') h, encode(coalesce(successor_hash, ''), 'hex') s,
		        encode(coalesce(successor_sealed, ''), 'hex') x FROM refresh_tokens
		 UNION ALL
		 SELECT encode(rt_hash, 'hex'), encode(coalesce(rt_prev_hash, ''), 'hex') || encode(coalesce(rt_spent, ''), 'hex'),
		        encode(coalesce(rt_prev_sealed, ''), 'hex') FROM sessions) t`).Scan(&dump)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{p1.RefreshToken, p2.RefreshToken, hexOf(raw)} {
		if strings.Contains(dump, secret) {
			t.Fatalf("the database holds a refresh token in the clear")
		}
	}
}

// liveRefreshTokens counts the live refresh tokens of live sessions, in
// either format: a format-2 session's live token is its rt_hash, a
// format-1 session's is its unspent row.
const liveRefreshTokens = `SELECT
  (SELECT count(*) FROM sessions WHERE rt_hash IS NOT NULL AND ended_at IS NULL)
+ (SELECT count(*) FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id
    WHERE rt.spent_at IS NULL AND s.ended_at IS NULL)`

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// TestConcurrentRefresh fires 50 refreshes with one token at once.
func TestConcurrentRefresh(t *testing.T) {
	t.Parallel()
	for _, grace := range []time.Duration{10 * time.Second, 0} {
		t.Run("grace "+grace.String(), func(t *testing.T) {
			t.Parallel()
			k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) { c.ReuseGrace = grace }})
			_, p := signupLogin(t, k, "race@example.com")
			const n = 50
			var wg sync.WaitGroup
			start := make(chan struct{})
			results := make([]auth.TokenPair, n)
			errs := make([]error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					results[i], errs[i] = k.Service.Refresh(ctx, p.RefreshToken, auth.Client{})
				}()
			}
			close(start)
			wg.Wait()

			successors := map[string]int{}
			failed := 0
			for i := range n {
				switch {
				case errs[i] == nil:
					successors[results[i].RefreshToken]++
				case errors.Is(errs[i], auth.ErrInvalidGrant):
					failed++
				default:
					t.Fatalf("refresh %d: %v", i, errs[i])
				}
			}
			live := k.Count(t, liveRefreshTokens)
			ended := k.Count(t, `SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL`)
			if live > 1 {
				t.Fatalf("%d live refresh tokens in one session", live)
			}
			if grace > 0 {
				if len(successors) != 1 || failed != 0 || live != 1 || ended != 0 {
					t.Fatalf("successors %v, %d failed, %d live, %d ended; want all %d to get one successor", successors, failed, live, ended, n)
				}
			} else {
				total := 0
				for _, c := range successors {
					total += c
				}
				if total != 1 || failed != n-1 || live != 0 || ended != 1 {
					t.Fatalf("%d succeeded, %d failed, %d live, %d ended; want one winner and the session ended", total, failed, live, ended)
				}
			}
		})
	}
}

func TestLogoutAndRevocation(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name string
		db   bool
	}{{"in memory", false}, {"database fallback", true}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			testLogoutAndRevocation(t, testdb.NewKit(t, testdb.KitOptions{NoRevocations: mode.db}))
		})
	}
}

func testLogoutAndRevocation(t *testing.T, k *testdb.Kit) {
	_, a := signupLogin(t, k, "rev@example.com")
	b := login(t, k, "rev@example.com")
	pa := wantTokenLive(t, k, a.AccessToken)

	// Logout ends only its own session.
	if err := k.Service.Logout(ctx, pa, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	wantTokenDead(t, k, a.AccessToken)
	_, err := refresh(t, k, a.RefreshToken)
	wantGrant(t, err)
	pb := wantTokenLive(t, k, b.AccessToken)
	if n := k.Count(t, `SELECT count(*) FROM revoked_tokens WHERE jti = $1`, pa.JTI); n != 1 {
		t.Fatal("logout did not record the jti")
	}

	// Logout-all ends every session, and a login afterwards works.
	c := login(t, k, "rev@example.com")
	if err := k.Service.LogoutAll(ctx, pb, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	wantTokenDead(t, k, b.AccessToken)
	wantTokenDead(t, k, c.AccessToken)
	_, err = refresh(t, k, c.RefreshToken)
	wantGrant(t, err)
	k.Clock.Advance(time.Second)
	d := login(t, k, "rev@example.com")
	wantTokenLive(t, k, d.AccessToken)
}

func TestPasswordChange(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	_, a := signupLogin(t, k, "pwc@example.com")
	b := login(t, k, "pwc@example.com")
	pa := wantTokenLive(t, k, a.AccessToken)

	if err := k.Service.ChangePassword(ctx, pa, "wrong password!", "a brand new passphrase", auth.Client{}); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("wrong current password: %v", err)
	}
	var ve *auth.ValidationError
	if err := k.Service.ChangePassword(ctx, pa, pw, "short", auth.Client{}); !errors.As(err, &ve) || ve.Fields["new_password"] == "" {
		t.Fatalf("short new password: %v", err)
	}
	if err := k.Service.ChangePassword(ctx, pa, pw, "a brand new passphrase", auth.Client{}); err != nil {
		t.Fatal(err)
	}
	wantTokenLive(t, k, a.AccessToken)
	mustRefresh(t, k, a.RefreshToken)
	wantTokenDead(t, k, b.AccessToken)
	_, err := refresh(t, k, b.RefreshToken)
	wantGrant(t, err)
	if _, err := k.Service.Login(ctx, "pwc@example.com", pw, auth.Client{}); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("old password: %v", err)
	}
	if _, err := k.Service.Login(ctx, "PWC@example.com", "a brand new passphrase", auth.Client{}); err != nil {
		t.Fatalf("new password: %v", err)
	}
}

func TestLoginRehashesWeakerHashes(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	weak, _ := auth.HashPassword(pw, auth.Argon2Params{MemoryKiB: 32, Time: 1, Threads: 1})
	if _, err := k.Store.CreateUser(ctx, auth.NewUser{Email: "weak@example.com", PasswordHash: weak, Now: k.Clock.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Service.Login(ctx, "weak@example.com", pw, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	u, _ := k.Store.UserByEmail(ctx, "weak@example.com")
	if auth.NeedsRehash(u.PasswordHash, k.Config.Argon2) {
		t.Fatalf("hash %q was not upgraded", u.PasswordHash)
	}
}

func TestLoginFailures(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	signupLogin(t, k, "fail@example.com")
	for _, tc := range []struct{ email, pw string }{
		{"fail@example.com", "wrong password here"},
		{"nobody@example.com", pw},
		{"not an email", pw},
	} {
		if _, err := k.Service.Login(ctx, tc.email, tc.pw, auth.Client{}); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Errorf("login(%q): %v, want ErrInvalidCredentials", tc.email, err)
		}
	}
	if n := k.Count(t, `SELECT count(*) FROM audit_events WHERE event = 'login_failed'`); n != 3 {
		t.Fatalf("%d login_failed events, want 3", n)
	}
}

func TestSignupRules(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	u, err := k.Service.Signup(ctx, "  New@Example.com ", pw, auth.Client{})
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "New@Example.com" || u.Role != auth.RoleUser {
		t.Fatalf("user = %+v", u)
	}
	if _, err := k.Service.Signup(ctx, "new@example.COM", pw, auth.Client{}); !errors.Is(err, auth.ErrEmailTaken) {
		t.Fatalf("case-variant signup: %v, want ErrEmailTaken", err)
	}
	var hash string
	if err := k.Pool.QueryRow(ctx, `SELECT password_hash FROM users`).Scan(&hash); err != nil || !strings.HasPrefix(hash, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("stored hash %q, %v", hash, err)
	}
}

func TestTwoInstancesShareKeysAndRevocations(t *testing.T) {
	t.Parallel()
	url, clock := testdb.URL(t), testdb.NewClock()
	// Both start at once on an empty key table: one key, not two.
	var a, b *testdb.Kit
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a = openInstance(t, url, clock) }()
	go func() { defer wg.Done(); b = openInstance(t, url, clock) }()
	wg.Wait()
	if n := a.Count(t, `SELECT count(*) FROM signing_keys`); n != 1 {
		t.Fatalf("%d signing keys after a simultaneous start, want 1", n)
	}

	_, pa := signupLogin(t, a, "two@example.com")
	p := wantTokenLive(t, b, pa.AccessToken) // B verifies A's token
	if err := b.Service.Logout(ctx, p, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	// A learns of B's revocation through LISTEN/NOTIFY, asynchronously: A
	// made the session and so knows it, and until the notification is
	// applied A's in-memory state still says live. The promise is 1 s.
	refusedWithin(t, a, pa.AccessToken, time.Second) // A sees B's revocation

	// A rotates; B honours the new key at once (unknown kid → reload).
	if _, err := a.Keys.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	pa2 := login(t, a, "two@example.com")
	wantTokenLive(t, b, pa2.AccessToken)
	if n := len(b.Keys.JWKS()); n != 2 {
		t.Fatalf("B publishes %d keys after the rotation, want old and new", n)
	}
	// B still signs with its old key until it reloads; A must accept that too.
	pb := login(t, b, "two@example.com")
	wantTokenLive(t, a, pb.AccessToken)
}

func TestKeyRotationRetention(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	_, p := signupLogin(t, k, "keys@example.com")
	if _, err := k.Keys.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	wantTokenLive(t, k, p.AccessToken) // the old key still verifies
	if n := len(k.Keys.JWKS()); n != 2 {
		t.Fatalf("%d keys in the JWKS, want 2", n)
	}
	// Once every token of the old key has expired, it leaves the JWKS.
	k.Clock.Advance(auth.RevocationWindow(k.Config.AccessTTL, 0) + auth.KeyReloadInterval + time.Second)
	if err := k.Keys.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(k.Keys.JWKS()); n != 1 {
		t.Fatalf("%d keys in the JWKS after retention, want 1", n)
	}
}

func TestAdminUsers(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	for _, e := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		if _, err := k.Service.Signup(ctx, e, pw, auth.Client{}); err != nil {
			t.Fatal(err)
		}
		k.Clock.Advance(time.Millisecond)
	}
	admin := adminPrincipal(t, k)
	if _, _, err := k.Service.ListUsers(ctx, wantTokenLive(t, k, login(t, k, "a@example.com").AccessToken), 10, ""); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("user listing users: %v", err)
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		users, next, err := k.Service.ListUsers(ctx, admin, 2, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			got = append(got, u.Email)
		}
		if next == "" {
			if pages != 1 {
				t.Fatalf("%d pages, want 2 (3 users and the admin)", pages+1)
			}
			break
		}
		cursor = next
	}
	if strings.Join(got[:3], ",") != "a@example.com,b@example.com,c@example.com" || len(got) != 4 {
		t.Fatalf("listing = %v", got)
	}
	for _, c := range []string{"garbage", "!!", base64.RawURLEncoding.EncodeToString([]byte("1,not-a-uuid"))} {
		var ve *auth.ValidationError
		if _, _, err := k.Service.ListUsers(ctx, admin, 2, c); !errors.As(err, &ve) || ve.Fields["cursor"] == "" {
			t.Errorf("cursor %q: %v, want a validation error", c, err)
		}
	}
}
