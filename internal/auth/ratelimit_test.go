package auth_test

import (
	"errors"
	"testing"
	"time"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/testdb"
)

func TestLoginRateLimit(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) {
		c.LoginLimit = auth.RateLimit{N: 3, Window: 15 * time.Minute}
	}})
	signupLogin(t, k, "victim@example.com")
	signupLogin(t, k, "bystander@example.com")
	attacker := auth.Client{IP: "203.0.113.9"}
	for range 3 {
		if _, err := k.Service.Login(ctx, "Victim@example.com", "wrong guess here", attacker); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("failure within the limit: %v", err)
		}
	}
	var rl *auth.RateLimitError
	_, err := k.Service.Login(ctx, "victim@example.com", "another wrong guess", attacker)
	if !errors.As(err, &rl) || rl.RetryAfter <= 0 || rl.RetryAfter > 15*time.Minute {
		t.Fatalf("4th failure: %v, want a RateLimitError within the window", err)
	}
	// Locked for the window even with the right password and from elsewhere.
	if _, err := k.Service.Login(ctx, "victim@example.com", pw, auth.Client{IP: "198.51.100.1"}); !errors.Is(err, auth.ErrTooManyRequests) {
		t.Fatalf("right password during the lockout: %v", err)
	}
	// Other accounts are untouched.
	if _, err := k.Service.Login(ctx, "bystander@example.com", pw, attacker); err != nil {
		t.Fatalf("another account: %v", err)
	}
	// Unknown emails are counted alike, so a 429 tells nothing about accounts.
	for range 3 {
		_, _ = k.Service.Login(ctx, "ghost@example.com", "wrong guess here", attacker)
	}
	if _, err := k.Service.Login(ctx, "ghost@example.com", "wrong guess here", attacker); !errors.Is(err, auth.ErrTooManyRequests) {
		t.Fatalf("unknown email past the limit: %v", err)
	}
	if n := k.Count(t, `SELECT count(*) FROM audit_events WHERE event = 'rate_limited'`); n != 2 {
		t.Fatalf("%d rate_limited events, want one per limit reached", n)
	}
	if n := k.Count(t, `SELECT count(*) FROM rate_limits WHERE key LIKE '%victim%' OR key LIKE '%example%'`); n != 0 {
		t.Fatal("rate_limits holds an email in the clear")
	}
	// The lockout ends by itself.
	k.Clock.Advance(15 * time.Minute)
	if _, err := k.Service.Login(ctx, "victim@example.com", pw, auth.Client{}); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestIPRateLimit(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{Config: func(c *auth.Config) {
		c.IPLimit = auth.RateLimit{N: 2, Window: time.Minute}
	}})
	a, b := auth.Client{IP: "192.0.2.10"}, auth.Client{IP: "192.0.2.11"}
	for range 2 {
		if err := k.Service.AllowRequest(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.Service.AllowRequest(ctx, a); !errors.Is(err, auth.ErrTooManyRequests) {
		t.Fatalf("3rd request: %v", err)
	}
	if err := k.Service.AllowRequest(ctx, b); err != nil {
		t.Fatalf("another IP: %v", err)
	}
	k.Clock.Advance(time.Minute)
	if err := k.Service.AllowRequest(ctx, a); err != nil {
		t.Fatalf("next window: %v", err)
	}
}
