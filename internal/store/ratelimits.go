package store

import (
	"context"
	"fmt"
	"time"
)

// hitRateLimit counts one event in key's window, starting a new window
// when the old one has ended, and returns the count and the window's end.
const hitRateLimit = `
INSERT INTO rate_limits AS r (key, window_start, window_end, count)
VALUES ($1, $2, $2::timestamptz + $3::interval, 1)
ON CONFLICT (key) DO UPDATE SET
    count        = CASE WHEN r.window_end <= $2 THEN 1 ELSE r.count + 1 END,
    window_start = CASE WHEN r.window_end <= $2 THEN $2 ELSE r.window_start END,
    window_end   = CASE WHEN r.window_end <= $2 THEN $2::timestamptz + $3::interval ELSE r.window_end END
RETURNING count, window_end`

// HitRateLimit counts one event against key and returns the count in the
// current window and when that window ends.
func (s *Store) HitRateLimit(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error) {
	var n int
	var end time.Time
	if err := s.pool.QueryRow(ctx, hitRateLimit, key, now, window).Scan(&n, &end); err != nil {
		return 0, time.Time{}, fmt.Errorf("store: hit rate limit: %w", err)
	}
	return n, end, nil
}

const peekRateLimit = `SELECT count, window_end FROM rate_limits WHERE key = $1 AND window_end > $2`

// PeekRateLimit returns key's count in its current window without counting.
func (s *Store) PeekRateLimit(ctx context.Context, key string, now time.Time) (int, time.Time, error) {
	var n int
	var end time.Time
	err := s.pool.QueryRow(ctx, peekRateLimit, key, now).Scan(&n, &end)
	if err != nil {
		if notFound(err) != err {
			return 0, time.Time{}, nil
		}
		return 0, time.Time{}, fmt.Errorf("store: peek rate limit: %w", err)
	}
	return n, end, nil
}
