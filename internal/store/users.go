package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acme/accounts/internal/auth"
)

type userRow struct {
	ID               string    `db:"id"`
	Email            string    `db:"email"`
	Role             string    `db:"role"`
	CreatedAt        time.Time `db:"created_at"`
	PasswordHash     string    `db:"password_hash"`
	SessionEpoch     int64     `db:"session_epoch"`
	EmailVerified    bool      `db:"email_verified"`
	PendingEmail     *string   `db:"pending_email"`
	PasswordDisabled bool      `db:"password_disabled"`
}

func (r userRow) user() auth.User {
	u := auth.User{ID: r.ID, Email: r.Email, Role: r.Role, CreatedAt: r.CreatedAt.UTC(),
		PasswordHash: auth.PasswordHash(r.PasswordHash), SessionEpoch: r.SessionEpoch,
		EmailVerified: r.EmailVerified, PasswordDisabled: r.PasswordDisabled}
	if r.PendingEmail != nil {
		u.PendingEmail = *r.PendingEmail
	}
	return u
}

const userColumns = `id::text, email, role, created_at, password_hash, session_epoch,
       email_verified_at IS NOT NULL AS email_verified, pending_email,
       password_disabled_at IS NOT NULL AS password_disabled`

// createUser stores the account and, when $6 is not null, the intent of
// its verification mail, in one statement.
const createUser = `
WITH u AS (
    INSERT INTO users (email, password_hash, created_at, updated_at, email_key, must_verify)
    VALUES ($1, $2, $3, $3, $4, $5)
    RETURNING ` + userColumns + `
), m AS (
    INSERT INTO email_outbox (kind, user_id, ip, request_id, created_at, next_attempt_at, message_id)
    SELECT 'verification', u.id::uuid, $7, $8, $3, $3, $6 FROM u WHERE $6::text IS NOT NULL
)
SELECT * FROM u`

// CreateUser stores a new user (and queues its verification mail when
// u.Verification is set). Returns auth.ErrEmailTaken.
func (s *Store) CreateUser(ctx context.Context, u auth.NewUser) (auth.User, error) {
	var msgID *string
	if u.Verification != nil {
		msgID = &u.Verification.MessageID
	}
	var ip, reqID string
	if u.Verification != nil {
		ip, reqID = u.Verification.Client.IP, u.Verification.Client.RequestID
	}
	// string(): the hash's own formatting is redacted, and pgx would use it.
	rows, _ := s.pool.Query(ctx, createUser, u.Email, string(u.PasswordHash), u.Now, u.EmailKey, u.MustVerify,
		msgID, ip, reqID)
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[userRow])
	if isUnique(err, "users_email_key") {
		return auth.User{}, auth.ErrEmailTaken
	}
	if err != nil {
		return auth.User{}, fmt.Errorf("store: create user: %w", err)
	}
	return r.user(), nil
}

const userByEmail = `SELECT ` + userColumns + ` FROM users WHERE lower(email) = lower($1)`

// UserByEmail returns auth.ErrNotFound.
func (s *Store) UserByEmail(ctx context.Context, email string) (auth.User, error) {
	rows, _ := s.pool.Query(ctx, userByEmail, email)
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[userRow])
	if err != nil {
		return auth.User{}, fmt.Errorf("store: user by email: %w", notFound(err))
	}
	return r.user(), nil
}

const userByID = `SELECT ` + userColumns + ` FROM users WHERE id = $1`

// UserByID returns auth.ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (auth.User, error) {
	rows, _ := s.pool.Query(ctx, userByID, id)
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[userRow])
	if err != nil {
		return auth.User{}, fmt.Errorf("store: user by id: %w", notFound(err))
	}
	return r.user(), nil
}

const rehashPassword = `
UPDATE users SET password_hash = $3, updated_at = $4 WHERE id = $1 AND password_hash = $2`

// RehashPassword replaces the hash oldHash with newHash (the same password
// under the current parameters), and only that hash: a password changed
// since oldHash was verified stays as it is. It reports whether it replaced it.
func (s *Store) RehashPassword(ctx context.Context, userID string, oldHash, newHash auth.PasswordHash, now time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, rehashPassword, userID, string(oldHash), string(newHash), now)
	if err != nil {
		return false, fmt.Errorf("store: rehash password: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// changePassword sets the hash if the session epoch is the one the current
// password was checked under, and bumps it, holding the user's row lock
// until commit.
const changePassword = `
UPDATE users SET password_hash = $3, session_epoch = session_epoch + 1, updated_at = $4
 WHERE id = $1 AND session_epoch = $2
RETURNING id`

// ChangePassword sets newHash and ends every session of the user but
// keepSessionID, if the user's session epoch is still epoch, returning the
// ids of the sessions it ended, and queues notice, in one transaction.
// Returns auth.ErrCredentialsChanged when the epoch moved.
func (s *Store) ChangePassword(ctx context.Context, userID string, epoch int64, newHash auth.PasswordHash, keepSessionID string, now time.Time, notice auth.MailIntent) ([]string, error) {
	then := func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, recordMailIntent, intentArgs(notice)...)
		return err
	}
	return s.endSessionsAfterThen(ctx, "change password", auth.ErrCredentialsChanged, keepSessionID, now, then,
		changePassword, userID, epoch, string(newHash), now)
}

// passwordParams lists the distinct parameter fields of the stored hashes,
// one index probe each (a loose scan of users_password_params_idx).
const passwordParams = `
WITH RECURSIVE p AS (
    SELECT min(split_part(password_hash, '$', 4)) AS v FROM users
    UNION ALL
    SELECT (SELECT min(split_part(u.password_hash, '$', 4)) FROM users u
             WHERE split_part(u.password_hash, '$', 4) > p.v)
      FROM p WHERE p.v IS NOT NULL
)
SELECT v FROM p WHERE v IS NOT NULL LIMIT 64`

// PasswordParams lists the distinct parameter fields ("m=…,t=…,p=…") of
// the stored password hashes.
func (s *Store) PasswordParams(ctx context.Context) ([]string, error) {
	rows, _ := s.pool.Query(ctx, passwordParams)
	params, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: password params: %w", err)
	}
	return params, nil
}

// endSessionsAfter runs change, a statement that updates one user's row
// (taking its lock) and returns the user's id, then ends every session of
// that user but keepSessionID, in one transaction, and returns the ids of
// the sessions it ended. A change that matches no row returns none.
func (s *Store) endSessionsAfter(ctx context.Context, op string, none error, keepSessionID string, now time.Time,
	change string, args ...any) ([]string, error) {
	return s.endSessionsAfterThen(ctx, op, none, keepSessionID, now, nil, change, args...)
}

// endSessionsAfterThen is endSessionsAfter running then, when not nil, in
// the same transaction after the sessions ended.
func (s *Store) endSessionsAfterThen(ctx context.Context, op string, none error, keepSessionID string, now time.Time,
	then func(pgx.Tx) error, change string, args ...any) ([]string, error) {
	var ended []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var userID string
		if err := tx.QueryRow(ctx, change, args...).Scan(&userID); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return none
			}
			return err
		}
		var err error
		if ended, err = endUserSessions(ctx, tx, userID, keepSessionID, now); err != nil || then == nil {
			return err
		}
		return then(tx)
	})
	if errors.Is(err, none) {
		return nil, none
	}
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	return ended, nil
}

// endSessions ends every live session of a user but one (when $3 is not
// null) and spends their refresh tokens. Run it after the statement that
// took the user's row lock, in the same transaction: as a statement of its
// own it sees every session committed before that lock was granted, so a
// login that won the lock first is ended too.
const endSessions = `
WITH s AS (
    UPDATE sessions SET ended_at = $2
     WHERE user_id = $1 AND ended_at IS NULL AND expires_at > $2 AND ($3::uuid IS NULL OR id <> $3::uuid)
    RETURNING id
), t AS (
    UPDATE refresh_tokens SET spent_at = $2
     WHERE session_id IN (SELECT id FROM s) AND spent_at IS NULL
)
SELECT coalesce(array_agg(id::text), '{}') FROM s`

func endUserSessions(ctx context.Context, tx pgx.Tx, userID, keepSessionID string, now time.Time) ([]string, error) {
	var ended []string
	err := tx.QueryRow(ctx, endSessions, userID, now, nullable(keepSessionID)).Scan(&ended)
	return ended, err
}

const listUsersFirst = `
SELECT ` + userColumns + ` FROM users ORDER BY created_at, id LIMIT $1`

const listUsersAfter = `
SELECT ` + userColumns + ` FROM users
 WHERE (created_at, id) > ($2, $3::uuid)
 ORDER BY created_at, id LIMIT $1`

// ListUsers pages users by (created_at, id).
func (s *Store) ListUsers(ctx context.Context, after *auth.UserCursor, limit int) ([]auth.User, error) {
	var rows pgx.Rows
	if after == nil {
		rows, _ = s.pool.Query(ctx, listUsersFirst, limit)
	} else {
		rows, _ = s.pool.Query(ctx, listUsersAfter, limit, after.CreatedAt, after.ID)
	}
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[userRow])
	if err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	out := make([]auth.User, len(rs))
	for i, r := range rs {
		out[i] = r.user()
	}
	return out, nil
}

const setRole = `
UPDATE users SET role = $2, updated_at = $3 WHERE lower(email) = lower($1)
RETURNING ` + userColumns

// SetRole returns auth.ErrNotFound.
func (s *Store) SetRole(ctx context.Context, email, role string, now time.Time) (auth.User, error) {
	rows, _ := s.pool.Query(ctx, setRole, email, role, now)
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[userRow])
	if err != nil {
		return auth.User{}, fmt.Errorf("store: set role: %w", notFound(err))
	}
	return r.user(), nil
}
