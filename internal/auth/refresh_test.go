package auth_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/store"
	"github.com/acme/accounts/internal/testdb"
)

func TestReuseDetectionCoversEightGenerations(t *testing.T) {
	t.Parallel()
	// chain returns a session's tokens, oldest first: the login's and ten
	// rotations after it (tokens[10] is live).
	chain := func(t *testing.T, k *testdb.Kit, email string) []string {
		t.Helper()
		_, p := signupLogin(t, k, email)
		tokens := []string{p.RefreshToken}
		for range 10 {
			p = mustRefresh(t, k, p.RefreshToken)
			tokens = append(tokens, p.RefreshToken)
			k.Clock.Advance(time.Minute) // past the grace window each time
		}
		return tokens
	}
	for gen := 1; gen <= 8; gen++ { // tokens[10-gen]: spent gen rotations ago
		t.Run(fmt.Sprintf("spent %d generations ago", gen), func(t *testing.T) {
			t.Parallel()
			k := testdb.NewKit(t, testdb.KitOptions{})
			tokens := chain(t, k, "gen@example.com")
			_, err := refresh(t, k, tokens[10-gen])
			wantGrant(t, err)
			_, err = refresh(t, k, tokens[10])
			wantGrant(t, err) // the session ended: its live token is dead too
			if n := k.Count(t, `SELECT count(*) FROM audit_events WHERE event = 'refresh_reuse_detected'`); n != 1 {
				t.Fatalf("%d reuse events, want 1", n)
			}
		})
	}
	t.Run("older tokens are unknown, the session is left alone", func(t *testing.T) {
		t.Parallel()
		k := testdb.NewKit(t, testdb.KitOptions{})
		tokens := chain(t, k, "old@example.com")
		for _, old := range tokens[:2] { // 10 and 9 generations ago
			_, err := refresh(t, k, old)
			wantGrant(t, err)
		}
		mustRefresh(t, k, tokens[10])
		if n := k.Count(t, `SELECT count(*) FROM audit_events WHERE event = 'refresh_reuse_detected'`); n != 0 {
			t.Fatalf("%d reuse events, want 0", n)
		}
	})
	t.Run("a session holds one row however often it refreshes", func(t *testing.T) {
		t.Parallel()
		k := testdb.NewKit(t, testdb.KitOptions{})
		chain(t, k, "row@example.com")
		if n := k.Count(t, `SELECT count(*) FROM sessions`) + k.Count(t, `SELECT count(*) FROM refresh_tokens`); n != 1 {
			t.Fatalf("%d rows of refresh state after ten refreshes, want 1", n)
		}
	})
}

// foreignToken is a format-2 token naming session sid with a secret that
// is not its own.
func foreignToken(t *testing.T, sid string) string {
	t.Helper()
	id := uuid.MustParse(sid)
	raw := append(id[:], make([]byte, 32)...)
	if _, err := rand.Read(raw[16:]); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

func TestTokensThatCannotBeOursCostNoWrite(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	_, p := signupLogin(t, k, "nowrite@example.com")
	_, other := signupLogin(t, k, "other@example.com")
	var sid string
	if err := k.Pool.QueryRow(ctx, `SELECT s.id::text FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE u.email = 'nowrite@example.com'`).Scan(&sid); err != nil {
		t.Fatal(err)
	}
	// The session's row is locked elsewhere: a refresh that tried to lock
	// (or write) it would wait; one that only reads answers at once.
	commit := holdLock(t, k.Pool, `SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE`, sid)
	id := uuid.MustParse(sid)
	swapped := base64.RawURLEncoding.EncodeToString(append(id[:], mustDecode(t, other.RefreshToken)[16:]...))
	for name, tok := range map[string]string{
		"a random secret for this session":               foreignToken(t, sid),
		"another session's live secret, naming this one": swapped,
		"a session that does not exist":                  foreignToken(t, uuid.NewString()),
	} {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := k.Service.Refresh(c, tok, auth.Client{})
		cancel()
		if !errors.Is(err, auth.ErrInvalidGrant) {
			t.Fatalf("%s: %v, want ErrInvalidGrant without waiting for the row", name, err)
		}
	}
	commit()
	mustRefresh(t, k, p.RefreshToken) // the session is untouched
	mustRefresh(t, k, other.RefreshToken)
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLegacyTokensMoveToTheSessionRow(t *testing.T) {
	t.Parallel()
	url, clock := testdb.URL(t), testdb.NewClock()
	legacy := openInstanceWith(t, url, clock, func(c *auth.Config) { c.LegacyRefreshTokens = true })
	current := openInstanceWith(t, url, clock, nil)
	_, p1 := signupLogin(t, legacy, "legacy@example.com")
	if len(p1.RefreshToken) != 43 {
		t.Fatalf("REFRESH_TOKEN_FORMAT=1 issued %q", p1.RefreshToken)
	}
	p2 := mustRefresh(t, legacy, p1.RefreshToken) // still format 1
	if len(p2.RefreshToken) != 43 || legacy.Count(t, `SELECT count(*) FROM sessions WHERE rt_hash IS NOT NULL`) != 0 {
		t.Fatal("a format-1 instance moved a session to format 2")
	}
	// The first refresh by a current instance moves the session.
	p3 := mustRefresh(t, current, p2.RefreshToken)
	if len(p3.RefreshToken) != 64 {
		t.Fatalf("converted successor %q, want format 2", p3.RefreshToken)
	}
	// A retry of the format-1 token within the grace window gets that very
	// successor, from either instance.
	for _, k := range []*testdb.Kit{current, legacy} {
		if again := mustRefresh(t, k, p2.RefreshToken); again.RefreshToken != p3.RefreshToken {
			t.Fatalf("grace retry of the converted token got %q, want %q", again.RefreshToken, p3.RefreshToken)
		}
	}
	// Both instances rotate format 2 from now on.
	p4 := mustRefresh(t, legacy, p3.RefreshToken)
	p5 := mustRefresh(t, current, p4.RefreshToken)
	if len(p4.RefreshToken) != 64 || len(p5.RefreshToken) != 64 {
		t.Fatal("a converted session fell back to format 1")
	}
	wantTokenLive(t, legacy, p5.AccessToken)
	// An older format-1 token outside the window is reuse: the session ends.
	clock.Advance(time.Minute)
	_, err := refresh(t, current, p1.RefreshToken)
	wantGrant(t, err)
	_, err = refresh(t, current, p5.RefreshToken)
	wantGrant(t, err)
	wantTokenDead(t, current, p5.AccessToken)
}

// openInstanceWith is openInstance with its own rules.
func openInstanceWith(t *testing.T, url string, clock *testdb.Clock, config func(*auth.Config)) *testdb.Kit {
	t.Helper()
	pool, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return testdb.NewKit(t, testdb.KitOptions{Pool: pool, Clock: clock, Config: config})
}
