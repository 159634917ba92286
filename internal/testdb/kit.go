package testdb

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/store"
)

// Clock is a settable clock for tests: no sleeps stand in for time passing.
type Clock struct {
	mu sync.Mutex
	t  time.Time
	// running: Now is the real time plus every Advance (t holds the offset
	// from start).
	running bool
	start   time.Time
}

// NewClock starts at the current second and stands still until Advance.
func NewClock() *Clock { return &Clock{t: time.Now().UTC().Truncate(time.Second)} }

// NewRunningClock follows the real clock, moved on by every Advance: for
// tests of what runs in the background on its own schedule (the outbox's
// retries) that also need to jump ahead (a token's expiry).
func NewRunningClock() *Clock {
	now := time.Now().UTC()
	return &Clock{t: now, running: true, start: now}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return c.t.Add(time.Since(c.start))
	}
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestArgon2 is cheap enough for many hashes under the race detector.
var TestArgon2 = auth.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1}

// Issuer and Audience used by Kit services.
const (
	Issuer   = "http://test.local"
	Audience = "accounts-test"
)

// Kit is a service wired to a real database, with a test clock, by the
// same constructor the server uses (auth.New).
type Kit struct {
	Pool    *pgxpool.Pool
	Store   *store.Store
	Clock   *Clock
	Keys    *auth.KeyRing
	Service *auth.Service
	Config  auth.Config
	Log     *slog.Logger
	// Revocations is the in-memory revocation state (nil with NoRevocations).
	Revocations *auth.Revocations
	// StopListening stops the revocation listener, as a lost connection would.
	StopListening func()
	// StopSender stops the outbox's sender (when KitOptions.Mailer started one).
	StopSender func()
	heartbeat  time.Duration
}

// KitOptions change a Kit's defaults.
type KitOptions struct {
	Config func(*auth.Config)
	Keys   func(*auth.KeyConfig)
	Log    io.Writer
	Clock  *Clock
	Leeway time.Duration
	Pool   *pgxpool.Pool
	// Store, when set, is the store on Pool to use (one set up by the test,
	// for example to listen elsewhere).
	Store *store.Store
	// NoRevocations checks every token against the database, as an
	// instance does while its revocation listener is down.
	NoRevocations bool
	// Heartbeat is the revocation listener's heartbeat interval (default a
	// minute: only tests of the heartbeat itself want a short one).
	Heartbeat time.Duration
	// Mailer, when set, delivers the outbox: the Kit runs the service's
	// sender (with Sender's settings) until the test ends.
	Mailer auth.Mailer
	Sender auth.SenderConfig
	// ManualSender leaves starting the sender to the test (StartSender),
	// for one that installs hooks first.
	ManualSender bool
}

// NewKit wires a service on a fresh database (or opts.Pool, to share one).
func NewKit(tb testing.TB, opts KitOptions) *Kit {
	tb.Helper()
	pool := opts.Pool
	if pool == nil {
		pool = New(tb)
	}
	clock := opts.Clock
	if clock == nil {
		clock = NewClock()
	}
	out := opts.Log
	if out == nil {
		out = io.Discard
	}
	log := slog.New(slog.NewJSONHandler(out, nil))
	o := auth.Options{
		Config: auth.Config{
			AccessTTL: 15 * time.Minute, RefreshTTL: 720 * time.Hour, SessionMaxAge: 2160 * time.Hour,
			ReuseGrace: 10 * time.Second, PasswordMinLength: 12, Argon2: TestArgon2,
			HashSlots: 4, HashWait: 5 * time.Second,
		},
		Keys:   auth.KeyConfig{Alg: auth.AlgEdDSA},
		Issuer: Issuer, Audience: Audience, Leeway: opts.Leeway,
		InMemoryRevocations: !opts.NoRevocations, Log: log, Now: clock.Now,
		Mailer: opts.Mailer, Sender: opts.Sender,
	}
	o.Email.LinkBase = Issuer + "/account"
	o.Email.From = "Accounts <no-reply@test.local>"
	if opts.Config != nil {
		opts.Config(&o.Config)
	}
	if opts.Keys != nil {
		opts.Keys(&o.Keys)
	}
	st := opts.Store
	if st == nil {
		st = store.New(pool)
	}
	svc, err := auth.New(context.Background(), st, o)
	if err != nil {
		tb.Fatalf("service: %v", err)
	}
	heartbeat := opts.Heartbeat
	if heartbeat == 0 {
		heartbeat = time.Minute
	}
	k := &Kit{Pool: pool, Store: st, Clock: clock, Keys: svc.Keys(), Service: svc, Config: o.Config, Log: log,
		Revocations: svc.Revocations(), StopListening: func() {}, StopSender: func() {}, heartbeat: heartbeat}
	if k.Revocations != nil {
		k.StartListening(tb)
	}
	if opts.Mailer != nil && !opts.ManualSender {
		k.StartSender(tb)
	}
	return k
}

// StartSender runs the outbox's sender until tb ends (or StopSender).
func (k *Kit) StartSender(tb testing.TB) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.Service.RunSender(ctx); close(done) }()
	var once sync.Once
	k.StopSender = func() { once.Do(func() { cancel(); <-done }) }
	tb.Cleanup(k.StopSender)
}

// StartListening runs the revocation listener until tb ends (or
// StopListening), and waits until its state is synced.
func (k *Kit) StartListening(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.Revocations.Run(ctx, 30*time.Second, k.heartbeat); close(done) }()
	k.StopListening = func() { cancel(); <-done }
	tb.Cleanup(k.StopListening)
	deadline := time.Now().Add(10 * time.Second)
	for !k.Revocations.Synced() {
		if time.Now().After(deadline) {
			tb.Fatal("revocation listener did not sync within 10 s")
		}
		time.Sleep(5 * time.Millisecond) // waiting on a state, not guessing a duration
	}
}

// Count runs a count(*) query (sql must select one integer) and returns the result.
func (k *Kit) Count(tb testing.TB, sql string, args ...any) int {
	tb.Helper()
	var n int
	if err := k.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		tb.Fatalf("count %q: %v", sql, err)
	}
	return n
}
