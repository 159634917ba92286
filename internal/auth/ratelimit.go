package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"
)

// ErrTooManyRequests is a rate limit hit; the error is a *RateLimitError.
var ErrTooManyRequests = errors.New("too many requests")

// RateLimit allows N events per Window; N == 0 disables it.
type RateLimit struct {
	N      int
	Window time.Duration
}

// RateLimitError says when to try again.
type RateLimitError struct {
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string        { return "too many requests" }
func (e *RateLimitError) Is(target error) bool { return target == ErrTooManyRequests }

// limitKey hashes what a counter is keyed on, so that the table holds no
// email or address in the clear.
func limitKey(kind, value string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + value))
	return kind + ":" + hex.EncodeToString(sum[:16])
}

func loginLimitKey(email string) string {
	return limitKey("login", strings.ToLower(strings.TrimSpace(email)))
}

func (s *Service) limited(retryAt time.Time) error {
	wait := retryAt.Sub(s.now())
	if wait < time.Second {
		wait = time.Second
	}
	return &RateLimitError{RetryAfter: wait}
}

// recordLimited writes the audit event once per window, when a limit is
// first reached, so that a flood of refused requests is not also a flood
// of audit writes.
func (s *Service) recordLimited(ctx context.Context, limit string, c Client) {
	s.record(ctx, Event{Type: EventRateLimited, Client: c, Detail: map[string]any{"limit": limit}})
}

// checkLoginLimit refuses a login for an email that has had LoginLimit.N
// failures in the current window, before any hashing. It counts failures
// for every email, existing or not, so a 429 reveals nothing about accounts.
// A correct password is refused too while the window lasts: otherwise the
// limit would not stop guessing. That makes a temporary, window-long
// lockout possible for anyone who knows an email; it ends on its own and
// other emails are unaffected (see README, "Rate limits").
func (s *Service) checkLoginLimit(ctx context.Context, key string, c Client) error {
	if s.cfg.LoginLimit.N == 0 {
		return nil
	}
	n, end, err := s.store.PeekRateLimit(ctx, key, s.now())
	if err != nil {
		return err
	}
	if n >= s.cfg.LoginLimit.N {
		return s.limited(end)
	}
	return nil
}

// loginFailed records a failed login and counts it against the email.
func (s *Service) loginFailed(ctx context.Context, key string, e Event) {
	s.record(ctx, e)
	if s.cfg.LoginLimit.N == 0 {
		return
	}
	n, _, err := s.store.HitRateLimit(context.WithoutCancel(ctx), key, s.cfg.LoginLimit.Window, s.now())
	if err != nil {
		s.log.Error("count failed login", "err", err)
		return
	}
	if n == s.cfg.LoginLimit.N {
		s.recordLimited(ctx, "login", e.Client)
	}
}

// AllowIP counts one request to signup, login or refresh against the
// client's IP. Returns a *RateLimitError past IPLimit.
func (s *Service) AllowIP(ctx context.Context, c Client) error {
	if s.cfg.IPLimit.N == 0 {
		return nil
	}
	key := limitKey("ip", c.IP)
	n, end, err := s.store.HitRateLimit(ctx, key, s.cfg.IPLimit.Window, s.now())
	if err != nil {
		return err
	}
	if n == s.cfg.IPLimit.N+1 {
		s.recordLimited(ctx, "ip", c)
	}
	if n > s.cfg.IPLimit.N {
		return s.limited(end)
	}
	return nil
}
