package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acme/accounts/internal/auth"
)

// OAuth clients (migrations/000009) and the client side of sessions.

type clientRow struct {
	ID           string    `db:"id"`
	Confidential bool      `db:"confidential"`
	SecretHash   []byte    `db:"secret_hash"`
	CreatedAt    time.Time `db:"created_at"`
}

func (r clientRow) client() auth.OAuthClient {
	return auth.OAuthClient{ID: r.ID, Confidential: r.Confidential, SecretHash: r.SecretHash, CreatedAt: r.CreatedAt.UTC()}
}

const addClient = `
INSERT INTO oauth_clients (id, confidential, secret_hash, created_at) VALUES ($1, $2, $3, $4)`

// AddClient stores a client. Returns auth.ErrClientExists.
func (s *Store) AddClient(ctx context.Context, c auth.OAuthClient) error {
	_, err := s.pool.Exec(ctx, addClient, c.ID, c.Confidential, c.SecretHash, c.CreatedAt)
	if isUnique(err, "oauth_clients_pkey") {
		return auth.ErrClientExists
	}
	if err != nil {
		return fmt.Errorf("store: add client: %w", err)
	}
	return nil
}

const listClients = `SELECT id, confidential, secret_hash, created_at FROM oauth_clients ORDER BY id`

// ListClients lists every client by id.
func (s *Store) ListClients(ctx context.Context) ([]auth.OAuthClient, error) {
	rows, _ := s.pool.Query(ctx, listClients)
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[clientRow])
	if err != nil {
		return nil, fmt.Errorf("store: list clients: %w", err)
	}
	out := make([]auth.OAuthClient, len(rs))
	for i, r := range rs {
		out[i] = r.client()
	}
	return out, nil
}

const clientByID = `SELECT id, confidential, secret_hash, created_at FROM oauth_clients WHERE id = $1`

// ClientByID returns auth.ErrNotFound.
func (s *Store) ClientByID(ctx context.Context, id string) (auth.OAuthClient, error) {
	rows, _ := s.pool.Query(ctx, clientByID, id)
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[clientRow])
	if err != nil {
		return auth.OAuthClient{}, fmt.Errorf("store: client: %w", notFound(err))
	}
	return r.client(), nil
}

const (
	deleteClient = `DELETE FROM oauth_clients WHERE id = $1 AND id <> 'accounts' RETURNING id`
	// endClientSessions ends a client's live sessions and spends their
	// format-1 tokens (session, then its tokens: the order every statement
	// that ends sessions locks them in).
	endClientSessions = `
WITH s AS (
    UPDATE sessions SET ended_at = $2 WHERE client_id = $1 AND ended_at IS NULL
    RETURNING id
), t AS (
    UPDATE refresh_tokens SET spent_at = $2 WHERE session_id IN (SELECT id FROM s) AND spent_at IS NULL
)
SELECT coalesce(array_agg(id::text), '{}') FROM s`
)

// RemoveClient deletes a client (never the built-in one) and ends its live
// sessions, in one transaction, returning their ids. Returns
// auth.ErrNotFound.
func (s *Store) RemoveClient(ctx context.Context, id string, now time.Time) ([]string, error) {
	var ended []string
	err := s.inTx(ctx, "remove client", func(tx pgx.Tx) error {
		var got string
		if err := tx.QueryRow(ctx, deleteClient, id).Scan(&got); err != nil {
			return notFound(err)
		}
		return tx.QueryRow(ctx, endClientSessions, id, now).Scan(&ended)
	})
	return ended, err
}

const sessionClient = `SELECT client_id FROM sessions WHERE id = $1`

// SessionClient is the client a session belongs to. Returns auth.ErrNotFound.
func (s *Store) SessionClient(ctx context.Context, sessionID string) (string, error) {
	var id string
	if err := s.pool.QueryRow(ctx, sessionClient, sessionID).Scan(&id); err != nil {
		return "", fmt.Errorf("store: session client: %w", notFound(err))
	}
	return id, nil
}

const (
	sessionByTokenOnRow = `
SELECT id::text, user_id::text, client_id FROM sessions
 WHERE id = $1 AND ended_at IS NULL AND (rt_hash = $2 OR rt_prev_hash = $2)`
	sessionByLegacyToken = `
SELECT s.id::text, s.user_id::text, s.client_id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
 WHERE t.hash = $1 AND s.ended_at IS NULL
   AND (t.spent_at IS NULL   -- live
        OR s.rt_prev_hash = $1 -- just spent, its session converted to format 2
        OR EXISTS (SELECT 1 FROM refresh_tokens n WHERE n.hash = t.successor_hash AND n.spent_at IS NULL))` // just spent, format 1
)

// RefreshTokenSession finds the live session whose live or just-spent
// refresh token has this hash: on the session's row for a format-2 token
// (sessionID), through the token's own row for a format-1 one. Returns
// auth.ErrNotFound.
func (s *Store) RefreshTokenSession(ctx context.Context, sessionID string, hash []byte) (auth.SessionOwner, error) {
	var o auth.SessionOwner
	var row pgx.Row
	if sessionID != "" {
		row = s.pool.QueryRow(ctx, sessionByTokenOnRow, sessionID, hash)
	} else {
		row = s.pool.QueryRow(ctx, sessionByLegacyToken, hash)
	}
	if err := row.Scan(&o.SessionID, &o.UserID, &o.ClientID); err != nil {
		return auth.SessionOwner{}, fmt.Errorf("store: refresh token session: %w", notFound(err))
	}
	return o, nil
}

const revokeAccessToken = `INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING`

// RevokeAccessToken revokes one access token's jti until it expires.
func (s *Store) RevokeAccessToken(ctx context.Context, jti string, expires time.Time) error {
	if _, err := s.pool.Exec(ctx, revokeAccessToken, jti, expires); err != nil {
		return fmt.Errorf("store: revoke access token: %w", err)
	}
	return nil
}
