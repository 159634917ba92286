package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acme/accounts/internal/auth"
)

// lockUser takes the user's row lock for a login: logins of one user,
// password changes and logouts of all sessions serialise on it.
const lockUser = `SELECT session_epoch FROM users WHERE id = $1 FOR NO KEY UPDATE`

// createSession stores a session with its first refresh token on its row
// (format 2).
const createSession = `
INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, idle_expires_at, user_agent, ip, rt_hash, client_id)
VALUES ($1, $2, $3, $3, $4, $6, $7, $8, $5, $9)`

// createLegacySession stores a session and its first refresh token in a
// row of its own (format 1).
const createLegacySession = `
WITH s AS (
    INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, idle_expires_at, user_agent, ip, client_id)
    VALUES ($1, $2, $3, $3, $4, $6, $7, $8, $9)
    RETURNING id
)
INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at)
SELECT $5, id, $3, $6 FROM s`

// lockLiveSessions locks the user's live sessions, waiting for any
// rotation in flight: the next statement (a new snapshot) then ranks them
// by their last use as it is.
const lockLiveSessions = `SELECT 1 FROM sessions WHERE user_id = $1 AND ended_at IS NULL FOR UPDATE`

// endLeastRecentlyUsed ends the user's live sessions, but the new one ($4),
// past the $3 - 1 most recently used, and spends their refresh tokens.
const endLeastRecentlyUsed = `
WITH s AS (
    UPDATE sessions SET ended_at = $2
     WHERE id IN (SELECT id FROM sessions
                   WHERE user_id = $1 AND id <> $4 AND ` + activeSession + `
                   ORDER BY last_used_at DESC, created_at DESC
                  OFFSET $3 - 1)
    RETURNING id
), t AS (
    UPDATE refresh_tokens SET spent_at = $2
     WHERE session_id IN (SELECT id FROM s) AND spent_at IS NULL
)
SELECT coalesce(array_agg(id::text), '{}') FROM s`

// CreateSession stores a session and its first refresh token, if the
// user's session epoch is still n.Epoch (no password change or logout of
// every session since the login read the user), and then ends the user's
// least recently used sessions past n.MaxSessions (when not 0). It returns
// the ids of the sessions it ended. Returns auth.ErrCredentialsChanged when
// the epoch moved, auth.ErrNotFound when the user is gone.
func (s *Store) CreateSession(ctx context.Context, n auth.NewSession) ([]string, error) {
	var ended []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var epoch int64
		if err := tx.QueryRow(ctx, lockUser, n.UserID).Scan(&epoch); err != nil {
			return notFound(err)
		}
		if epoch != n.Epoch {
			return auth.ErrCredentialsChanged
		}
		if n.MaxSessions > 0 {
			// Lock order: the user, then sessions (as logout-all); a
			// rotation locks only its session and never waits for a user.
			if _, err := tx.Exec(ctx, lockLiveSessions, n.UserID); err != nil {
				return err
			}
		}
		insert := createSession
		if n.LegacyToken {
			insert = createLegacySession
		}
		clientID := n.ClientID
		if clientID == "" {
			clientID = auth.ClientAccounts
		}
		if _, err := tx.Exec(ctx, insert, n.ID, n.UserID, n.Now, n.ExpiresAt, n.RefreshHash,
			n.RefreshExpiresAt, n.Client.UserAgent, n.Client.IP, clientID); err != nil {
			return err
		}
		if n.MaxSessions > 0 {
			return tx.QueryRow(ctx, endLeastRecentlyUsed, n.UserID, n.Now, n.MaxSessions, n.ID).Scan(&ended)
		}
		return nil
	})
	if errors.Is(err, auth.ErrCredentialsChanged) || errors.Is(err, auth.ErrNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("store: create session: %w", err)
	}
	return ended, nil
}

const rotateSessionToken = `
SELECT outcome::text, user_id::text, role, sealed, expires_at
  FROM rotate_session_token($1, $2, $3, $4, $5, $6, $7, $8, $9)`

// RotateSessionToken runs the format-2 rotation function: one round trip,
// one update of the session's row for a live token (see
// migrations/000007_session_tokens.up.sql).
func (s *Store) RotateSessionToken(ctx context.Context, p auth.RotateParams) (auth.RotateResult, error) {
	var res auth.RotateResult
	var outcome string
	var uid, role *string
	var exp *time.Time
	err := s.pool.QueryRow(ctx, rotateSessionToken, p.SessionID, p.Hash, p.NewHash, p.SealedNew, p.Now,
		p.Grace, p.TTL, p.Client.IP, p.Client.UserAgent).Scan(&outcome, &uid, &role, &res.Sealed, &exp)
	if err != nil {
		return auth.RotateResult{}, fmt.Errorf("store: rotate session token: %w", err)
	}
	return finishRotation(res, outcome, nil, uid, role, exp)
}

const rotateLegacyToken = `
SELECT outcome::text, session_id::text, user_id::text, role, sealed, expires_at, on_session_row
  FROM rotate_legacy_token($1, $2, $3, $4, $5, $6, $7, $8, $9)`

// RotateLegacyToken runs the format-1 rotation function: one round trip,
// settled under the session's row lock; with p.Convert the session moves
// to format 2.
func (s *Store) RotateLegacyToken(ctx context.Context, p auth.RotateParams) (auth.RotateResult, error) {
	var res auth.RotateResult
	var outcome string
	var sid, uid, role *string
	var exp *time.Time
	err := s.pool.QueryRow(ctx, rotateLegacyToken, p.Hash, p.NewHash, p.SealedNew, p.Now,
		p.Grace, p.TTL, p.Client.IP, p.Client.UserAgent, p.Convert).Scan(&outcome, &sid, &uid, &role, &res.Sealed, &exp,
		&res.OnSessionRow)
	if err != nil {
		return auth.RotateResult{}, fmt.Errorf("store: rotate legacy token: %w", err)
	}
	return finishRotation(res, outcome, sid, uid, role, exp)
}

// finishRotation reads a rotation function's nullable columns into res.
func finishRotation(res auth.RotateResult, outcome string, sid, uid, role *string, exp *time.Time) (auth.RotateResult, error) {
	var ok bool
	if res.Outcome, ok = rotationOutcomes[outcome]; !ok {
		return auth.RotateResult{}, fmt.Errorf("store: rotation: unknown outcome %q", outcome)
	}
	if sid != nil {
		res.SessionID = *sid
	}
	res.UserID, res.Role = deref(uid), deref(role)
	if exp != nil {
		res.ExpiresAt = *exp
	}
	return res, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

type sessionRow struct {
	ID         string    `db:"id"`
	UserID     string    `db:"user_id"`
	CreatedAt  time.Time `db:"created_at"`
	LastUsedAt time.Time `db:"last_used_at"`
	ExpiresAt  time.Time `db:"expires_at"`
	UserAgent  string    `db:"user_agent"`
	IP         string    `db:"ip"`
}

// activeSession is the one definition of a live session.
const activeSession = `ended_at IS NULL AND expires_at > $2 AND idle_expires_at > $2`

const listSessions = `
SELECT id::text, user_id::text, created_at, last_used_at, least(expires_at, idle_expires_at) AS expires_at,
       user_agent, ip
  FROM sessions
 WHERE user_id = $1 AND ` + activeSession + `
 ORDER BY created_at DESC, id`

// ListSessions returns the user's active sessions, newest first. Its
// expires_at is when the session ends unless it is refreshed.
func (s *Store) ListSessions(ctx context.Context, userID string, now time.Time) ([]auth.Session, error) {
	rows, _ := s.pool.Query(ctx, listSessions, userID, now)
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[sessionRow])
	if err != nil {
		return nil, fmt.Errorf("store: list sessions: %w", err)
	}
	out := make([]auth.Session, len(rs))
	for i, r := range rs {
		out[i] = auth.Session{ID: r.ID, UserID: r.UserID, CreatedAt: r.CreatedAt.UTC(), LastUsedAt: r.LastUsedAt.UTC(),
			ExpiresAt: r.ExpiresAt.UTC(), UserAgent: r.UserAgent, IP: r.IP}
	}
	return out, nil
}

// endSession ends one live session and spends its live refresh token.
const endSession = `
WITH s AS (
    UPDATE sessions SET ended_at = $2
     WHERE id = $3 AND user_id = $1 AND ` + activeSession + `
    RETURNING id
), t AS (
    UPDATE refresh_tokens SET spent_at = $2
     WHERE session_id IN (SELECT id FROM s) AND spent_at IS NULL
)
SELECT count(*) FROM s`

// EndSession returns auth.ErrNotFound when sessionID is not a live session of userID.
func (s *Store) EndSession(ctx context.Context, userID, sessionID string, now time.Time) error {
	var n int
	if err := s.pool.QueryRow(ctx, endSession, userID, now, sessionID).Scan(&n); err != nil {
		return fmt.Errorf("store: end session: %w", err)
	}
	if n == 0 {
		return auth.ErrNotFound
	}
	return nil
}

const logout = `
WITH r AS (
    INSERT INTO revoked_tokens (jti, expires_at) VALUES ($2, $3)
    ON CONFLICT (jti) DO NOTHING
), s AS (
    UPDATE sessions SET ended_at = $4 WHERE id = $1 AND ended_at IS NULL
    RETURNING id
)
UPDATE refresh_tokens SET spent_at = $4
 WHERE session_id IN (SELECT id FROM s) AND spent_at IS NULL`

// Logout revokes jti and ends its session, in one statement.
func (s *Store) Logout(ctx context.Context, sessionID, jti string, jtiExpires, now time.Time) error {
	if _, err := s.pool.Exec(ctx, logout, sessionID, jti, jtiExpires, now); err != nil {
		return fmt.Errorf("store: logout: %w", err)
	}
	return nil
}

const logoutUser = `
UPDATE users SET logout_all_at = $2, session_epoch = session_epoch + 1 WHERE id = $1 RETURNING id`

// LogoutUser ends every session of the user and sets the cut-off before
// which the user's access tokens are revoked, returning the ids of the
// sessions it ended. The user's row is locked first, so a login that
// verified the password before this and commits after it opens nothing.
// Returns auth.ErrNotFound.
func (s *Store) LogoutUser(ctx context.Context, userID string, now time.Time) ([]string, error) {
	return s.endSessionsAfter(ctx, "logout user", auth.ErrNotFound, "", now, logoutUser, userID, now)
}

const accessState = `
SELECT u.id::text, u.email, u.role, u.created_at, u.email_verified_at IS NOT NULL, u.pending_email, u.logout_all_at,
       coalesce(s.ended_at IS NULL AND s.expires_at > $4 AND s.idle_expires_at > $4, false),
       EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = $3)
  FROM users u
  LEFT JOIN sessions s ON s.id = $2 AND s.user_id = u.id
 WHERE u.id = $1`

// AccessState reads, in one query, the user and what revokes a token.
// Returns auth.ErrNotFound when the user is gone.
func (s *Store) AccessState(ctx context.Context, userID, sessionID, jti string, now time.Time) (auth.AccessState, error) {
	var st auth.AccessState
	var pending *string
	err := s.pool.QueryRow(ctx, accessState, userID, sessionID, jti, now).Scan(
		&st.User.ID, &st.User.Email, &st.User.Role, &st.User.CreatedAt, &st.User.EmailVerified, &pending,
		&st.LogoutAllAt, &st.SessionActive, &st.Revoked)
	if err != nil {
		return auth.AccessState{}, fmt.Errorf("store: access state: %w", notFound(err))
	}
	if pending != nil {
		st.User.PendingEmail = *pending
	}
	st.User.CreatedAt = st.User.CreatedAt.UTC()
	return st, nil
}
