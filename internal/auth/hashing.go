package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
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

// generation is one set of argon2id parameters that stored hashes use,
// with the hash of a random password under them (which no password matches).
type generation struct {
	params Argon2Params
	dummy  PasswordHash
}

// maxGenerations bounds the parameter sets a failure is padded with.
const maxGenerations = 8

// generations are the parameter sets in use: the current ones first, then
// each other set that stored hashes use (accounts that have not logged in
// since an ARGON2_* change).
func (s *Service) generations() []generation { return *s.gens.Load() }

// loadGenerations asks the store which parameter sets stored hashes use,
// and makes a dummy hash for each new one.
func (s *Service) loadGenerations(ctx context.Context) error {
	found, err := s.store.PasswordParams(ctx)
	if err != nil {
		return err
	}
	old := s.generations()
	gens := []generation{old[0]}
	for _, f := range found {
		p, ok := parsePHCParams(f)
		if !ok || p == s.cfg.Argon2 || len(gens) == maxGenerations {
			continue
		}
		g := generation{params: p}
		for _, o := range old {
			if o.params == p {
				g.dummy = o.dummy
			}
		}
		if g.dummy == "" {
			if g.dummy, err = dummyHash(p); err != nil {
				return err
			}
		}
		gens = append(gens, g)
	}
	s.gens.Store(&gens)
	return nil
}

// dummyHash hashes a random password under p.
func dummyHash(p Argon2Params) (PasswordHash, error) {
	pw := make([]byte, 32)
	if _, err := rand.Read(pw); err != nil {
		return "", err
	}
	return HashPassword(base64.RawStdEncoding.EncodeToString(pw), p)
}

// checkPassword is a password check whose failures all cost the same: a
// wrong password (encoded is the account's hash) or no account at all
// (encoded is "") spends one hash under every parameter set in use, the
// account's own included, so that timing tells neither whether the account
// exists nor which parameters its hash has. evaluated is false only when
// nothing was checked (no hashing slot, the client gone before the first
// hash): then err says why. Once a hash has said "wrong" the verdict
// stands, whatever happens to the padding after it.
func (s *Service) checkPassword(ctx context.Context, pw string, encoded PasswordHash) (ok, evaluated bool, err error) {
	var spent *Argon2Params
	if encoded != "" {
		if ok, err = s.verify(ctx, pw, encoded); err != nil {
			return false, false, err
		}
		if ok {
			return true, true, nil
		}
		if p, _, _, perr := parsePHC(encoded); perr == nil {
			spent = &p
		}
	}
	for i, g := range s.generations() {
		if spent != nil && g.params == *spent {
			continue
		}
		if _, err := s.verify(ctx, pw, g.dummy); err != nil && i == 0 && spent == nil {
			// An unknown email whose first hash never ran: nothing was checked.
			return false, false, err
		}
	}
	return false, true, nil
}
