package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
