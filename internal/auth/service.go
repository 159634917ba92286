package auth

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Config holds the service's rules.
type Config struct {
	AccessTTL         time.Duration
	RefreshTTL        time.Duration
	SessionMaxAge     time.Duration
	ReuseGrace        time.Duration
	PasswordMinLength int
	Argon2            Argon2Params
	// HashSlots bounds the password hashes computed at once; HashWait is how
	// long a request waits for a slot before ErrUnavailable.
	HashSlots int
	HashWait  time.Duration
	// LoginLimit bounds failed logins per email, and (apart) wrong current
	// passwords per user; IPLimit bounds requests to the rate-limited
	// endpoints (signup, login, refresh, password change) per client IP
	// (IPv6 by /64), GlobalLimit from all clients together. A zero N
	// disables one.
	LoginLimit  RateLimit
	IPLimit     RateLimit
	GlobalLimit RateLimit
	// MaxSessions is how many live sessions a user may hold; a login past
	// it ends the least recently used ones. 0 disables the cap.
	MaxSessions int
	// LegacyRefreshTokens issues format-1 refresh tokens and keeps format-1
	// sessions in format 1, for a rolling upgrade from a release that knows
	// no other (REFRESH_TOKEN_FORMAT=1; see README, "Upgrading").
	LegacyRefreshTokens bool
	// Email is the mail side (EMAIL_VERIFICATION, EMAIL_LINK_BASE, MAIL_FROM).
	Email EmailConfig
}

// Service implements the account use cases.
type Service struct {
	store  Store
	keys   *KeyRing
	tokens *Tokens
	cfg    Config
	now    func() time.Time
	log    *slog.Logger
	slots  chan struct{}
	// gens are the password-hash parameter sets in use, each with a hash
	// no password matches: a failed check spends one under each.
	gens atomic.Pointer[[]generation]
	// revocations, when set, answers the revocation check from memory.
	revocations *Revocations
	users       *userCache
	// sessions maps session ids known to exist to their user. A session
	// never changes user, so an entry never goes stale; whether the session
	// has ended is the revocation state's business.
	sessions *boundedMap[string]
	// sessionClients maps session ids to their client (which never changes).
	sessionClients *boundedMap[string]
	metrics        Metrics
	hooks          hooks

	// emailKeys key the hashes of addresses and one-time codes.
	emailKeys emailKeys
	// mailer sends the outbox's mails; nil: this instance sends none.
	mailer Mailer
	sender SenderConfig
	wake   chan struct{}
	outbox outboxState
}

// hooks let tests stop a use case between two of its steps, to replay an
// interleaving deterministically. Nil hooks do nothing.
type hooks struct {
	beforeRehash      func()
	beforeOpenSession func()
	onHash            func(Argon2Params) // every argon2id run, dummy ones included
	// afterSend runs once a mail went out, before the outbox hears of it
	// (with the sender's context: a test can stop the sender right there).
	afterSend func(context.Context, Mail)
}

func runHook(f func()) {
	if f != nil {
		f()
	}
}

// Options is everything New needs besides the store.
type Options struct {
	Config
	// Keys are the signing keys' algorithm, HS256 secret and key-encryption
	// key; New derives the retention (KeyConfig).
	Keys     KeyConfig
	Issuer   string
	Audience string
	// Leeway is the clock tolerance on exp, nbf and iat.
	Leeway time.Duration
	// InMemoryRevocations keeps the revocation state in memory (kept by
	// LISTEN/NOTIFY once Run starts); without it every token is checked
	// against the database.
	InMemoryRevocations bool
	Log                 *slog.Logger
	// Now is the clock (injected by tests); nil is time.Now.
	Now func() time.Time
	// Metrics receives the counts; nil counts nothing.
	Metrics Metrics
	// Mailer sends the outbox's mails (RunSender); nil: this instance
	// sends none, and intents wait for an instance that does.
	Mailer Mailer
	Sender SenderConfig
}

// KeyConfig is the signing-key configuration, with the retention every
// caller must use: a retired key verifies as long as any token it signed
// can still be accepted (RevocationWindow), plus one key reload.
func (o Options) KeyConfig() KeyConfig {
	k := o.Keys
	k.Retention = RevocationWindow(o.AccessTTL, o.Leeway) + KeyReloadInterval
	return k
}

// New builds the service and everything it owns, in the one order that
// works: the key ring (making the first signing key when the database has
// none), the access-token issuer and verifier, and the revocation state
// wired to the user cache before anything can listen. Run starts what runs
// in the background; nothing else needs wiring.
func New(ctx context.Context, store Store, o Options) (*Service, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = nopMetrics{}
	}
	if o.HashSlots < 1 {
		o.HashSlots = 1
	}
	ring, err := NewKeyRing(ctx, o.KeyConfig(), store, o.Now)
	if err != nil {
		return nil, err
	}
	dummy, err := dummyHash(o.Argon2)
	if err != nil {
		return nil, err
	}
	s := &Service{store: store, keys: ring, cfg: o.Config, now: o.Now, log: o.Log, metrics: o.Metrics,
		tokens: NewTokens(ring, o.Issuer, o.Audience, o.AccessTTL, o.Leeway, o.Now),
		slots:  make(chan struct{}, o.HashSlots), users: newUserCache(maxCachedUsers),
		sessions: newBoundedMap[string](maxCachedSessions, nil), sessionClients: newBoundedMap[string](maxCachedSessions, nil),
		mailer: o.Mailer, sender: o.Sender.withDefaults(), wake: make(chan struct{}, 1)}
	if s.emailKeys, err = loadEmailKeys(ctx, store, o.Keys.KEK); err != nil {
		return nil, err
	}
	s.gens.Store(&[]generation{{params: o.Argon2, dummy: dummy}})
	if err := s.loadGenerations(ctx); err != nil {
		return nil, err
	}
	if o.InMemoryRevocations {
		s.revocations = NewRevocations(store, RevocationWindow(o.AccessTTL, o.Leeway), o.Log, o.Now)
		s.revocations.onUserChanged = s.users.invalidate
	}
	return s, nil
}

// Keys is the signing-key ring (the JWKS, key rotation).
func (s *Service) Keys() *KeyRing { return s.keys }

// Revocations is the in-memory revocation state, nil without
// InMemoryRevocations.
func (s *Service) Revocations() *Revocations { return s.revocations }

// Run keeps the revocation state in step with the database (resynced in
// full every resync, a heartbeat every heartbeat), delivers the outbox's
// mails (RunSender), and re-reads the signing keys and the password-hash
// parameter sets in use every KeyReloadInterval (filling the email keys of
// accounts an earlier release made), until ctx ends; it returns once all
// of that has stopped.
func (s *Service) Run(ctx context.Context, resync, heartbeat time.Duration) {
	var wg sync.WaitGroup
	defer wg.Wait() // Run returns once everything it started has stopped
	if s.revocations != nil {
		wg.Go(func() { s.revocations.Run(ctx, resync, heartbeat) })
	}
	wg.Go(func() { s.RunSender(ctx) })
	t := time.NewTicker(KeyReloadInterval)
	defer t.Stop()
	for {
		if err := s.backfillEmailKeys(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("fill email keys", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Verified tokens are cached until they expire; without a sweep
		// they would stay until the cache is full (tens of MiB).
		s.tokens.verified.sweep()
		if err := s.keys.Reload(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("reload signing keys", "err", err)
		}
		if err := s.loadGenerations(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("reload password-hash parameters in use", "err", err)
		}
	}
}

// revoke applies this instance's own revocations at once, without waiting
// for its notification to come back.
func (s *Service) revoke(vs ...Revocation) {
	for _, v := range vs {
		s.metrics.Revoked(v.Kind)
		if v.Kind == EndedSession {
			// An ended session is never looked up again (its tokens are
			// refused first): its entries would only fill the maps.
			s.sessions.delete(v.ID)
			s.sessionClients.delete(v.ID)
		}
		// Without revocations nothing is cached: Me reads the database.
		if s.revocations != nil {
			s.revocations.Apply(v)
		}
	}
}
