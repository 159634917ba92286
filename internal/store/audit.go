package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/acme/accounts/internal/auth"
)

const recordEvent = `
INSERT INTO audit_events (created_at, event, user_id, session_id, ip, user_agent, request_id, detail)
VALUES ($1, $2, (SELECT id FROM users WHERE id = $3::uuid), $4::uuid, $5, $6, $7, $8)`

// RecordEvent appends one event to audit_events. A user id that no longer
// exists is stored as NULL rather than failing the write.
func (s *Store) RecordEvent(ctx context.Context, e auth.Event) error {
	detail := e.Detail
	if detail == nil {
		detail = map[string]any{}
	}
	_, err := s.pool.Exec(ctx, recordEvent, e.At, e.Type, nullable(e.UserID), nullable(e.SessionID),
		e.Client.IP, e.Client.UserAgent, e.Client.RequestID, detail)
	if err != nil {
		return fmt.Errorf("store: record event: %w", err)
	}
	return nil
}

type eventRow struct {
	ID        int64          `db:"id"`
	CreatedAt time.Time      `db:"created_at"`
	Event     string         `db:"event"`
	UserID    string         `db:"user_id"`
	SessionID string         `db:"session_id"`
	IP        string         `db:"ip"`
	UserAgent string         `db:"user_agent"`
	RequestID string         `db:"request_id"`
	Detail    map[string]any `db:"detail"`
}

const listEvents = `
SELECT id, created_at, event, coalesce(user_id::text, '') AS user_id, coalesce(session_id::text, '') AS session_id,
       ip, user_agent, request_id, detail
  FROM audit_events
 WHERE ($1::uuid IS NULL OR user_id = $1) AND ($2::bigint = 0 OR id < $2)
 ORDER BY id DESC
 LIMIT $3`

// ListEvents pages audit events newest first, for one user or (userID "") all.
func (s *Store) ListEvents(ctx context.Context, userID string, beforeID int64, limit int) ([]auth.Event, error) {
	rows, _ := s.pool.Query(ctx, listEvents, nullable(userID), beforeID, limit)
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[eventRow])
	if err != nil {
		return nil, fmt.Errorf("store: list events: %w", err)
	}
	out := make([]auth.Event, len(rs))
	for i, r := range rs {
		out[i] = auth.Event{ID: r.ID, At: r.CreatedAt.UTC(), Type: r.Event, UserID: r.UserID, SessionID: r.SessionID,
			Client: auth.Client{IP: r.IP, UserAgent: r.UserAgent, RequestID: r.RequestID}, Detail: r.Detail}
	}
	return out, nil
}

const purgeEvents = `
DELETE FROM audit_events WHERE id IN (
    SELECT id FROM audit_events WHERE created_at < $1 ORDER BY id LIMIT $2)`

// PurgeEvents deletes up to batch audit events older than before.
func (s *Store) PurgeEvents(ctx context.Context, before time.Time, batch int) (int64, error) {
	tag, err := s.pool.Exec(ctx, purgeEvents, before, batch)
	if err != nil {
		return 0, fmt.Errorf("store: purge events: %w", err)
	}
	return tag.RowsAffected(), nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Purge batches: bounded so that one pass never holds locks for long.
const (
	purgeRevoked = `
DELETE FROM revoked_tokens WHERE jti IN (
    SELECT jti FROM revoked_tokens WHERE expires_at < $1 LIMIT $2)`
	purgeRefreshTokens = `
DELETE FROM refresh_tokens WHERE hash IN (
    SELECT hash FROM refresh_tokens WHERE expires_at < $1 LIMIT $2)`
	purgeRateLimits = `
DELETE FROM rate_limits WHERE key IN (
    SELECT key FROM rate_limits WHERE window_end < $1 LIMIT $2)`
	purgeSessions = `
DELETE FROM sessions WHERE id IN (
    SELECT id FROM sessions WHERE coalesce(ended_at, expires_at) < $1 LIMIT $2)`
)

// sessionKeep is how long an ended or expired session stays listed in the
// database (not in the API) before it is purged with its tokens.
const sessionKeep = 7 * 24 * time.Hour

// Purge deletes up to batch expired rows from each table it cleans and
// returns how many it deleted in all: revoked jtis past their token's
// expiry, refresh tokens past theirs, ended rate-limit windows, and
// sessions over for a week.
func (s *Store) Purge(ctx context.Context, now time.Time, batch int) (int64, error) {
	return purge(ctx, s.pool, now, batch)
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func purge(ctx context.Context, db execer, now time.Time, batch int) (int64, error) {
	var total int64
	for _, q := range []struct {
		sql    string
		before time.Time
	}{
		{purgeRevoked, now},
		{purgeRefreshTokens, now},
		{purgeRateLimits, now},
		{purgeSessions, now.Add(-sessionKeep)},
	} {
		tag, err := db.Exec(ctx, q.sql, q.before, batch)
		if err != nil {
			return total, fmt.Errorf("store: purge: %w", err)
		}
		total += tag.RowsAffected()
	}
	return total, nil
}

// jobLock is the advisory lock that lets one instance at a time purge. It
// is transaction-scoped, so it works through PgBouncer in transaction mode.
const jobLock = `SELECT pg_try_advisory_xact_lock(hashtext('accounts.purge'))`

// PurgeExclusive runs one bounded batch of every purge (expired rows, and
// audit events before auditBefore) in one transaction, if no other
// instance is purging: ran is false when another instance holds the lock.
func (s *Store) PurgeExclusive(ctx context.Context, now, auditBefore time.Time, batch int) (n int64, ran bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, jobLock).Scan(&ran); err != nil || !ran {
			return err
		}
		if n, err = purge(ctx, tx, now, batch); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, purgeEvents, auditBefore, batch)
		n += tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("store: purge: %w", err)
	}
	return n, ran, nil
}
