// Package auth holds the account service's rules: users, passwords, access
// tokens, refresh-token rotation and sessions. It speaks no HTTP and no SQL:
// it imports no sibling package, and the store it needs is the Store interface.
//
// A use case returns the sentinels its comment lists and, besides them,
// ctx's error (the request ended while it waited for a hashing slot or the
// database) or a store failure as the store returned it.
package auth

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Roles a user can have.
const (
	RoleUser  = "user"
	RoleAdmin = "admin"
)

// ValidRole reports whether role is one the service knows.
func ValidRole(role string) bool { return role == RoleUser || role == RoleAdmin }

// Sentinel errors. The HTTP layer maps each to one status and error code,
// all but ErrCredentialsChanged, which no use case returns.
var (
	ErrEmailTaken         = errors.New("email taken")
	ErrInvalidCredentials = errors.New("invalid credentials")
	ErrInvalidGrant       = errors.New("invalid grant")
	ErrInvalidToken       = errors.New("invalid token")
	ErrNoToken            = errors.New("no token")
	ErrForbidden          = errors.New("forbidden")
	ErrNotFound           = errors.New("not found")
	ErrUnavailable        = errors.New("service unavailable")
	// ErrCredentialsChanged is a store's answer to a change conditional on
	// credentials that are no longer current (a password changed, or every
	// session ended, since they were read). Use cases turn it into one of
	// the errors above.
	ErrCredentialsChanged = errors.New("credentials changed")
)

// UnavailableError is a dependency that cannot serve the request now (the
// database is down, restarting, read-only or does not answer in time): the
// client should try again later. Reason says which, in words a client may
// read; Err is the cause, for the log only. It matches ErrUnavailable.
type UnavailableError struct {
	Reason string
	Err    error
}

func (e *UnavailableError) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *UnavailableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnavailable) hold.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// ValidationError is a bad input, with what is wrong per field.
type ValidationError struct {
	Fields map[string]string
}

// Error is "invalid request: " and each field's problem, sorted by field.
func (e *ValidationError) Error() string {
	keys := slices.Sorted(maps.Keys(e.Fields))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %s", k, e.Fields[k]))
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// Invalid returns a *ValidationError for one field.
func Invalid(field, problem string) error {
	return &ValidationError{Fields: map[string]string{field: problem}}
}

// User is an account.
type User struct {
	ID           string
	Email        string
	Role         string
	CreatedAt    time.Time
	PasswordHash PasswordHash
	// SessionEpoch moves whenever every session of the user must end
	// (password change, logout everywhere): a login opens its session only
	// if the epoch it read is still current.
	SessionEpoch int64
	// EmailVerified says the address was verified (a verification, a reset
	// or a confirmed email change).
	EmailVerified bool
	// PendingEmail is the address an email change waits on ("" when none).
	PendingEmail string
	// PasswordDisabled is set by "this wasn't me": the password does not
	// work until a reset.
	PasswordDisabled bool
}

// NewUser is an account to create.
type NewUser struct {
	Email        string
	PasswordHash PasswordHash
	Now          time.Time
	// EmailKey is the keyed hash of the address the outbox's sender finds
	// the account by.
	EmailKey []byte
	// MustVerify marks an account created while EMAIL_VERIFICATION=required:
	// the purge deletes it when it is not verified within 7 days.
	MustVerify bool
	// Verification, when set, is queued with the account, in the same
	// transaction.
	Verification *MailIntent
}

// Session is one login: a family of refresh tokens.
type Session struct {
	ID         string
	UserID     string
	CreatedAt  time.Time
	LastUsedAt time.Time
	ExpiresAt  time.Time
	UserAgent  string
	IP         string
}

// Client describes who made a request, for sessions and the audit trail.
type Client struct {
	IP        string
	UserAgent string
	RequestID string
}

// TokenPair is what login and refresh return.
type TokenPair struct {
	AccessToken  string
	ExpiresIn    int
	RefreshToken string
	// RefreshExpiresIn is how many seconds the refresh token has left: what
	// is left of its session, or less when it expires unused before that
	// (the browser cookie's Max-Age).
	RefreshExpiresIn int
}

// Principal is the verified bearer of an access token.
type Principal struct {
	UserID    string
	SessionID string
	JTI       string
	Role      string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// ClientID is the token's client_id claim ("" in tokens of releases
	// before it: the built-in client's).
	ClientID string
	// User is the account read in the same query as the revocation check,
	// when that query ran (else zero: Me then looks it up); it holds no
	// password hash or session epoch.
	User User
}
