package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// RevocationKind says what a revocation stops. (How the database spells
// each is the store's business.)
type RevocationKind uint8

// Kinds of revocation.
const (
	RevokedJTI     RevocationKind = iota + 1 // one access token, until it expires
	EndedSession                             // every access token of a session
	UserCutoff                               // every access token of a user issued before At
	UserChanged                              // the user's role or email changed: drop cached copies
	RevocationsAll                           // a resync: drop every cached user (never stored)
	// Heartbeat is not a revocation: an instance's own message, sent through
	// the database, whose return proves its listener still delivers. Its
	// ID is the sending instance's nonce.
	Heartbeat
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
	// SendHeartbeat announces a Heartbeat with this nonce to every listener.
	SendHeartbeat(ctx context.Context, nonce string) error
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
	window time.Duration // RevocationWindow: longest access-token life plus twice the leeway
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
	// nonce tells this instance's heartbeats from others'; lastBeat is
	// when the last one came back, pendingSince when the oldest one sent
	// and not back yet was sent (0: none), unix nanos, wall clock.
	nonce        string
	lastBeat     atomic.Int64
	pendingSince atomic.Int64
}

// NewRevocations returns an empty, unsynced state; Run fills it. window is
// how long a revocation is remembered (RevocationWindow).
func NewRevocations(src RevocationSource, window time.Duration, log *slog.Logger, now func() time.Time) *Revocations {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return &Revocations{src: src, now: now, window: window, log: log, nonce: hex.EncodeToString(b),
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
	case Heartbeat:
		if v.ID == r.nonce {
			r.lastBeat.Store(time.Now().UnixNano())
			r.pendingSince.Store(0) // NOTIFY keeps order: every earlier one is through too
		}
		return
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

// HeartbeatAge is how long ago this instance's last heartbeat came back
// through its listener; -1 while it is not synced.
func (r *Revocations) HeartbeatAge() time.Duration {
	if !r.synced.Load() {
		return -1
	}
	return time.Since(time.Unix(0, r.lastBeat.Load()))
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

// errSilentListener is a listener whose connection stopped delivering
// without being closed: no heartbeat came back in time.
var errSilentListener = errors.New("revocation listener silent: no heartbeat came back")

// Run keeps the state in step with the database until ctx ends: listen,
// load a snapshot, apply notifications, resync every resync interval, and
// send a heartbeat through the database every heartbeat interval. When the
// connection is lost, or stops delivering without being closed (a NAT or
// balancer dropping the flow, a half-open socket after a failover), so that
// no heartbeat has come back for three intervals, the state is marked
// untrusted (every token is then checked against the database) and the
// listener reconnects with back-off.
func (r *Revocations) Run(ctx context.Context, resync, heartbeat time.Duration) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		lctx, cancel := context.WithCancel(ctx)
		ready := make(chan struct{})
		done := make(chan error, 1)
		exited := make(chan struct{})
		go func() {
			defer close(exited)
			done <- r.src.ListenRevocations(lctx, func() { close(ready) }, func(v Revocation) {
				r.Apply(v)
				r.lastSync.Store(time.Now().UnixNano())
			})
		}()
		err := r.serve(lctx, ready, done, resync, heartbeat)
		wasSynced := r.synced.Swap(false)
		cancel()
		<-exited // the old connection is closed before a new one is opened
		if ctx.Err() != nil {
			return
		}
		if wasSynced {
			backoff = 100 * time.Millisecond // it worked until now: start the back-off again
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

func (r *Revocations) serve(ctx context.Context, ready <-chan struct{}, done <-chan error, resync, heartbeat time.Duration) error {
	select {
	case <-ready:
	case err := <-done:
		return err
	}
	r.lastBeat.Store(time.Now().UnixNano())
	r.pendingSince.Store(0)
	// Snapshots load in the background, the first one and every resync,
	// so that heartbeats go on meanwhile: a slow load (a large state, a slow
	// database) is not a silent listener.
	loaded := make(chan error, 1)
	loading := true
	go func() { loaded <- r.load(ctx) }()
	t := time.NewTicker(resync)
	defer t.Stop()
	// Check twice per interval, send once: a heartbeat that has not come
	// back 3 intervals after it was sent means the listener is silent.
	beat := time.NewTicker(heartbeat / 2)
	defer beat.Stop()
	sending := make(chan struct{}, 1)
	for odd := false; ; odd = !odd {
		select {
		case err := <-done:
			return err
		case err := <-loaded:
			loading = false
			if err != nil {
				return err
			}
			r.synced.Store(true)
		case <-t.C:
			if !loading {
				loading = true
				go func() { loaded <- r.load(ctx) }()
			}
		case <-beat.C:
			if p := r.pendingSince.Load(); p != 0 && time.Since(time.Unix(0, p)) > 3*heartbeat {
				return errSilentListener
			}
			if !odd {
				continue
			}
			select {
			case sending <- struct{}{}: // at most one heartbeat in flight
				go func() {
					defer func() { <-sending }()
					hctx, cancel := context.WithTimeout(ctx, heartbeat)
					defer cancel()
					sent := time.Now().UnixNano()
					r.pendingSince.CompareAndSwap(0, sent)
					if err := r.src.SendHeartbeat(hctx, r.nonce); err != nil && ctx.Err() == nil {
						// Never sent: its absence proves nothing either way.
						r.pendingSince.CompareAndSwap(sent, 0)
						r.log.Debug("revocation heartbeat not sent", "err", err)
					}
				}()
			default:
			}
		}
	}
}
