package auth

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
)

// openSession opens a session for u, conditional on u's session epoch
// being still current, and ends the sessions past the cap.
// Returns ErrCredentialsChanged.
func (s *Service) openSession(ctx context.Context, u User, c Client) (TokenPair, string, error) {
	rt, err := newSecret()
	if err != nil {
		return TokenPair{}, "", err
	}
	now := s.now()
	sid := uuid.NewString()
	text := rt.legacyText()
	if !s.cfg.LegacyRefreshTokens {
		if text, err = rt.sessionText(sid); err != nil {
			return TokenPair{}, "", err
		}
	}
	expires := now.Add(s.cfg.SessionMaxAge)
	refreshExp := now.Add(s.cfg.RefreshTTL)
	if refreshExp.After(expires) {
		refreshExp = expires
	}
	ended, err := s.store.CreateSession(ctx, NewSession{ID: sid, UserID: u.ID, ClientID: ClientAccounts, Epoch: u.SessionEpoch,
		MaxSessions: s.cfg.MaxSessions, Now: now, ExpiresAt: expires,
		RefreshHash: rt.Hash[:], RefreshExpiresAt: refreshExp, LegacyToken: s.cfg.LegacyRefreshTokens, Client: c})
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
	s.sessionClients.put(sid, ClientAccounts)
	pair, err := s.pair(ClientAccounts, u.ID, sid, u.Role, text, refreshExp)
	return pair, sid, err
}

// pair issues an access token that never outlives its session (notAfter),
// so that a token's session cannot expire under it. expires_in is the
// token's own exp − iat.
func (s *Service) pair(clientID, userID, sid, role, refresh string, notAfter time.Time) (TokenPair, error) {
	it, err := s.tokens.IssueFor(clientID, userID, sid, role, notAfter)
	if err != nil {
		return TokenPair{}, err
	}
	left := int(notAfter.Sub(s.now()) / time.Second)
	return TokenPair{AccessToken: it.Token, ExpiresIn: it.ExpiresIn(), RefreshToken: refresh, RefreshExpiresIn: left}, nil
}

// Refresh spends a refresh token of the built-in client's (the JSON API's
// /v1/token/refresh) and returns its successor. A format-2 token is
// settled on its session's row; a format-1 one through its own row, its
// session moved to format 2 on the way unless Config.LegacyRefreshTokens.
// Returns *ValidationError or ErrInvalidGrant.
func (s *Service) Refresh(ctx context.Context, token string, c Client) (TokenPair, error) {
	return s.refresh(ctx, ClientAccounts, token, c)
}

// refresh is a refresh by clientID: a token of another client's session
// is ErrInvalidGrant before anything is written.
func (s *Service) refresh(ctx context.Context, clientID, token string, c Client) (TokenPair, error) {
	if token == "" {
		return TokenPair{}, Invalid("refresh_token", "is required")
	}
	presented, ok := parseRefreshToken(token)
	if !ok {
		return TokenPair{}, ErrInvalidGrant
	}
	// Whose is it? Format-1 tokens are all the built-in client's (no other
	// client had sessions then); a session's client never changes.
	owner := ClientAccounts
	if !presented.legacy() {
		var err error
		if owner, err = s.sessionClient(ctx, presented.SessionID); errors.Is(err, ErrNotFound) {
			return TokenPair{}, ErrInvalidGrant
		} else if err != nil {
			return TokenPair{}, err
		}
	}
	if owner != clientID {
		s.metrics.Refresh(RotateInvalid)
		return TokenPair{}, ErrInvalidGrant
	}
	next, err := newSecret()
	if err != nil {
		return TokenPair{}, err
	}
	sealed, err := sealSuccessor(presented, next)
	if err != nil {
		return TokenPair{}, err
	}
	p := RotateParams{SessionID: presented.SessionID, Hash: presented.Hash[:], NewHash: next.Hash[:],
		SealedNew: sealed, Now: s.now(), Grace: s.cfg.ReuseGrace, TTL: s.cfg.RefreshTTL, Client: c}
	var res RotateResult
	if presented.legacy() {
		p.Convert = !s.cfg.LegacyRefreshTokens
		res, err = s.store.RotateLegacyToken(ctx, p)
	} else {
		res, err = s.store.RotateSessionToken(ctx, p)
		res.SessionID, res.OnSessionRow = presented.SessionID, true
	}
	if err != nil {
		return TokenPair{}, err
	}
	s.metrics.Refresh(res.Outcome)
	if res.Outcome == RotateRotated || res.Outcome == RotateGrace {
		s.sessions.put(res.SessionID, res.UserID)
	}
	switch res.Outcome {
	case RotateRotated:
		return s.refreshPair(clientID, res, next)
	case RotateGrace:
		succ, err := openSuccessor(presented, res.Sealed)
		if err != nil {
			return TokenPair{}, ErrInvalidGrant
		}
		return s.refreshPair(clientID, res, succ)
	case RotateReuse:
		s.revoke(Revocation{Kind: EndedSession, ID: res.SessionID, At: s.now()})
		s.record(ctx, Event{Type: EventRefreshReuse, UserID: res.UserID, SessionID: res.SessionID, Client: c,
			Detail: map[string]any{"session_ended": true}})
		return TokenPair{}, ErrInvalidGrant
	default:
		return TokenPair{}, ErrInvalidGrant
	}
}

// refreshPair is pair for a rotation, with the successor in its format: a
// session whose end is less than a second away gets no token that would be
// dead on arrival.
func (s *Service) refreshPair(clientID string, res RotateResult, successor refreshToken) (TokenPair, error) {
	text := successor.legacyText()
	if res.OnSessionRow {
		var err error
		if text, err = successor.sessionText(res.SessionID); err != nil {
			return TokenPair{}, err
		}
	}
	pair, err := s.pair(clientID, res.UserID, res.SessionID, res.Role, text, res.ExpiresAt)
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

// LogoutByRefreshToken ends the session of a live refresh token of the
// built-in client's (the browser cookie's). Anything else (unknown,
// already dead, another client's) is left alone: logging out is done.
func (s *Service) LogoutByRefreshToken(ctx context.Context, token string, c Client) error {
	owner, ended, err := s.endSessionOf(ctx, ClientAccounts, token)
	if err != nil || !ended {
		return err
	}
	s.record(ctx, Event{Type: EventLogout, UserID: owner.UserID, SessionID: owner.SessionID, Client: c})
	return nil
}

// endSessionOf ends the session of a live refresh token of clientID's,
// reporting whether it ended one.
func (s *Service) endSessionOf(ctx context.Context, clientID, token string) (SessionOwner, bool, error) {
	rt, ok := parseRefreshToken(token)
	if !ok {
		return SessionOwner{}, false, nil
	}
	owner, err := s.store.RefreshTokenSession(ctx, rt.SessionID, rt.Hash[:])
	if errors.Is(err, ErrNotFound) || err == nil && owner.ClientID != clientID {
		return SessionOwner{}, false, nil
	}
	if err != nil {
		return SessionOwner{}, false, err
	}
	now := s.now()
	if err := s.store.EndSession(ctx, owner.UserID, owner.SessionID, now); errors.Is(err, ErrNotFound) {
		return SessionOwner{}, false, nil // ended meanwhile
	} else if err != nil {
		return SessionOwner{}, false, err
	}
	s.revoke(Revocation{Kind: EndedSession, ID: owner.SessionID, At: now})
	return owner, true, nil
}

// LogoutAll ends every session of the caller and revokes every access token
// issued so far. Returns ErrNotFound (the account is gone).
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
