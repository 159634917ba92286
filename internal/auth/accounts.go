package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

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
	nu := NewUser{Email: email, PasswordHash: h, Now: s.now(), EmailKey: s.addressKey(email),
		MustVerify: s.cfg.Email.Verification == VerificationRequired}
	if s.cfg.Email.Verification != VerificationOff {
		m := s.intent(MailVerification, c)
		nu.Verification = &m
	}
	u, err := s.store.CreateUser(ctx, nu)
	if err != nil {
		return User{}, err
	}
	if nu.Verification != nil {
		s.wakeSender()
	}
	s.record(ctx, Event{Type: EventSignup, UserID: u.ID, Client: c})
	return u, nil
}

// Login checks a password and opens a session. The attempt is counted
// against the email's LOGIN_RATE_LIMIT before any hashing (only a check
// that said "wrong", or an unknown email, keeps its count), so that
// concurrent guesses evaluate at most the limit.
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
	u, evaluated, err := s.checkLogin(ctx, email, password, c)
	if err != nil {
		if !evaluated {
			s.release(ctx, a) // nothing was checked: no guess to count
		}
		return TokenPair{}, err
	}
	s.release(ctx, a) // the right password: not a failure
	if s.cfg.Email.Verification == VerificationRequired && !u.EmailVerified {
		// Only the holder of the password learns this; no session opens.
		s.metrics.Login("failed")
		s.record(ctx, Event{Type: EventLoginFailed, UserID: u.ID, Client: c, Detail: map[string]any{"reason": "email_not_verified"}})
		return TokenPair{}, ErrEmailNotVerified
	}
	if NeedsRehash(u.PasswordHash, s.cfg.Argon2) {
		s.rehash(ctx, &u, password)
	}
	runHook(s.hooks.beforeOpenSession)
	pair, sid, err := s.openSession(ctx, u, c)
	if errors.Is(err, ErrCredentialsChanged) {
		// The password changed, every session was ended, or the account was
		// deleted, between the check and now: the session this login
		// verified for is gone.
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

// checkLogin finds the account and checks its password; every failure
// costs the same (checkPassword). Returns ErrInvalidCredentials for an
// unknown email or a wrong password (evaluated: the attempt counts against
// the limit), or why nothing was checked (no hashing slot, the client gone).
func (s *Service) checkLogin(ctx context.Context, email, password string, c Client) (u User, evaluated bool, err error) {
	u, err = s.userForLogin(ctx, email)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return User{}, false, err
	}
	known := err == nil
	ok, evaluated, err := s.checkPassword(ctx, password, u.PasswordHash)
	switch {
	case err != nil:
		return User{}, false, err
	case ok && !u.PasswordDisabled:
		return u, true, nil
	}
	s.metrics.Login("failed")
	if ok { // right, but stopped by "this wasn't me" until a reset
		s.record(ctx, Event{Type: EventLoginFailed, UserID: u.ID, Client: c, Detail: map[string]any{"reason": "password_disabled"}})
	} else if known {
		s.record(ctx, Event{Type: EventLoginFailed, UserID: u.ID, Client: c, Detail: map[string]any{"reason": "wrong_password"}})
	} else {
		s.record(ctx, Event{Type: EventLoginFailed, Client: c, Detail: map[string]any{"reason": "unknown_email"}})
	}
	return User{}, evaluated, ErrInvalidCredentials
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

// Me returns the caller's account: from the revocation check's query when
// that ran, else from the user cache while the revocation state is synced,
// else from the database. Returns ErrInvalidToken (the account is gone).
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

// ChangePassword replaces the caller's password after checking the current
// one, ends every other session of the caller and queues a "your password
// was changed" notice (with its "this wasn't me" link). Wrong current passwords
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
	notice := s.intent(MailPasswordChanged, c)
	notice.UserID = u.ID
	ended, err := s.store.ChangePassword(ctx, u.ID, u.SessionEpoch, h, p.SessionID, now, notice)
	if errors.Is(err, ErrCredentialsChanged) {
		return ErrInvalidCredentials // changed meanwhile: the current password is no longer current
	}
	if err != nil {
		return err
	}
	s.wakeSender()
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
	if errors.Is(err, ErrNotFound) {
		s.release(ctx, a)
		return User{}, ErrInvalidToken
	}
	if err != nil {
		s.release(ctx, a)
		return User{}, err
	}
	ok, evaluated, err := s.checkPassword(ctx, password, u.PasswordHash)
	if ok && !u.PasswordDisabled {
		s.release(ctx, a) // the right password: not a failure
		return u, nil
	}
	if !evaluated {
		s.release(ctx, a)
		return User{}, err
	}
	s.record(ctx, Event{Type: EventPasswordChangeFailed, UserID: u.ID, SessionID: p.SessionID, Client: c,
		Detail: map[string]any{"reason": "wrong_password"}})
	return User{}, ErrInvalidCredentials // the reservation stays: a failure
}
