package auth

import (
	"context"
	"time"
)

// Store is what the service needs from the database.
type Store interface {
	KeyStore
	RevocationSource

	MailStore

	// CreateUser stores a new user with role user (and queues its
	// verification mail when u.Verification is set). Returns ErrEmailTaken.
	CreateUser(ctx context.Context, u NewUser) (User, error)
	// UserByEmail finds a user case-insensitively. Returns ErrNotFound.
	UserByEmail(ctx context.Context, email string) (User, error)
	// UserByID returns ErrNotFound.
	UserByID(ctx context.Context, id string) (User, error)
	// PasswordParams lists the distinct parameter fields ("m=…,t=…,p=…")
	// of the stored password hashes.
	PasswordParams(ctx context.Context) ([]string, error)
	// RehashPassword replaces oldHash, and only oldHash, with newHash
	// without touching sessions (rehash on login); it reports whether it did.
	RehashPassword(ctx context.Context, userID string, oldHash, newHash PasswordHash, now time.Time) (bool, error)
	// ChangePassword sets newHash and ends every session of the user but
	// keepSessionID, if the user's session epoch is still epoch (no password
	// change or logout of every session since the current password was
	// checked; a rehash does not move it), returning the ids of the sessions
	// it ended, and queues notice, in one transaction. Returns
	// ErrCredentialsChanged when the epoch moved.
	ChangePassword(ctx context.Context, userID string, epoch int64, newHash PasswordHash, keepSessionID string, now time.Time, notice MailIntent) ([]string, error)
	// ListUsers pages by (created_at, id), after the cursor when it is not nil.
	ListUsers(ctx context.Context, after *UserCursor, limit int) ([]User, error)
	// SetRole returns ErrNotFound.
	SetRole(ctx context.Context, email, role string, now time.Time) (User, error)

	// CreateSession stores a session and its first refresh token if the
	// user's session epoch is still s.Epoch, then ends the user's least
	// recently used sessions past s.MaxSessions, returning their ids.
	// Returns ErrCredentialsChanged or ErrNotFound.
	CreateSession(ctx context.Context, s NewSession) ([]string, error)
	// RotateSessionToken settles one refresh of a format-2 token (of
	// session p.SessionID) atomically, in one update of the session's row
	// when the token is live; see RotateResult.
	RotateSessionToken(ctx context.Context, p RotateParams) (RotateResult, error)
	// RotateLegacyToken settles one refresh of a format-1 token atomically,
	// moving its session to format 2 when p.Convert; see RotateResult.
	RotateLegacyToken(ctx context.Context, p RotateParams) (RotateResult, error)
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
	// AccessState reads what decides whether a verified access token is still
	// good. Returns ErrNotFound when the user is gone.
	AccessState(ctx context.Context, userID, sessionID, jti string, now time.Time) (AccessState, error)

	// AddClient stores a client. Returns ErrClientExists.
	AddClient(ctx context.Context, c OAuthClient) error
	// ListClients lists every client by id.
	ListClients(ctx context.Context) ([]OAuthClient, error)
	// ClientByID returns ErrNotFound.
	ClientByID(ctx context.Context, id string) (OAuthClient, error)
	// RemoveClient deletes a client and ends its live sessions, in one
	// transaction, returning their ids. Returns ErrNotFound.
	RemoveClient(ctx context.Context, id string, now time.Time) ([]string, error)
	// SessionClient is the client a session belongs to. Returns ErrNotFound.
	SessionClient(ctx context.Context, sessionID string) (string, error)
	// RefreshTokenSession finds the live session whose live or just-spent
	// refresh token has this hash (a format-2 token names its session,
	// sessionID; a format-1 one, sessionID "", is found by its own row).
	// Returns ErrNotFound.
	RefreshTokenSession(ctx context.Context, sessionID string, hash []byte) (SessionOwner, error)
	// RevokeAccessToken revokes one access token's jti until it expires.
	RevokeAccessToken(ctx context.Context, jti string, expires time.Time) error

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
	// ClientID is the OAuth client the session belongs to.
	ClientID string
	// Epoch is the user's session epoch when the password was verified:
	// the session is opened only if it is still current.
	Epoch int64
	// MaxSessions, when not 0, is how many live sessions the user may keep.
	MaxSessions      int
	Now              time.Time
	ExpiresAt        time.Time
	RefreshHash      []byte
	RefreshExpiresAt time.Time
	// LegacyToken stores the first refresh token in format 1 (a row of its
	// own) rather than on the session's row.
	LegacyToken bool
	Client      Client
}

// RotateParams is one refresh, with every value decided by the service.
type RotateParams struct {
	// SessionID is the session a format-2 token names.
	SessionID                string
	Hash, NewHash, SealedNew []byte
	Now                      time.Time
	Grace, TTL               time.Duration
	// Convert moves a format-1 token's session to format 2 (NewHash is
	// then a format-2 token's).
	Convert bool
	Client  Client
}

// RotateOutcome is what a rotation decided.
type RotateOutcome uint8

// Outcomes of a rotation.
const (
	RotateInvalid RotateOutcome = iota // unknown, expired, or its session is over
	RotateRotated                      // the token was live; NewHash is now the live token
	RotateGrace                        // just spent and within the grace window; Sealed is its successor
	RotateReuse                        // a spent token again: the session was ended
)

// String names the outcome (in logs and metrics).
func (o RotateOutcome) String() string {
	switch o {
	case RotateRotated:
		return "rotated"
	case RotateGrace:
		return "grace"
	case RotateReuse:
		return "reuse"
	}
	return "invalid"
}

// RotateResult is what a rotation decided.
type RotateResult struct {
	Outcome   RotateOutcome
	SessionID string
	UserID    string
	Role      string
	Sealed    []byte
	// OnSessionRow says that the successor (new or sealed) is a format-2
	// token; a format-1 rotation without Convert keeps format 1.
	OnSessionRow bool
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

// MailStore is what the email use cases and the outbox's sender need.
type MailStore interface {
	// RecordMailIntent appends one intent to the outbox.
	RecordMailIntent(ctx context.Context, m MailIntent) error
	// SetPendingEmail records email as the user's pending address, spends
	// the confirmations mailed for an earlier one and queues intent, in one
	// transaction. Returns ErrNotFound.
	SetPendingEmail(ctx context.Context, userID, email string, intent MailIntent) error
	// CodeCandidates lists the live issuances of purpose p mailed to email.
	CodeCandidates(ctx context.Context, p Purpose, email string, now time.Time) ([]CodeCandidate, error)
	// CountCodeGuess counts one guess, atomically, against each of ids that
	// is live with fewer than max guesses counted, and returns those.
	CountCodeGuess(ctx context.Context, ids []int64, max int, now time.Time) ([]CountedGuess, error)
	// SpendExhausted spends those of ids with max guesses counted.
	SpendExhausted(ctx context.Context, ids []int64, max int, now time.Time) error
	// TokenAddress reads the address a live link token of purpose p was
	// mailed to, spending nothing. Returns ErrNotFound.
	TokenAddress(ctx context.Context, p Purpose, linkHash []byte, now time.Time) (string, error)
	// VerifyEmail spends a verification token (and every live one of its
	// user and purpose) and marks its address verified. Returns ErrInvalidGrant.
	VerifyEmail(ctx context.Context, ref TokenRef) (SpentToken, error)
	// ResetPassword does what a reset does, in one transaction (see
	// Service.ResetPassword), returning the ids of the sessions it ended.
	// Returns ErrInvalidGrant.
	ResetPassword(ctx context.Context, r PasswordReset) (SpentToken, []string, error)
	// ConfirmEmailChange does what a confirmation does, in one transaction,
	// returning the old address. Returns ErrInvalidGrant or ErrEmailTaken.
	ConfirmEmailChange(ctx context.Context, c EmailChange) (SpentToken, string, error)
	// DenyAccount does what "this wasn't me" does, in one transaction.
	// Returns ErrInvalidGrant.
	DenyAccount(ctx context.Context, d Denial) (Denied, error)
	// UsersWithoutEmailKey returns up to n accounts with no email key.
	UsersWithoutEmailKey(ctx context.Context, n int) ([]User, error)
	// SetEmailKeys stores email keys, each only if its account still has
	// that address and no key.
	SetEmailKeys(ctx context.Context, keys []EmailKey) error
	// UserByEmailKey returns ErrNotFound.
	UserByEmailKey(ctx context.Context, key []byte) (User, error)
	// EnsureSecret stores candidate as the secret called name unless one is
	// stored, and returns the stored one.
	EnsureSecret(ctx context.Context, name string, candidate StoredSecret) (StoredSecret, error)
	// ClaimMail leases the next due mail until leaseUntil. Returns
	// ErrNotFound when none is due.
	ClaimMail(ctx context.Context, now, leaseUntil time.Time) (OutboxMail, error)
	// IssueToken stores an issuance for an outbox mail (see NewToken).
	// Returns its id, or ErrNotFound when the user is gone.
	IssueToken(ctx context.Context, t NewToken) (int64, error)
	// FinishMail closes a mail with status and outcome if the attempt is
	// still the caller's, and reports whether it was.
	FinishMail(ctx context.Context, id int64, attempt int, status, outcome string, now time.Time) (bool, error)
	// RetryMail makes a mail due again at next if the attempt is still the
	// caller's, and reports whether it was.
	RetryMail(ctx context.Context, id int64, attempt int, next time.Time, outcome string) (bool, error)
	// SpendToken spends one issuance.
	SpendToken(ctx context.Context, id int64, now time.Time) error
	// OutboxStats counts the pending mails and gives the oldest one's time.
	OutboxStats(ctx context.Context) (int, time.Time, error)
	// ListenOutbox calls ready once listening, then wake for every new
	// intent (in any instance), until ctx ends or the connection fails.
	ListenOutbox(ctx context.Context, ready, wake func()) error
}

// OutboxMail is a mail a sender claimed.
type OutboxMail struct {
	MailIntent
	ID int64
	// Attempt counts the claims, this one included; only its holder can
	// finish or reschedule the mail.
	Attempt int
	// TokenID is the issuance the previous attempt made (0: none).
	TokenID int64
}

// NewToken is one issuance, as the sender stores it.
type NewToken struct {
	OutboxID  int64
	Attempt   int
	UserID    string
	Purpose   Purpose
	Address   string
	LinkHash  []byte
	CodeHash  []byte
	Detail    map[string]string
	Now       time.Time
	ExpiresAt time.Time
	// MaxLive is how many live issuances of the user and purpose may
	// remain, this one included: the oldest past it are spent.
	MaxLive int
}

// EmailKey is the keyed hash of an account's address.
type EmailKey struct {
	UserID string
	Email  string
	Key    []byte
}

// StoredSecret is a secret kept like the signing keys.
type StoredSecret struct {
	Name   string
	Secret []byte // sealed with the key-encryption key when Sealed
	Sealed bool
}
