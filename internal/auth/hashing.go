package auth

import (
	"context"
	"time"
)

// withHashSlot runs fn while holding one of the bounded hashing slots, so a
// burst of logins cannot take unbounded memory (argon2id spends m KiB each).
func (s *Service) withHashSlot(ctx context.Context, fn func() error) error {
	start := time.Now()
	select {
	case s.slots <- struct{}{}: // a free slot: no timer needed
	default:
		t := time.NewTimer(s.cfg.HashWait)
		defer t.Stop()
		select {
		case s.slots <- struct{}{}:
		case <-t.C:
			s.metrics.HashWait(time.Since(start), false)
			return ErrUnavailable
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.metrics.HashWait(time.Since(start), true)
	defer func() { <-s.slots }()
	return fn()
}

// HashSlotsInUse is the number of password hashes being computed.
func (s *Service) HashSlotsInUse() int { return len(s.slots) }

// HashSlots is how many password hashes may be computed at once, and the
// memory one takes (argon2id's m).
func (s *Service) HashSlots() (slots int, memoryBytes int64) {
	return cap(s.slots), int64(s.cfg.Argon2.MemoryKiB) << 10
}

func (s *Service) hash(ctx context.Context, pw string) (h PasswordHash, err error) {
	if s.hooks.onHash != nil {
		s.hooks.onHash(s.cfg.Argon2)
	}
	err = s.withHashSlot(ctx, func() error { h, err = HashPassword(pw, s.cfg.Argon2); return err })
	return h, err
}

func (s *Service) verify(ctx context.Context, pw string, encoded PasswordHash) (ok bool, err error) {
	if s.hooks.onHash != nil {
		p, _, _, _ := parsePHC(encoded)
		s.hooks.onHash(p)
	}
	err = s.withHashSlot(ctx, func() error { ok, err = VerifyPassword(pw, encoded); return err })
	return ok, err
}

// verifyFailure checks pw against a user's hash. A wrong password for a
// hash made with other parameters than the current ones also spends one
// hash at the current parameters, so that every failed login costs at
// least what an unknown email's does and its timing tells nothing.
func (s *Service) verifyFailure(ctx context.Context, pw string, encoded PasswordHash) (ok bool, err error) {
	ok, err = s.verify(ctx, pw, encoded)
	if err == nil && !ok && NeedsRehash(encoded, s.cfg.Argon2) {
		_, err = s.verify(ctx, pw, s.dummy)
	}
	return ok, err
}
