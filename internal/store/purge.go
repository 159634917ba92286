package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

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
	purgeEvents = `
DELETE FROM audit_events WHERE id IN (
    SELECT id FROM audit_events WHERE created_at < $1 ORDER BY id LIMIT $2)`
	purgeOneTimeTokens = `
DELETE FROM one_time_tokens WHERE id IN (
    SELECT id FROM one_time_tokens WHERE coalesce(used_at, expires_at) < $1 LIMIT $2)`
	// Finished mails, and mails no sender ever took (no instance has
	// SMTP_URL) once even the longest-lived token would be over.
	purgeOutbox = `
DELETE FROM email_outbox WHERE id IN (
    SELECT id FROM email_outbox WHERE status <> 'pending' AND finished_at < $1
    UNION ALL
    SELECT id FROM email_outbox WHERE status = 'pending' AND created_at < $1 - interval '7 days'
    LIMIT $2)`
	// Accounts created while EMAIL_VERIFICATION=required and never
	// verified; no other account is ever deleted by the purge.
	purgeUnverified = `
DELETE FROM users WHERE id IN (
    SELECT id FROM users WHERE must_verify AND email_verified_at IS NULL AND created_at < $1 LIMIT $2)`
)

// unverifiedKeep is how long an account created while verification is
// required may stay unverified before the purge deletes it.
const unverifiedKeep = 7 * 24 * time.Hour

// outboxKeep is how long a finished mail stays in the outbox (for an
// operator looking into a delivery) before it is purged.
const outboxKeep = 24 * time.Hour

// sessionKeep is how long a session stays in the database (never listed by
// the API) after it ended or reached expires_at (SESSION_MAX_AGE) before it
// is purged with its tokens; an idle-expired one waits for expires_at.
const sessionKeep = 7 * 24 * time.Hour

// purge deletes up to batch expired rows from each table it cleans and
// returns how many it deleted in all: revoked jtis past their token's
// expiry, refresh tokens past theirs, ended rate-limit windows, sessions
// ended or past expires_at for sessionKeep, audit events older than
// auditBefore, spent and expired one-time tokens, mails finished for
// outboxKeep, and accounts created while EMAIL_VERIFICATION=required that
// were not verified within unverifiedKeep.
func purge(ctx context.Context, db pgx.Tx, now, auditBefore time.Time, batch int) (int64, error) {
	var total int64
	for _, q := range []struct {
		sql    string
		before time.Time
	}{
		// Sessions before refresh tokens: the order every statement that
		// ends sessions locks them in (session, then its tokens), so the
		// purge cannot deadlock with a logout-all or a rotation.
		{purgeSessions, now.Add(-sessionKeep)},
		{purgeRefreshTokens, now},
		{purgeRevoked, now},
		{purgeRateLimits, now},
		{purgeEvents, auditBefore},
		{purgeOneTimeTokens, now},
		{purgeOutbox, now.Add(-outboxKeep)},
		{purgeUnverified, now.Add(-unverifiedKeep)},
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
		n, err = purge(ctx, tx, now, auditBefore, batch)
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("store: purge: %w", err)
	}
	return n, ran, nil
}
