package auth

import "context"

// ParseUncached checks a token's signature and claims without the cache,
// for benchmarks.
func (t *Tokens) ParseUncached(ctx context.Context, raw string) (Principal, error) {
	return t.parse(ctx, raw)
}

// Hooks are the points where a test can stop a use case (see hooks).
type Hooks struct {
	BeforeRehash      func()
	BeforeOpenSession func()
	OnHash            func(Argon2Params)
	AfterSend         func(context.Context, Mail)
}

// SetHooks installs test hooks on s (before anything runs that calls them).
func (s *Service) SetHooks(h Hooks) {
	s.hooks = hooks{beforeRehash: h.BeforeRehash, beforeOpenSession: h.BeforeOpenSession, onHash: h.OnHash,
		afterSend: h.AfterSend}
}

// Resync loads a fresh snapshot and prunes, as the periodic resync does.
func (r *Revocations) Resync(ctx context.Context) error { return r.load(ctx) }

// Tokens is the service's access-token issuer and verifier, for tests that
// sign tokens themselves.
func (s *Service) Tokens() *Tokens { return s.tokens }

// FillHashSlots takes every hashing slot (none may be in use), as a burst
// of concurrent logins would, until the returned function gives them back.
func (s *Service) FillHashSlots() (release func()) {
	n := cap(s.slots)
	for range n {
		s.slots <- struct{}{}
	}
	return func() {
		for range n {
			<-s.slots
		}
	}
}

// LoadGenerations reads the password-hash parameter sets in use now, as
// Run does every minute.
func (s *Service) LoadGenerations(ctx context.Context) error { return s.loadGenerations(ctx) }

// CachedTokens is how many verified tokens the cache holds.
func (t *Tokens) CachedTokens() int { return t.verified.len() }

// SweepCache drops expired tokens from the cache, as Run does every minute.
func (t *Tokens) SweepCache() { t.verified.sweep() }
