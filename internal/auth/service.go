package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Store is what the service needs from the database.
type Store interface {
	KeyStore

	// CreateUser stores a new user with role user. Returns ErrEmailTaken.
	CreateUser(ctx context.Context, email, passwordHash string, now time.Time) (User, error)
	// UserByEmail finds a user case-insensitively. Returns ErrNotFound.
	UserByEmail(ctx context.Context, email string) (User, error)
	// UserByID returns ErrNotFound.
	UserByID(ctx context.Context, id string) (User, error)
	// RehashPassword replaces oldHash, and only oldHash, with newHash
	// without touching sessions (rehash on login); it reports whether it did.
	RehashPassword(ctx context.Context, userID, oldHash, newHash string, now time.Time) (bool, error)
	// ChangePassword replaces oldHash with newHash and ends every session of
	// the user but keepSessionID, returning the ids of the sessions it
	// ended. Returns ErrCredentialsChanged when the hash is no longer oldHash.
	ChangePassword(ctx context.Context, userID, oldHash, newHash, keepSessionID string, now time.Time) ([]string, error)
	// ListUsers pages by (created_at, id), after the cursor when it is not nil.
	ListUsers(ctx context.Context, after *UserCursor, limit int) ([]User, error)
	// SetRole returns ErrNotFound.
	SetRole(ctx context.Context, email, role string, now time.Time) (User, error)

	// CreateSession stores a session and its first refresh token if the
	// user's session epoch is still s.Epoch, then ends the user's least
	// recently used sessions past s.MaxSessions, returning their ids.
	// Returns ErrCredentialsChanged or ErrNotFound.
	CreateSession(ctx context.Context, s NewSession) ([]string, error)
	// RotateRefreshToken settles one refresh atomically; see RotateResult.
	RotateRefreshToken(ctx context.Context, p RotateParams) (RotateResult, error)
	// ListSessions returns the user's active sessions, newest first.
	ListSessions(ctx context.Context, userID string, now time.Time) ([]Session, error)
	// EndSession ends one active session of the user. Returns ErrNotFound.
	EndSession(ctx context.Context, userID, sessionID string, now time.Time) error
	// Logout revokes jti until jtiExpires and ends its session.
	Logout(ctx context.Context, sessionID, jti string, jtiExpires, now time.Time) error
	// LogoutUser ends every session of the user and revokes every access
	// token issued before now, returning the ids of the sessions it ended.
	// Returns ErrNotFound for an unknown user.
	LogoutUser(ctx context.Context, userID string, now time.Time) ([]string, error)
	// AccessState reads what decides whether a verified access token is still good.
	AccessState(ctx context.Context, userID, sessionID, jti string, now time.Time) (AccessState, error)

	// RecordEvent appends to the audit trail.
	RecordEvent(ctx context.Context, e Event) error
	// ListEvents pages the audit trail newest first: the user's events, or
	// everyone's when userID is empty; only ids below beforeID when it is not 0.
	ListEvents(ctx context.Context, userID string, beforeID int64, limit int) ([]Event, error)

	// HitRateLimits counts one event against each hit's key in its fixed
	// window, atomically, and returns the counts in the order of hits.
	HitRateLimits(ctx context.Context, hits []RateHit, now time.Time) ([]RateCount, error)
	// ReleaseRateLimit gives back one event counted against key in the
	// window ending at windowEnd.
	ReleaseRateLimit(ctx context.Context, key string, windowEnd time.Time) error
}

// NewSession is a login's session and first refresh token.
type NewSession struct {
	ID     string
	UserID string
	// Epoch is the user's session epoch when the password was verified:
	// the session is opened only if it is still current.
	Epoch int64
	// MaxSessions, when not 0, is how many live sessions the user may keep.
	MaxSessions      int
	Now              time.Time
	ExpiresAt        time.Time
	RefreshHash      []byte
	RefreshExpiresAt time.Time
	Client           Client
}

// RotateParams is one refresh, with every value decided by the service.
type RotateParams struct {
	Hash, NewHash, SealedNew []byte
	Now                      time.Time
	Grace, TTL               time.Duration
	Client                   Client
}

// Outcomes of a rotation.
const (
	RotateRotated = "rotated" // the token was live; NewHash is now the live token
	RotateGrace   = "grace"   // just spent and within the grace window; Sealed is its successor
	RotateReuse   = "reuse"   // a spent token again: the session was ended
	RotateInvalid = "invalid" // unknown, expired, or its session is over
)

// RotateResult is what a rotation decided.
type RotateResult struct {
	Outcome   string
	SessionID string
	UserID    string
	Role      string
	Sealed    []byte
	// ExpiresAt is when the live refresh token, capped by the session, expires.
	ExpiresAt time.Time
}

// AccessState is the stored state an access token is checked against.
type AccessState struct {
	User          User
	SessionActive bool
	Revoked       bool
	LogoutAllAt   *time.Time
}

// UserCursor is a position in the admin user listing.
type UserCursor struct {
	CreatedAt time.Time
	ID        string
}

// Event is one entry of the audit trail: never a password or a token.
type Event struct {
	ID        int64 // set by the store
	Type      string
	UserID    string
	SessionID string
	Client    Client
	Detail    map[string]any
	At        time.Time
}

// Security event names.
const (
	EventSignup          = "signup"
	EventLoginOK         = "login_succeeded"
	EventLoginFailed     = "login_failed"
	EventRefreshReuse    = "refresh_reuse_detected"
	EventLogout          = "logout"
	EventLogoutAll       = "logout_all"
	EventSessionDeleted  = "session_deleted"
	EventPasswordChanged = "password_changed"
	// EventPasswordChangeFailed is a wrong current password on a password
	// change (or another re-authentication).
	EventPasswordChangeFailed = "password_change_failed"
	EventRoleChanged          = "role_changed"
	EventAdminLogout          = "admin_logout_user"
	EventKeyRotated           = "key_rotated"
	EventKeysResealed         = "keys_resealed"
	EventRateLimited          = "rate_limited"
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
	// passwords per user; IPLimit bounds requests to the unauthenticated
	// endpoints per client IP (IPv6 by /64), GlobalLimit from all clients
	// together. A zero N disables one.
	LoginLimit  RateLimit
	IPLimit     RateLimit
	GlobalLimit RateLimit
	// MaxSessions is how many live sessions a user may hold; a login past
	// it ends the least recently used one. 0 disables the cap.
	MaxSessions int
}

// Service implements the account use cases.
type Service struct {
	store  Store
	tokens *Tokens
	cfg    Config
	now    func() time.Time
	log    *slog.Logger
	slots  chan struct{}
	dummy  string // a hash that no password matches, spent on unknown emails
	// revocations, when set, answers the revocation check from memory.
	revocations *Revocations
	users       *userCache
	// sessions maps session ids known to exist to their user. A session
	// never changes user, so an entry never goes stale; whether the session
	// has ended is the revocation state's business.
	sessions *boundedMap[string]
	metrics  Metrics
	hooks    hooks
}

// hooks let tests stop a use case between two of its steps, to replay an
// interleaving deterministically. Nil hooks do nothing.
type hooks struct {
	beforeRehash      func()
	beforeOpenSession func()
	onHash            func(Argon2Params) // every argon2id run, dummy ones included
}

func runHook(f func()) {
	if f != nil {
		f()
	}
}

// NewService wires the use cases. now is the clock (injected by tests).
func NewService(store Store, tokens *Tokens, cfg Config, log *slog.Logger, now func() time.Time) (*Service, error) {
	if cfg.HashSlots < 1 {
		cfg.HashSlots = 1
	}
	pw := make([]byte, 32)
	if _, err := rand.Read(pw); err != nil {
		return nil, err
	}
	dummy, err := HashPassword(base64.RawStdEncoding.EncodeToString(pw), cfg.Argon2)
	if err != nil {
		return nil, err
	}
	return &Service{store: store, tokens: tokens, cfg: cfg, now: now, log: log,
		slots: make(chan struct{}, cfg.HashSlots), dummy: dummy, users: newUserCache(maxCachedUsers),
		sessions: newBoundedMap[string](maxCachedSessions, nil), metrics: nopMetrics{}}, nil
}

// UseRevocations makes the service check access tokens against r, and
// fall back to the database only while r is not synced.
func (s *Service) UseRevocations(r *Revocations) {
	r.onUserChanged = s.users.invalidate
	s.revocations = r
}

// revoke applies this instance's own revocations at once, without waiting
// for its notification to come back.
func (s *Service) revoke(vs ...Revocation) {
	for _, v := range vs {
		s.metrics.Revoked(v.Kind)
		// Without revocations nothing is cached: Me reads the database.
		if s.revocations != nil {
			s.revocations.Apply(v)
		}
	}
}

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

func (s *Service) hash(ctx context.Context, pw string) (h string, err error) {
	if s.hooks.onHash != nil {
		s.hooks.onHash(s.cfg.Argon2)
	}
	err = s.withHashSlot(ctx, func() error { h, err = HashPassword(pw, s.cfg.Argon2); return err })
	return h, err
}

func (s *Service) verify(ctx context.Context, pw, encoded string) (ok bool, err error) {
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
func (s *Service) verifyFailure(ctx context.Context, pw, encoded string) (ok bool, err error) {
	ok, err = s.verify(ctx, pw, encoded)
	if err == nil && !ok && NeedsRehash(encoded, s.cfg.Argon2) {
		_, err = s.verify(ctx, pw, s.dummy)
	}
	return ok, err
}

func (s *Service) record(ctx context.Context, e Event) {
	e.At = s.now()
	attrs := []slog.Attr{slog.String("event", e.Type), slog.String("request_id", e.Client.RequestID),
		slog.String("ip", e.Client.IP)}
	if e.UserID != "" {
		attrs = append(attrs, slog.String("user_id", e.UserID))
	}
	if e.SessionID != "" {
		attrs = append(attrs, slog.String("session_id", e.SessionID))
	}
	for k, v := range e.Detail {
		attrs = append(attrs, slog.Any(k, v))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "security event", attrs...)
	// The audit row must not be lost because the request was cancelled.
	if err := s.store.RecordEvent(context.WithoutCancel(ctx), e); err != nil {
		s.log.Error("audit event not stored", "event", e.Type, "err", err)
	}
}

// Signup creates an account with role user.
// Returns *ValidationError, ErrEmailTaken or ErrUnavailable.
func (s *Service) Signup(ctx context.Context, email, password string, c Client) (User, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return User{}, err
	}
	if err := checkNewPassword("password", password, email, s.cfg.PasswordMinLength); err != nil {
		return User{}, err
	}
	// Hash before looking for the email, so an existing one costs the same time.
	h, err := s.hash(ctx, password)
	if err != nil {
		return User{}, err
	}
	u, err := s.store.CreateUser(ctx, email, h, s.now())
	if err != nil {
		return User{}, err
	}
	s.record(ctx, Event{Type: EventSignup, UserID: u.ID, Client: c})
	return u, nil
}

// Login checks a password and opens a session. The attempt is counted
// against the email's LOGIN_RATE_LIMIT before any hashing (a right
// password gives its count back), so that concurrent guesses evaluate at
// most the limit.
// Returns *ValidationError, ErrInvalidCredentials, *RateLimitError or ErrUnavailable.
func (s *Service) Login(ctx context.Context, email, password string, c Client) (TokenPair, error) {
	if strings.TrimSpace(email) == "" {
		return TokenPair{}, Invalid("email", "is required")
	}
	if password == "" {
		return TokenPair{}, Invalid("password", "is required")
	}
	if len(password) > MaxPasswordBytes {
		return TokenPair{}, Invalid("password", fmt.Sprintf("must be at most %d bytes", MaxPasswordBytes))
	}
	a, err := s.reserve(ctx, s.cfg.LoginLimit, "login", loginLimitKey(email), c)
	if err != nil {
		if errors.Is(err, ErrTooManyRequests) {
			s.metrics.Login("limited")
		}
		return TokenPair{}, err
	}
	u, err := s.checkLogin(ctx, email, password, c)
	if err != nil {
		if !errors.Is(err, ErrInvalidCredentials) {
			s.release(ctx, a) // not a guess that was evaluated
		}
		return TokenPair{}, err
	}
	s.release(ctx, a)
	if NeedsRehash(u.PasswordHash, s.cfg.Argon2) {
		s.rehash(ctx, &u, password)
	}
	runHook(s.hooks.beforeOpenSession)
	pair, sid, err := s.openSession(ctx, u, c)
	if errors.Is(err, ErrCredentialsChanged) {
		// The password changed, or every session was ended, between the
		// check and now: the session this login verified for is gone.
		s.metrics.Login("failed")
		s.record(ctx, Event{Type: EventLoginFailed, UserID: u.ID, Client: c, Detail: map[string]any{"reason": "credentials_changed"}})
		return TokenPair{}, ErrInvalidCredentials
	}
	if err != nil {
		return TokenPair{}, err
	}
	s.sessions.put(sid, u.ID)
	s.metrics.Login("ok")
	s.record(ctx, Event{Type: EventLoginOK, UserID: u.ID, SessionID: sid, Client: c})
	return pair, nil
}

// checkLogin finds the account and checks its password, spending one hash
// at the current parameters on every failure. Returns ErrInvalidCredentials
// for an unknown email or a wrong password.
func (s *Service) checkLogin(ctx context.Context, email, password string, c Client) (User, error) {
	u, err := s.userForLogin(ctx, email)
	if errors.Is(err, ErrNotFound) {
		// Spend one hash anyway so that timing does not tell which emails exist.
		if _, err := s.verify(ctx, password, s.dummy); err != nil {
			return User{}, err
		}
		s.metrics.Login("failed")
		s.record(ctx, Event{Type: EventLoginFailed, Client: c, Detail: map[string]any{"reason": "unknown_email"}})
		return User{}, ErrInvalidCredentials
	}
	if err != nil {
		return User{}, err
	}
	ok, err := s.verifyFailure(ctx, password, u.PasswordHash)
	if err != nil {
		return User{}, err
	}
	if !ok {
		s.metrics.Login("failed")
		s.record(ctx, Event{Type: EventLoginFailed, UserID: u.ID, Client: c, Detail: map[string]any{"reason": "wrong_password"}})
		return User{}, ErrInvalidCredentials
	}
	return u, nil
}

// rehash stores the password under the current parameters, replacing
// exactly the hash that was verified: a password changed meanwhile stays.
func (s *Service) rehash(ctx context.Context, u *User, password string) {
	h, err := s.hash(ctx, password)
	if err != nil {
		return // a login does not fail for want of a rehash
	}
	runHook(s.hooks.beforeRehash)
	replaced, err := s.store.RehashPassword(ctx, u.ID, u.PasswordHash, h, s.now())
	if err != nil {
		s.log.Error("rehash not stored", "user_id", u.ID, "err", err)
		return
	}
	if replaced {
		u.PasswordHash = h
	}
}

func (s *Service) userForLogin(ctx context.Context, email string) (User, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return User{}, ErrNotFound // no such account can exist
	}
	return s.store.UserByEmail(ctx, e)
}

// openSession opens a session for u, conditional on u's session epoch
// being still current, and ends the sessions past the cap.
// Returns ErrCredentialsChanged.
func (s *Service) openSession(ctx context.Context, u User, c Client) (TokenPair, string, error) {
	rt, err := newRefreshToken()
	if err != nil {
		return TokenPair{}, "", err
	}
	now := s.now()
	sid := uuid.NewString()
	expires := now.Add(s.cfg.SessionMaxAge)
	refreshExp := now.Add(s.cfg.RefreshTTL)
	if refreshExp.After(expires) {
		refreshExp = expires
	}
	ended, err := s.store.CreateSession(ctx, NewSession{ID: sid, UserID: u.ID, Epoch: u.SessionEpoch,
		MaxSessions: s.cfg.MaxSessions, Now: now, ExpiresAt: expires,
		RefreshHash: rt.Hash[:], RefreshExpiresAt: refreshExp, Client: c})
	if errors.Is(err, ErrNotFound) {
		return TokenPair{}, "", ErrCredentialsChanged // the account was deleted meanwhile
	}
	if err != nil {
		return TokenPair{}, "", err
	}
	for _, old := range ended {
		s.revoke(Revocation{Kind: EndedSession, ID: old, At: now})
		s.record(ctx, Event{Type: EventSessionDeleted, UserID: u.ID, SessionID: old, Client: c,
			Detail: map[string]any{"reason": "max_sessions"}})
	}
	pair, err := s.pair(u.ID, sid, u.Role, rt.Text, refreshExp)
	return pair, sid, err
}

// pair issues an access token that never outlives its session (notAfter),
// so that a token's session cannot expire under it. expires_in is the
// token's own exp − iat.
func (s *Service) pair(userID, sid, role, refresh string, notAfter time.Time) (TokenPair, error) {
	it, err := s.tokens.Issue(userID, sid, role, notAfter)
	if err != nil {
		return TokenPair{}, err
	}
	return TokenPair{AccessToken: it.Token, ExpiresIn: it.ExpiresIn(), RefreshToken: refresh}, nil
}

// Refresh spends a refresh token and returns its successor.
// Returns *ValidationError or ErrInvalidGrant.
func (s *Service) Refresh(ctx context.Context, token string, c Client) (TokenPair, error) {
	if token == "" {
		return TokenPair{}, Invalid("refresh_token", "is required")
	}
	presented, ok := parseRefreshToken(token)
	if !ok {
		return TokenPair{}, ErrInvalidGrant
	}
	next, err := newRefreshToken()
	if err != nil {
		return TokenPair{}, err
	}
	sealed, err := sealSuccessor(presented, next)
	if err != nil {
		return TokenPair{}, err
	}
	res, err := s.store.RotateRefreshToken(ctx, RotateParams{
		Hash: presented.Hash[:], NewHash: next.Hash[:], SealedNew: sealed, Now: s.now(),
		Grace: s.cfg.ReuseGrace, TTL: s.cfg.RefreshTTL, Client: c,
	})
	if err != nil {
		return TokenPair{}, err
	}
	s.metrics.Refresh(res.Outcome)
	if res.Outcome == RotateRotated || res.Outcome == RotateGrace {
		s.sessions.put(res.SessionID, res.UserID)
	}
	switch res.Outcome {
	case RotateRotated:
		return s.refreshPair(res, next.Text)
	case RotateGrace:
		succ, err := openSuccessor(presented, res.Sealed)
		if err != nil {
			return TokenPair{}, ErrInvalidGrant
		}
		return s.refreshPair(res, succ.Text)
	case RotateReuse:
		s.revoke(Revocation{Kind: EndedSession, ID: res.SessionID, At: s.now()})
		s.record(ctx, Event{Type: EventRefreshReuse, UserID: res.UserID, SessionID: res.SessionID, Client: c,
			Detail: map[string]any{"session_ended": true}})
		return TokenPair{}, ErrInvalidGrant
	default:
		return TokenPair{}, ErrInvalidGrant
	}
}

// refreshPair is pair for a rotation: a session whose end is less than a
// second away gets no token that would be dead on arrival.
func (s *Service) refreshPair(res RotateResult, refresh string) (TokenPair, error) {
	pair, err := s.pair(res.UserID, res.SessionID, res.Role, refresh, res.ExpiresAt)
	if errors.Is(err, errNoTimeLeft) {
		return TokenPair{}, ErrInvalidGrant
	}
	return pair, err
}

// Authenticate verifies an access token and checks it against the
// revocation state: its jti, its session, and the user's logout-all cut-off.
// Returns ErrInvalidToken.
func (s *Service) Authenticate(ctx context.Context, token string) (Principal, error) {
	p, err := s.tokens.Verify(ctx, token)
	if err != nil {
		return Principal{}, err
	}
	if s.revocations != nil {
		if revoked, ok := s.revocations.Check(p); ok {
			if revoked {
				return Principal{}, ErrInvalidToken
			}
			if uid, known := s.sessions.get(p.SessionID); known {
				if uid != p.UserID {
					return Principal{}, ErrInvalidToken
				}
				return p, nil
			}
			// A session not seen here yet: the database says once
			// whether it exists and is this user's.
		}
	}
	// No trusted in-memory state (not configured, or its listener is
	// down), or an unknown session: ask the database, and read the user
	// in the same query.
	st, err := s.store.AccessState(ctx, p.UserID, p.SessionID, p.JTI, s.now())
	if errors.Is(err, ErrNotFound) {
		return Principal{}, ErrInvalidToken
	}
	if err != nil {
		return Principal{}, err
	}
	// iat has whole seconds; tokens issued in the second of a logout-all are
	// caught by their ended session instead.
	if st.Revoked || !st.SessionActive ||
		(st.LogoutAllAt != nil && p.IssuedAt.Before(st.LogoutAllAt.Truncate(time.Second))) {
		return Principal{}, ErrInvalidToken
	}
	s.sessions.put(p.SessionID, p.UserID)
	p.User = st.User
	return p, nil
}

// Logout ends the caller's session and revokes the access token presented.
func (s *Service) Logout(ctx context.Context, p Principal, c Client) error {
	now := s.now()
	if err := s.store.Logout(ctx, p.SessionID, p.JTI, p.ExpiresAt, now); err != nil {
		return err
	}
	s.revoke(Revocation{Kind: RevokedJTI, ID: p.JTI, At: p.ExpiresAt}, Revocation{Kind: EndedSession, ID: p.SessionID, At: now})
	s.record(ctx, Event{Type: EventLogout, UserID: p.UserID, SessionID: p.SessionID, Client: c})
	return nil
}

// LogoutAll ends every session of the caller and revokes every access token
// issued so far.
func (s *Service) LogoutAll(ctx context.Context, p Principal, c Client) error {
	if err := s.logoutUser(ctx, p.UserID); err != nil {
		return err
	}
	s.record(ctx, Event{Type: EventLogoutAll, UserID: p.UserID, SessionID: p.SessionID, Client: c})
	return nil
}

// logoutUser ends every session of a user and sets the cut-off, here at
// once and everywhere through the database.
func (s *Service) logoutUser(ctx context.Context, userID string) error {
	now := s.now()
	ended, err := s.store.LogoutUser(ctx, userID, now)
	if err != nil {
		return err
	}
	// The cut-off has whole seconds (like iat); tokens issued within its
	// second are stopped by their ended sessions.
	s.revoke(Revocation{Kind: UserCutoff, ID: userID, At: now.Truncate(time.Second)})
	for _, sid := range ended {
		s.revoke(Revocation{Kind: EndedSession, ID: sid, At: now})
	}
	return nil
}

// Me returns the caller's account: from the revocation check's query when
// that ran, else from the user cache, else from the database.
func (s *Service) Me(ctx context.Context, p Principal) (User, error) {
	if p.User.ID != "" {
		return p.User, nil
	}
	trusted := s.revocations != nil && s.revocations.Synced()
	if trusted {
		if u, ok := s.users.get(p.UserID); ok {
			return u, nil
		}
	}
	gen := s.users.generation()
	u, err := s.store.UserByID(ctx, p.UserID)
	if errors.Is(err, ErrNotFound) {
		return User{}, ErrInvalidToken
	}
	if err != nil {
		return User{}, err
	}
	u.PasswordHash = ""
	if trusted {
		s.users.put(u, gen)
	}
	return u, nil
}

// Sessions lists the caller's active sessions.
func (s *Service) Sessions(ctx context.Context, p Principal) ([]Session, error) {
	return s.store.ListSessions(ctx, p.UserID, s.now())
}

// EndSession ends one of the caller's sessions. Returns ErrNotFound.
func (s *Service) EndSession(ctx context.Context, p Principal, sessionID string, c Client) error {
	if uuid.Validate(sessionID) != nil {
		return ErrNotFound
	}
	now := s.now()
	if err := s.store.EndSession(ctx, p.UserID, sessionID, now); err != nil {
		return err
	}
	s.revoke(Revocation{Kind: EndedSession, ID: sessionID, At: now})
	s.record(ctx, Event{Type: EventSessionDeleted, UserID: p.UserID, SessionID: sessionID, Client: c})
	return nil
}

// ChangePassword replaces the caller's password after checking the current
// one, and ends every other session of the caller. Wrong current passwords
// are counted per user against LOGIN_RATE_LIMIT's numbers, apart from the
// login lockout, before any hashing; the new password's strength is judged
// only once the current one checked out (no oracle for a token thief).
// Returns *ValidationError, ErrInvalidCredentials, *RateLimitError,
// ErrInvalidToken (the account is gone) or ErrUnavailable.
func (s *Service) ChangePassword(ctx context.Context, p Principal, current, next string, c Client) error {
	if current == "" {
		return Invalid("current_password", "is required")
	}
	if len(current) > MaxPasswordBytes {
		return Invalid("current_password", fmt.Sprintf("must be at most %d bytes", MaxPasswordBytes))
	}
	if err := checkPasswordLength("new_password", next, s.cfg.PasswordMinLength); err != nil {
		return err
	}
	u, err := s.reauthenticate(ctx, p, current, c)
	if err != nil {
		return err
	}
	if err := checkPasswordStrength("new_password", next, u.Email); err != nil {
		return err
	}
	h, err := s.hash(ctx, next)
	if err != nil {
		return err
	}
	now := s.now()
	ended, err := s.store.ChangePassword(ctx, u.ID, u.PasswordHash, h, p.SessionID, now)
	if errors.Is(err, ErrCredentialsChanged) {
		return ErrInvalidCredentials // changed meanwhile: the current password is no longer current
	}
	if err != nil {
		return err
	}
	for _, sid := range ended {
		s.revoke(Revocation{Kind: EndedSession, ID: sid, At: now})
	}
	s.record(ctx, Event{Type: EventPasswordChanged, UserID: u.ID, SessionID: p.SessionID, Client: c})
	return nil
}

// reauthenticate checks the caller's current password, counted against
// the re-authentication limit (LOGIN_RATE_LIMIT's numbers, keyed by user,
// apart from the login lockout: a stolen access token cannot lock the
// owner out of logging in, and failed logins by others cannot block this).
// Returns ErrInvalidCredentials, *RateLimitError, ErrInvalidToken or ErrUnavailable.
func (s *Service) reauthenticate(ctx context.Context, p Principal, password string, c Client) (User, error) {
	a, err := s.reserve(ctx, s.cfg.LoginLimit, "reauth", limitKey("reauth", p.UserID), c)
	if err != nil {
		return User{}, err
	}
	u, err := s.store.UserByID(ctx, p.UserID)
	if err == nil {
		var ok bool
		if ok, err = s.verifyFailure(ctx, password, u.PasswordHash); err == nil && !ok {
			s.record(ctx, Event{Type: EventPasswordChangeFailed, UserID: u.ID, SessionID: p.SessionID, Client: c,
				Detail: map[string]any{"reason": "wrong_password"}})
			return User{}, ErrInvalidCredentials // the reservation stays: a failure
		}
	}
	s.release(ctx, a)
	if errors.Is(err, ErrNotFound) {
		return User{}, ErrInvalidToken
	}
	return u, err
}

// requireAdmin authorises on the user's role as it is now, not as the
// token says: a demotion takes effect at once. Returns ErrForbidden or
// ErrInvalidToken.
func (s *Service) requireAdmin(ctx context.Context, p Principal) error {
	u, err := s.Me(ctx, p)
	if err != nil {
		return err
	}
	if u.Role != RoleAdmin {
		return ErrForbidden
	}
	return nil
}

// MaxPageSize is the largest admin listing page.
const MaxPageSize = 100

// ListUsers is the admin listing, paged by an opaque cursor.
// Returns ErrForbidden or *ValidationError.
func (s *Service) ListUsers(ctx context.Context, p Principal, limit int, cursor string) ([]User, string, error) {
	if err := s.requireAdmin(ctx, p); err != nil {
		return nil, "", err
	}
	if err := checkLimit(limit); err != nil {
		return nil, "", err
	}
	var after *UserCursor
	if cursor != "" {
		c, err := decodeCursor(cursor)
		if err != nil {
			return nil, "", Invalid("cursor", "is not a cursor from this listing")
		}
		after = &c
	}
	users, err := s.store.ListUsers(ctx, after, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(users) > limit {
		users = users[:limit]
		last := users[limit-1]
		next = encodeCursor(UserCursor{CreatedAt: last.CreatedAt, ID: last.ID})
	}
	return users, next, nil
}

func checkLimit(limit int) error {
	if limit < 1 || limit > MaxPageSize {
		return Invalid("limit", fmt.Sprintf("must be between 1 and %d", MaxPageSize))
	}
	return nil
}

// MyEvents pages the caller's own audit trail, newest first.
// Returns *ValidationError.
func (s *Service) MyEvents(ctx context.Context, p Principal, limit int, cursor string) ([]Event, string, error) {
	return s.events(ctx, p.UserID, limit, cursor)
}

// AllEvents pages everyone's audit trail, newest first.
// Returns ErrForbidden or *ValidationError.
func (s *Service) AllEvents(ctx context.Context, p Principal, limit int, cursor string) ([]Event, string, error) {
	if err := s.requireAdmin(ctx, p); err != nil {
		return nil, "", err
	}
	return s.events(ctx, "", limit, cursor)
}

func (s *Service) events(ctx context.Context, userID string, limit int, cursor string) ([]Event, string, error) {
	if err := checkLimit(limit); err != nil {
		return nil, "", err
	}
	var before int64
	if cursor != "" {
		b, err := base64.RawURLEncoding.Strict().DecodeString(cursor)
		if err == nil && len(b) <= 20 {
			before, err = strconv.ParseInt(string(b), 10, 64)
		}
		if err != nil || before < 1 || len(b) > 20 {
			return nil, "", Invalid("cursor", "is not a cursor from this listing")
		}
	}
	events, err := s.store.ListEvents(ctx, userID, before, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(events) > limit {
		events = events[:limit]
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(events[limit-1].ID, 10)))
	}
	return events, next, nil
}

func encodeCursor(c UserCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + "," + c.ID))
}

func decodeCursor(s string) (UserCursor, error) {
	if len(s) > 128 {
		return UserCursor{}, errors.New("cursor too long")
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return UserCursor{}, err
	}
	ts, id, ok := strings.Cut(string(b), ",")
	if !ok || uuid.Validate(id) != nil {
		return UserCursor{}, errors.New("bad cursor")
	}
	micros, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return UserCursor{}, err
	}
	return UserCursor{CreatedAt: time.UnixMicro(micros).UTC(), ID: id}, nil
}

// AdminLogoutUser ends every session of another user.
// Returns ErrForbidden or ErrNotFound.
func (s *Service) AdminLogoutUser(ctx context.Context, p Principal, userID string, c Client) error {
	if err := s.requireAdmin(ctx, p); err != nil {
		return err
	}
	if uuid.Validate(userID) != nil {
		return ErrNotFound
	}
	if err := s.logoutUser(ctx, userID); err != nil {
		return err
	}
	s.record(ctx, Event{Type: EventAdminLogout, UserID: userID, Client: c, Detail: map[string]any{"admin_id": p.UserID}})
	return nil
}

// SetRole changes a user's role; it takes effect at the next login or refresh.
// Returns *ValidationError or ErrNotFound.
func (s *Service) SetRole(ctx context.Context, email, role string, c Client) (User, error) {
	if !ValidRole(role) {
		return User{}, Invalid("role", "must be user or admin")
	}
	e, err := NormalizeEmail(email)
	if err != nil {
		return User{}, err
	}
	u, err := s.store.SetRole(ctx, e, role, s.now())
	if err != nil {
		return User{}, err
	}
	s.revoke(Revocation{Kind: UserChanged, ID: u.ID})
	s.record(ctx, Event{Type: EventRoleChanged, UserID: u.ID, Client: c, Detail: map[string]any{"role": role}})
	return u, nil
}
