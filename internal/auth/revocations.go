package auth

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// RevocationKind says what a revocation stops.
type RevocationKind byte

// Kinds of revocation.
const (
	RevokedJTI     RevocationKind = 'j' // one access token, until it expires
	EndedSession   RevocationKind = 's' // every access token of a session
	UserCutoff     RevocationKind = 'u' // every access token of a user issued before At
	UserChanged    RevocationKind = 'r' // the user's role or email changed: drop cached copies
	RevocationsAll RevocationKind = '*' // a resync: drop every cached user
)

// Revocation is one revocation, as the database announces it.
type Revocation struct {
	Kind RevocationKind
	ID   string    // jti, session id or user id
	At   time.Time // jti: its expiry; session: when it ended; user: the cut-off
}

// Snapshot is every revocation still relevant, read from the database.
type Snapshot []Revocation

// RevocationSource is what the revocation state needs from the database.
type RevocationSource interface {
	// RevocationSnapshot returns every revocation that can still matter at
	// now for tokens living at most window.
	RevocationSnapshot(ctx context.Context, now time.Time, window time.Duration) (Snapshot, error)
	// ListenRevocations subscribes to revocations, calls ready once it
	// listens, then calls on for each one until ctx ends or the connection
	// fails (its error is returned).
	ListenRevocations(ctx context.Context, ready func(), on func(Revocation)) error
}

// Revocations is the revocation state of the database, kept in memory so
// that checking an access token costs no round trip. It is loaded when the
// listener starts, kept fresh by LISTEN/NOTIFY, and reloaded every
// resync interval as a safety net. While the listener is down the state is
// not trusted (Check answers ok=false) and callers ask the database: it
// fails closed, never open.
type Revocations struct {
	src    RevocationSource
	now    func() time.Time
	window time.Duration // longest access-token life plus leeway
	log    *slog.Logger
	// onUserChanged is called for UserChanged (one user) and RevocationsAll
	// (every user, at each snapshot), to drop cached users.
	onUserChanged func(userID string)

	mu       sync.RWMutex
	jtis     map[string]time.Time
	sessions map[string]time.Time
	cutoffs  map[string]time.Time

	synced   atomic.Bool
	lastSync atomic.Int64 // unix nanos of the last snapshot or notification
}

// NewRevocations returns an empty, unsynced state; Run fills it.
func NewRevocations(src RevocationSource, window time.Duration, log *slog.Logger, now func() time.Time) *Revocations {
	return &Revocations{src: src, now: now, window: window, log: log,
		jtis: map[string]time.Time{}, sessions: map[string]time.Time{}, cutoffs: map[string]time.Time{}}
}

// Synced reports whether the state is trusted: the listener is up and the
// snapshot taken after it started listening is loaded.
func (r *Revocations) Synced() bool { return r.synced.Load() }

// Check reports whether p is revoked. ok is false when the state cannot be
// trusted; the caller must then ask the database.
func (r *Revocations) Check(p Principal) (revoked, ok bool) {
	if !r.synced.Load() {
		return false, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, gone := r.jtis[p.JTI]; gone {
		return true, true
	}
	if _, ended := r.sessions[p.SessionID]; ended {
		return true, true
	}
	if cut, ok := r.cutoffs[p.UserID]; ok && p.IssuedAt.Before(cut) {
		return true, true
	}
	return false, true
}

// Apply records one revocation (also used by this instance for its own
// revocations, so that they hold here before the notification returns).
func (r *Revocations) Apply(v Revocation) {
	switch v.Kind {
	case UserChanged, RevocationsAll:
		if r.onUserChanged != nil {
			r.onUserChanged(v.ID)
		}
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch v.Kind {
	case RevokedJTI:
		r.jtis[v.ID] = v.At
	case EndedSession:
		r.sessions[v.ID] = v.At
	case UserCutoff:
		if cur, ok := r.cutoffs[v.ID]; !ok || v.At.After(cur) {
			r.cutoffs[v.ID] = v.At
		}
	}
}

// Size is the number of revocations held.
func (r *Revocations) Size() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.jtis) + len(r.sessions) + len(r.cutoffs)
}

// Lag is how long ago the state last heard from the database (a snapshot
// or a notification); -1 while it is not synced.
func (r *Revocations) Lag() time.Duration {
	if !r.synced.Load() {
		return -1
	}
	return time.Since(time.Unix(0, r.lastSync.Load()))
}

// load merges a snapshot (revocations only ever add, so a notification
// that raced the snapshot is never lost) and drops what can no longer matter.
func (r *Revocations) load(ctx context.Context) error {
	snap, err := r.src.RevocationSnapshot(ctx, r.now(), r.window)
	if err != nil {
		return err
	}
	for _, v := range snap {
		r.Apply(v)
	}
	r.Apply(Revocation{Kind: RevocationsAll})
	r.prune()
	r.lastSync.Store(time.Now().UnixNano())
	return nil
}

func (r *Revocations) prune() {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, exp := range r.jtis {
		if exp.Add(r.window).Before(now) {
			delete(r.jtis, k)
		}
	}
	for _, m := range []map[string]time.Time{r.sessions, r.cutoffs} {
		for k, at := range m {
			if at.Add(r.window).Before(now) {
				delete(m, k)
			}
		}
	}
}

// Run keeps the state in step with the database until ctx ends:
// listen, load a snapshot, apply notifications, resync every resync
// interval, and on a lost connection mark the state untrusted and
// reconnect with back-off.
func (r *Revocations) Run(ctx context.Context, resync time.Duration) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		lctx, cancel := context.WithCancel(ctx)
		ready := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- r.src.ListenRevocations(lctx, func() { close(ready) }, func(v Revocation) {
				r.Apply(v)
				r.lastSync.Store(time.Now().UnixNano())
			})
		}()
		err := r.serve(lctx, ready, done, resync)
		cancel()
		r.synced.Store(false)
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("revocation listener lost; checking tokens against the database until it is back", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (r *Revocations) serve(ctx context.Context, ready <-chan struct{}, done <-chan error, resync time.Duration) error {
	select {
	case <-ready:
	case err := <-done:
		return err
	}
	if err := r.load(ctx); err != nil {
		return err
	}
	r.synced.Store(true)
	t := time.NewTicker(resync)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
			if err := r.load(ctx); err != nil {
				return err
			}
		}
	}
}
