package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acme/accounts/internal/auth"
)

// The outbox of mail intents and the one-time tokens the sender makes
// (migrations/000008).

// outboxChannel is the NOTIFY channel of notify_outbox.
const outboxChannel = "accounts_outbox"

const recordMailIntent = `
INSERT INTO email_outbox (kind, address_key, user_id, detail, ip, request_id, created_at, next_attempt_at, message_id)
VALUES ($1, $2, $3::uuid, $4::jsonb, $5, $6, $7, $7, $8)`

func intentArgs(m auth.MailIntent) []any {
	return []any{string(m.Kind), m.AddressKey, nullable(m.UserID), jsonObject(m.Detail), m.Client.IP, m.Client.RequestID, m.Now, m.MessageID}
}

// jsonObject is a detail map as JSON text, for a $n::jsonb parameter (a Go
// map has no type pgx can send without the statement's description, which
// DATABASE_STATEMENT_CACHE=off does not fetch).
func jsonObject(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(m) // a map of strings always marshals
	return string(b)
}

// RecordMailIntent appends one intent to the outbox: one insert, whatever
// it is for.
func (s *Store) RecordMailIntent(ctx context.Context, m auth.MailIntent) error {
	if _, err := s.pool.Exec(ctx, recordMailIntent, intentArgs(m)...); err != nil {
		return fmt.Errorf("store: record mail intent: %w", err)
	}
	return nil
}

const setPendingEmail = `
UPDATE users SET pending_email = $2, updated_at = $3 WHERE id = $1 RETURNING id`

// spendPurpose spends every live token of a user and purpose (all purposes
// when $2 is null).
const spendPurpose = `
UPDATE one_time_tokens SET used_at = $3
 WHERE user_id = $1 AND ($2::text IS NULL OR purpose = $2) AND used_at IS NULL`

// SetPendingEmail records email as the user's pending address, spends the
// confirmations mailed for an earlier one, and queues intent, in one
// transaction. Returns auth.ErrNotFound.
func (s *Store) SetPendingEmail(ctx context.Context, userID, email string, intent auth.MailIntent) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id string
		if err := tx.QueryRow(ctx, setPendingEmail, userID, email, intent.Now).Scan(&id); err != nil {
			return notFound(err)
		}
		if _, err := tx.Exec(ctx, spendPurpose, userID, string(auth.PurposeEmailChange), intent.Now); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, recordMailIntent, intentArgs(intent)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: set pending email: %w", err)
	}
	return nil
}

const liveToken = `used_at IS NULL AND expires_at > $3`

const codeCandidates = `
SELECT id, user_id::text FROM one_time_tokens
 WHERE lower(address) = lower($1) AND purpose = $2 AND ` + liveToken + `
 ORDER BY id LIMIT 16`

// CodeCandidates lists the live issuances of purpose p mailed to email.
func (s *Store) CodeCandidates(ctx context.Context, p auth.Purpose, email string, now time.Time) ([]auth.CodeCandidate, error) {
	rows, _ := s.pool.Query(ctx, codeCandidates, email, string(p), now)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auth.CodeCandidate, error) {
		var c auth.CodeCandidate
		err := r.Scan(&c.ID, &c.UserID)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: code candidates: %w", err)
	}
	return out, nil
}

// countCodeGuess counts one guess against each live issuance that has
// guesses left, atomically per row: concurrent guesses can never evaluate
// more than $2 against one issuance.
const countCodeGuess = `
UPDATE one_time_tokens SET wrong_codes = wrong_codes + 1
 WHERE id = ANY($1) AND wrong_codes < $2 AND ` + liveToken + `
RETURNING id, user_id::text, code_hash`

// CountCodeGuess counts one guess against each of ids that is live and has
// fewer than max guesses counted, and returns those, with their code hashes.
func (s *Store) CountCodeGuess(ctx context.Context, ids []int64, max int, now time.Time) ([]auth.CountedGuess, error) {
	rows, _ := s.pool.Query(ctx, countCodeGuess, ids, max, now)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auth.CountedGuess, error) {
		var g auth.CountedGuess
		err := r.Scan(&g.ID, &g.UserID, &g.CodeHash)
		return g, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: count code guess: %w", err)
	}
	return out, nil
}

const spendExhausted = `
UPDATE one_time_tokens SET used_at = $3 WHERE id = ANY($1) AND wrong_codes >= $2 AND used_at IS NULL`

// SpendExhausted spends those of ids that have max wrong guesses counted.
func (s *Store) SpendExhausted(ctx context.Context, ids []int64, max int, now time.Time) error {
	if _, err := s.pool.Exec(ctx, spendExhausted, ids, max, now); err != nil {
		return fmt.Errorf("store: spend exhausted tokens: %w", err)
	}
	return nil
}

const tokenAddress = `
SELECT address FROM one_time_tokens WHERE link_hash = $1 AND purpose = $2 AND ` + liveToken

// TokenAddress reads the address a live link token was mailed to, spending
// nothing. Returns auth.ErrNotFound.
func (s *Store) TokenAddress(ctx context.Context, p auth.Purpose, linkHash []byte, now time.Time) (string, error) {
	var a string
	if err := s.pool.QueryRow(ctx, tokenAddress, linkHash, string(p), now).Scan(&a); err != nil {
		return "", fmt.Errorf("store: token address: %w", notFound(err))
	}
	return a, nil
}

// spendToken spends the live issuance a redemption names (by link hash or
// by id) and, with it, every other live issuance of its user and purpose.
// Only one of any number of concurrent redemptions gets a row back.
const spendToken = `
WITH t AS (
    UPDATE one_time_tokens SET used_at = $4
     WHERE (link_hash = $1 OR id = $2) AND purpose = $3 AND used_at IS NULL AND expires_at > $4
    RETURNING id, user_id, address, detail
), o AS (
    UPDATE one_time_tokens SET used_at = $4
     WHERE user_id IN (SELECT user_id FROM t) AND purpose = $3 AND used_at IS NULL
)
SELECT id, user_id::text, address, detail FROM t`

func spend(ctx context.Context, tx pgx.Tx, ref auth.TokenRef) (auth.SpentToken, error) {
	var t auth.SpentToken
	err := tx.QueryRow(ctx, spendToken, ref.LinkHash, ref.ID, string(ref.Purpose), ref.Now).
		Scan(&t.ID, &t.UserID, &t.Address, &t.Detail)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, auth.ErrInvalidGrant
	}
	return t, err
}

// inTx runs fn in a transaction; the sentinels fn returns (ErrInvalidGrant,
// ErrEmailTaken, ErrNotFound) come back as they are, any other error
// wrapped with op. Either way nothing fn did is committed.
func (s *Store) inTx(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, s.pool, fn)
	for _, e := range []error{auth.ErrInvalidGrant, auth.ErrEmailTaken, auth.ErrNotFound} {
		if errors.Is(err, e) {
			return e
		}
	}
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	return nil
}

// committed carries a sentinel out of a transaction that must commit: the
// token was spent even though the redemption is refused.
type committed struct{ err error }

// inTxKeeping is inTx for a fn that may refuse after a change that must
// stand (a token spent for nothing): what it returns in a *committed comes
// back after the commit.
func (s *Store) inTxKeeping(ctx context.Context, op string, fn func(tx pgx.Tx) (*committed, error)) error {
	var keep *committed
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		var err error
		keep, err = fn(tx)
		return err
	})
	if err != nil {
		return err
	}
	if keep != nil {
		return keep.err
	}
	return nil
}

const verifyEmail = `
UPDATE users SET email_verified_at = coalesce(email_verified_at, $3), updated_at = $3
 WHERE id = $1 AND lower(email) = lower($2)
RETURNING id`

// VerifyEmail spends a verification token and marks its address verified,
// if it is still the account's address (else the token is spent for
// nothing: auth.ErrInvalidGrant). Returns auth.ErrInvalidGrant.
func (s *Store) VerifyEmail(ctx context.Context, ref auth.TokenRef) (auth.SpentToken, error) {
	var t auth.SpentToken
	err := s.inTxKeeping(ctx, "verify email", func(tx pgx.Tx) (*committed, error) {
		var err error
		if t, err = spend(ctx, tx, ref); err != nil {
			return nil, err
		}
		var id string
		if err := tx.QueryRow(ctx, verifyEmail, t.UserID, t.Address, ref.Now).Scan(&id); errors.Is(err, pgx.ErrNoRows) {
			return &committed{auth.ErrInvalidGrant}, nil
		} else if err != nil {
			return nil, err
		}
		return nil, nil
	})
	return t, err
}

// resetPassword sets the new password on the account the token was mailed
// to (if that is still its address), marks the address verified, lifts a
// denial, moves the session epoch and sets the logout-all cut-off, holding
// the user's row lock until commit.
const resetPassword = `
UPDATE users SET password_hash = $3, session_epoch = session_epoch + 1, logout_all_at = $4,
       email_verified_at = coalesce(email_verified_at, $4), password_disabled_at = NULL, updated_at = $4
 WHERE id = $1 AND lower(email) = lower($2)
RETURNING email`

const clearLimit = `DELETE FROM rate_limits WHERE key = $1`

// ResetPassword spends a reset token and, in the same transaction, sets the
// new password, marks the address verified, ends every session, sets the
// logout-all cut-off, spends every live one-time token of the user, clears
// the login lockout and queues the notice. Returns the spent token and the
// ids of the sessions it ended, or auth.ErrInvalidGrant.
func (s *Store) ResetPassword(ctx context.Context, r auth.PasswordReset) (auth.SpentToken, []string, error) {
	var t auth.SpentToken
	var ended []string
	err := s.inTxKeeping(ctx, "reset password", func(tx pgx.Tx) (*committed, error) {
		var err error
		if t, err = spend(ctx, tx, r.Ref); err != nil {
			return nil, err
		}
		var email string
		if err := tx.QueryRow(ctx, resetPassword, t.UserID, t.Address, string(r.NewHash), r.Ref.Now).Scan(&email); errors.Is(err, pgx.ErrNoRows) {
			return &committed{auth.ErrInvalidGrant}, nil // the address changed since
		} else if err != nil {
			return nil, err
		}
		if ended, err = endUserSessions(ctx, tx, t.UserID, "", r.Ref.Now); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, spendPurpose, t.UserID, nil, r.Ref.Now); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, clearLimit, r.LoginKey(email)); err != nil {
			return nil, err
		}
		n := r.Notice
		n.UserID = t.UserID
		_, err = tx.Exec(ctx, recordMailIntent, intentArgs(n)...)
		return nil, err
	})
	return t, ended, err
}

const changeEmail = `
UPDATE users u SET email = pending_email, email_key = $3, pending_email = NULL,
       email_verified_at = $4, updated_at = $4
  FROM (SELECT email FROM users WHERE id = $1 FOR UPDATE) AS before
 WHERE u.id = $1 AND lower(u.pending_email) = lower($2)
RETURNING before.email`

// ConfirmEmailChange spends an email-change token and moves the account to
// the address it was mailed to (still its pending address), which counts
// as verified, and queues the notice to the old address, in one
// transaction; it returns the spent token and the old address. Returns
// auth.ErrInvalidGrant, or auth.ErrEmailTaken (nothing changes, nothing is
// spent) when the address was taken meanwhile.
func (s *Store) ConfirmEmailChange(ctx context.Context, c auth.EmailChange) (auth.SpentToken, string, error) {
	var t auth.SpentToken
	var previous string
	err := s.inTxKeeping(ctx, "confirm email change", func(tx pgx.Tx) (*committed, error) {
		var err error
		if t, err = spend(ctx, tx, c.Ref); err != nil {
			return nil, err
		}
		err = tx.QueryRow(ctx, changeEmail, t.UserID, t.Address, c.AddressKey(t.Address), c.Ref.Now).Scan(&previous)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return &committed{auth.ErrInvalidGrant}, nil // superseded by another change
		case isUnique(err, "users_email_key"):
			return nil, auth.ErrEmailTaken
		case err != nil:
			return nil, err
		}
		n := c.Notice
		n.UserID = t.UserID
		n.Detail = map[string]string{"to": previous, "previous_email": previous, "new_email": t.Address}
		_, err = tx.Exec(ctx, recordMailIntent, intentArgs(n)...)
		return nil, err
	})
	return t, previous, err
}

const restoreEmail = `
UPDATE users SET email = $2, email_key = $3, pending_email = NULL, updated_at = $4
 WHERE id = $1 AND lower(email) = lower($5)`

const denyAccount = `
UPDATE users SET password_disabled_at = $2, session_epoch = session_epoch + 1, logout_all_at = $2,
       pending_email = NULL, updated_at = $2
 WHERE id = $1
RETURNING email`

// DenyAccount spends a "this wasn't me" token and, in one transaction,
// undoes the email change it was about (when its old address is still
// free), stops the password, ends every session, sets the logout-all
// cut-off, spends every live one-time token, and queues a reset mail and a
// notice to the (restored) address. Returns auth.ErrInvalidGrant.
func (s *Store) DenyAccount(ctx context.Context, d auth.Denial) (auth.Denied, error) {
	var out auth.Denied
	err := s.inTx(ctx, "deny account", func(tx pgx.Tx) error {
		t, err := spend(ctx, tx, d.Ref)
		if err != nil {
			return err
		}
		out.Token = t
		if prev, next := t.Detail["previous_email"], t.Detail["new_email"]; prev != "" && next != "" {
			// A savepoint: a unique violation must not abort the rest.
			err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
				tag, err := sp.Exec(ctx, restoreEmail, t.UserID, prev, d.AddressKey(prev), d.Ref.Now, next)
				out.Restored = err == nil && tag.RowsAffected() == 1
				return err
			})
			if err != nil && !isUnique(err, "users_email_key") {
				return err
			}
		}
		var email string
		if err := tx.QueryRow(ctx, denyAccount, t.UserID, d.Ref.Now).Scan(&email); err != nil {
			return notFound(err)
		}
		if out.Ended, err = endUserSessions(ctx, tx, t.UserID, "", d.Ref.Now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, spendPurpose, t.UserID, nil, d.Ref.Now); err != nil {
			return err
		}
		for _, m := range []auth.MailIntent{d.Reset, d.Notice} {
			m.UserID = t.UserID
			if _, err := tx.Exec(ctx, recordMailIntent, intentArgs(m)...); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, auth.ErrNotFound) {
		return auth.Denied{}, auth.ErrInvalidGrant
	}
	return out, err
}

const usersWithoutEmailKey = `
SELECT ` + userColumns + ` FROM users WHERE email_key IS NULL ORDER BY id LIMIT $1`

// UsersWithoutEmailKey returns up to n accounts whose email key is unset
// (made by an earlier release).
func (s *Store) UsersWithoutEmailKey(ctx context.Context, n int) ([]auth.User, error) {
	rows, _ := s.pool.Query(ctx, usersWithoutEmailKey, n)
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[userRow])
	if err != nil {
		return nil, fmt.Errorf("store: users without email key: %w", err)
	}
	out := make([]auth.User, len(rs))
	for i, r := range rs {
		out[i] = r.user()
	}
	return out, nil
}

// setEmailKeys sets each key computed for an address, if the address is
// still the one it was computed for.
const setEmailKeys = `
UPDATE users u SET email_key = k.key
  FROM unnest($1::uuid[], $2::text[], $3::bytea[]) AS k(id, email, key)
 WHERE u.id = k.id AND u.email = k.email AND u.email_key IS NULL`

// SetEmailKeys stores the email keys computed for accounts' addresses
// (each only if the account still has that address and no key).
func (s *Store) SetEmailKeys(ctx context.Context, keys []auth.EmailKey) error {
	ids := make([]string, len(keys))
	emails := make([]string, len(keys))
	ks := make([][]byte, len(keys))
	for i, k := range keys {
		ids[i], emails[i], ks[i] = k.UserID, k.Email, k.Key
	}
	if _, err := s.pool.Exec(ctx, setEmailKeys, ids, emails, ks); err != nil {
		return fmt.Errorf("store: set email keys: %w", err)
	}
	return nil
}

const userByEmailKey = `SELECT ` + userColumns + ` FROM users WHERE email_key = $1`

// UserByEmailKey finds the account whose address has the keyed hash key.
// Returns auth.ErrNotFound.
func (s *Store) UserByEmailKey(ctx context.Context, key []byte) (auth.User, error) {
	rows, _ := s.pool.Query(ctx, userByEmailKey, key)
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[userRow])
	if err != nil {
		return auth.User{}, fmt.Errorf("store: user by email key: %w", notFound(err))
	}
	return r.user(), nil
}

const (
	insertSecret = `INSERT INTO secret_keys (name, secret, sealed) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`
	secretByName = `SELECT secret, sealed FROM secret_keys WHERE name = $1`
)

// EnsureSecret stores candidate as the secret called name unless one is
// stored already, and returns the stored one: instances starting together
// all end up with the same secret. (Two statements: the second one's
// snapshot sees a row that a concurrent first insert committed.)
func (s *Store) EnsureSecret(ctx context.Context, name string, candidate auth.StoredSecret) (auth.StoredSecret, error) {
	if _, err := s.pool.Exec(ctx, insertSecret, name, candidate.Secret, candidate.Sealed); err != nil {
		return auth.StoredSecret{}, fmt.Errorf("store: ensure secret: %w", err)
	}
	out := auth.StoredSecret{Name: name}
	if err := s.pool.QueryRow(ctx, secretByName, name).Scan(&out.Secret, &out.Sealed); err != nil {
		return auth.StoredSecret{}, fmt.Errorf("store: ensure secret: %w", err)
	}
	return out, nil
}

type outboxRow struct {
	ID         int64             `db:"id"`
	Kind       string            `db:"kind"`
	AddressKey []byte            `db:"address_key"`
	UserID     *string           `db:"user_id"`
	Detail     map[string]string `db:"detail"`
	IP         string            `db:"ip"`
	RequestID  string            `db:"request_id"`
	CreatedAt  time.Time         `db:"created_at"`
	Attempts   int               `db:"attempts"`
	MessageID  string            `db:"message_id"`
	TokenID    *int64            `db:"token_id"`
}

// claimMail leases one due row: FOR UPDATE SKIP LOCKED, so that senders
// never wait on each other, and a lease, so that no other sender takes the
// row while this one works on it (a sender that dies lets it go when the
// lease ends). attempts doubles as the lease's token: only the sender whose
// attempt it is can finish or reschedule the row.
const claimMail = `
UPDATE email_outbox o SET lease_until = $2, attempts = o.attempts + 1
  FROM (SELECT id FROM email_outbox
         WHERE status = 'pending' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
         ORDER BY next_attempt_at, id
         LIMIT 1
         FOR UPDATE SKIP LOCKED) AS due
 WHERE o.id = due.id
RETURNING o.id, o.kind, o.address_key, o.user_id::text, o.detail, o.ip, o.request_id, o.created_at,
          o.attempts, o.message_id, o.token_id`

// ClaimMail leases the next due mail until leaseUntil. Returns
// auth.ErrNotFound when none is due.
func (s *Store) ClaimMail(ctx context.Context, now, leaseUntil time.Time) (auth.OutboxMail, error) {
	rows, _ := s.pool.Query(ctx, claimMail, now, leaseUntil)
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[outboxRow])
	if err != nil {
		return auth.OutboxMail{}, fmt.Errorf("store: claim mail: %w", notFound(err))
	}
	m := auth.OutboxMail{ID: r.ID, Attempt: r.Attempts, MailIntent: auth.MailIntent{
		Kind: auth.MailKind(r.Kind), AddressKey: r.AddressKey, Detail: r.Detail, Now: r.CreatedAt.UTC(),
		MessageID: r.MessageID, Client: auth.Client{IP: r.IP, RequestID: r.RequestID}}}
	if r.UserID != nil {
		m.UserID = *r.UserID
	}
	if r.TokenID != nil {
		m.TokenID = *r.TokenID
	}
	return m, nil
}

// tokenLock serialises the issuances of one user and purpose, so that the
// "at most 3 live" rule holds under concurrent senders.
const tokenLock = `SELECT pg_advisory_xact_lock(hashtextextended('accounts.otp:' || $1 || ':' || $2, 0))`

const spendByID = `UPDATE one_time_tokens SET used_at = $2 WHERE id = $1 AND used_at IS NULL`

// SpendToken spends one issuance (a mail that will never arrive).
func (s *Store) SpendToken(ctx context.Context, id int64, now time.Time) error {
	if _, err := s.pool.Exec(ctx, spendByID, id, now); err != nil {
		return fmt.Errorf("store: spend token: %w", err)
	}
	return nil
}

// spendOldest leaves at most $3 live issuances of a user and purpose.
const spendOldest = `
UPDATE one_time_tokens SET used_at = $4 WHERE id IN (
    SELECT id FROM one_time_tokens
     WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $4
     ORDER BY created_at DESC, id DESC OFFSET $3)`

const insertToken = `
INSERT INTO one_time_tokens (user_id, purpose, address, link_hash, code_hash, created_at, expires_at, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
RETURNING id`

const setMailToken = `UPDATE email_outbox SET token_id = $3 WHERE id = $1 AND attempts = $2`

// IssueToken stores a new issuance for an outbox mail, in one transaction:
// the oldest live ones of the user and purpose past t.MaxLive-1 are spent,
// the new one is stored and the mail remembers it (only while the attempt
// is still this sender's). Returns the new token's id, or auth.ErrNotFound when the user
// is gone.
func (s *Store) IssueToken(ctx context.Context, t auth.NewToken) (int64, error) {
	var id int64
	err := s.inTx(ctx, "issue token", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, tokenLock, t.UserID, string(t.Purpose)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, spendOldest, t.UserID, string(t.Purpose), t.MaxLive-1, t.Now); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, insertToken, t.UserID, string(t.Purpose), t.Address, t.LinkHash, t.CodeHash,
			t.Now, t.ExpiresAt, jsonObject(t.Detail)).Scan(&id)
		if isForeignKey(err) {
			return auth.ErrNotFound
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, setMailToken, t.OutboxID, t.Attempt, id)
		return err
	})
	return id, err
}

const finishMail = `
UPDATE email_outbox SET status = $3, outcome = $4, finished_at = $5, lease_until = NULL
 WHERE id = $1 AND attempts = $2 AND status = 'pending'`

// FinishMail closes an outbox row with status and outcome, if the attempt
// is still this sender's; it reports whether it was.
func (s *Store) FinishMail(ctx context.Context, id int64, attempt int, status, outcome string, now time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, finishMail, id, attempt, status, outcome, now)
	if err != nil {
		return false, fmt.Errorf("store: finish mail: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

const retryMail = `
UPDATE email_outbox SET next_attempt_at = $3, lease_until = NULL, outcome = $4
 WHERE id = $1 AND attempts = $2 AND status = 'pending'`

// RetryMail gives a leased row back, due again at next; it reports whether
// the attempt was still this sender's.
func (s *Store) RetryMail(ctx context.Context, id int64, attempt int, next time.Time, outcome string) (bool, error) {
	tag, err := s.pool.Exec(ctx, retryMail, id, attempt, next, outcome)
	if err != nil {
		return false, fmt.Errorf("store: retry mail: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

const outboxStats = `
SELECT count(*), min(created_at) FROM email_outbox WHERE status = 'pending'`

// OutboxStats counts the pending mails and gives the oldest one's time
// (zero when none is pending).
func (s *Store) OutboxStats(ctx context.Context) (int, time.Time, error) {
	var n int
	var oldest *time.Time
	if err := s.pool.QueryRow(ctx, outboxStats).Scan(&n, &oldest); err != nil {
		return 0, time.Time{}, fmt.Errorf("store: outbox stats: %w", err)
	}
	if oldest == nil {
		return n, time.Time{}, nil
	}
	return n, *oldest, nil
}

// ListenOutbox holds a connection of its own listening on the outbox's
// channel and calls wake for every notification (a new intent somewhere),
// until ctx ends or the connection fails.
func (s *Store) ListenOutbox(ctx context.Context, ready, wake func()) error {
	return s.listen(ctx, "accounts-outbox", outboxChannel, ready, func(string) { wake() })
}
