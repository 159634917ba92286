package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acme/accounts/internal/auth"
)

type userRow struct {
	ID           string    `db:"id"`
	Email        string    `db:"email"`
	Role         string    `db:"role"`
	CreatedAt    time.Time `db:"created_at"`
	PasswordHash string    `db:"password_hash"`
}

func (r userRow) user() auth.User {
	return auth.User{ID: r.ID, Email: r.Email, Role: r.Role, CreatedAt: r.CreatedAt.UTC(), PasswordHash: r.PasswordHash}
}

const userColumns = `id::text, email, role, created_at, password_hash`

const createUser = `
INSERT INTO users (email, password_hash, created_at, updated_at)
VALUES ($1, $2, $3, $3)
RETURNING ` + userColumns

// CreateUser stores a new user. Returns auth.ErrEmailTaken.
func (s *Store) CreateUser(ctx context.Context, email, passwordHash string, now time.Time) (auth.User, error) {
	rows, _ := s.pool.Query(ctx, createUser, email, passwordHash, now)
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

const updatePasswordHash = `UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1`

// UpdatePasswordHash replaces a user's hash.
func (s *Store) UpdatePasswordHash(ctx context.Context, userID, hash string, now time.Time) error {
	if _, err := s.pool.Exec(ctx, updatePasswordHash, userID, hash, now); err != nil {
		return fmt.Errorf("store: update password hash: %w", err)
	}
	return nil
}

// changePassword sets the hash and ends every other session in one statement.
const changePassword = `
WITH u AS (
    UPDATE users SET password_hash = $2, updated_at = $4 WHERE id = $1 RETURNING id
), s AS (
    UPDATE sessions SET ended_at = $4
     WHERE user_id IN (SELECT id FROM u) AND id <> $3 AND ended_at IS NULL
    RETURNING id
), t AS (
    UPDATE refresh_tokens SET spent_at = $4
     WHERE session_id IN (SELECT id FROM s) AND spent_at IS NULL
)
SELECT id::text FROM s`

// ChangePassword replaces the hash and ends the user's other sessions,
// returning the ids of the sessions it ended.
func (s *Store) ChangePassword(ctx context.Context, userID, hash, keepSessionID string, now time.Time) ([]string, error) {
	rows, _ := s.pool.Query(ctx, changePassword, userID, hash, keepSessionID, now)
	ended, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: change password: %w", err)
	}
	return ended, nil
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
