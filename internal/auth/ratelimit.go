package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
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

// Error is "too many requests".
func (e *RateLimitError) Error() string { return "too many requests" }

// Is makes every *RateLimitError match ErrTooManyRequests.
func (e *RateLimitError) Is(target error) bool { return target == ErrTooManyRequests }

// RateHit is one event to count against Key in a fixed window of Window.
type RateHit struct {
	Key    string
	Window time.Duration
}

// RateCount is a key's count in its current window, this event included.
type RateCount struct {
	N         int
	WindowEnd time.Time
}

// limitKey hashes what a counter is keyed on, so that the table holds no
// email or address in the clear.
func limitKey(kind, value string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + value))
	return kind + ":" + hex.EncodeToString(sum[:16])
}

// emailKey is the form of an address that limits are keyed on: the
// normalised address, lower-cased, or the input as typed when it is no
// address at all (so that garbage is limited too).
func emailKey(email string) string {
	if e, err := NormalizeEmail(email); err == nil {
		return strings.ToLower(e)
	}
	return strings.ToLower(strings.TrimSpace(email))
}

func loginLimitKey(email string) string { return limitKey("login", emailKey(email)) }

// ipBucket is what IP limits are keyed on: an IPv4 address, or the /64 of
// an IPv6 one (a single host is routinely given a whole /64, so keying the
// exact address would give it 2^64 buckets).
func ipBucket(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return a.String()
	}
	return p.String()
}

func (s *Service) limited(retryAt time.Time) error {
	wait := retryAt.Sub(s.now())
	if wait < time.Second {
		wait = time.Second
	}
	return &RateLimitError{RetryAfter: wait}
}

// recordLimited writes the audit event for an exceeded limit. Callers call
// it once per window, at the first refused count (N+1), so that a flood of
// refused requests is not also a flood of audit writes.
func (s *Service) recordLimited(ctx context.Context, limit string, c Client) {
	s.record(ctx, Event{Type: EventRateLimited, Client: c, Detail: map[string]any{"limit": limit}})
}

// attempt is one password check counted against a limit before it is made.
type attempt struct {
	key       string
	windowEnd time.Time
}

// reserve counts one attempt against key before any hashing, so that N
// concurrent attempts evaluate at most limit.N: the count is taken
// atomically in PostgreSQL, and past the limit the attempt is refused
// with a *RateLimitError. The caller releases the reservation when the
// attempt turns out not to be a failure (a right password, or no answer).
// A zero limit reserves nothing.
func (s *Service) reserve(ctx context.Context, limit RateLimit, name, key string, c Client) (*attempt, error) {
	if limit.N == 0 {
		return nil, nil
	}
	counts, err := s.store.HitRateLimits(ctx, []RateHit{{Key: key, Window: limit.Window}}, s.now())
	if err != nil {
		return nil, err
	}
	n := counts[0]
	if n.N > limit.N {
		if n.N == limit.N+1 {
			s.recordLimited(ctx, name, c)
		}
		return nil, s.limited(n.WindowEnd)
	}
	return &attempt{key: key, windowEnd: n.WindowEnd}, nil
}

// release gives a reservation back: the attempt was not a failure.
func (s *Service) release(ctx context.Context, a *attempt) {
	if a == nil {
		return
	}
	if err := s.store.ReleaseRateLimit(context.WithoutCancel(ctx), a.key, a.windowEnd); err != nil {
		s.log.Error("release rate limit", "err", err)
	}
}

// AllowRequest counts one request to a rate-limited endpoint (signup,
// login, refresh, password change) against the client's IP
// (IP_RATE_LIMIT, IPv6 by /64) and against every client together
// (GLOBAL_RATE_LIMIT), in one statement. Returns a *RateLimitError past
// either.
func (s *Service) AllowRequest(ctx context.Context, c Client) error {
	var hits []RateHit
	var names []string
	var limits []RateLimit
	if s.cfg.IPLimit.N > 0 {
		hits = append(hits, RateHit{Key: limitKey("ip", ipBucket(c.IP)), Window: s.cfg.IPLimit.Window})
		names, limits = append(names, "ip"), append(limits, s.cfg.IPLimit)
	}
	if s.cfg.GlobalLimit.N > 0 {
		hits = append(hits, RateHit{Key: "global", Window: s.cfg.GlobalLimit.Window})
		names, limits = append(names, "global"), append(limits, s.cfg.GlobalLimit)
	}
	if len(hits) == 0 {
		return nil
	}
	counts, err := s.store.HitRateLimits(ctx, hits, s.now())
	if err != nil {
		return err
	}
	var refused error
	for i, n := range counts {
		if n.N == limits[i].N+1 {
			s.recordLimited(ctx, names[i], c)
		}
		if n.N > limits[i].N && refused == nil {
			refused = s.limited(n.WindowEnd)
		}
	}
	return refused
}
