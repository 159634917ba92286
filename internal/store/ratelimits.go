package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acme/accounts/internal/auth"
)

// hitRateLimits counts one event against each key in its fixed window,
// starting a new window where the old one has ended, and returns each
// key's count and window end. Keys are upserted in sorted order, so two
// statements sharing keys lock them in the same order and cannot deadlock.
const hitRateLimits = `
INSERT INTO rate_limits AS r (key, window_start, window_end, count)
SELECT k, $2, $2::timestamptz + w, 1 FROM unnest($1::text[], $3::interval[]) AS u(k, w) ORDER BY k
ON CONFLICT (key) DO UPDATE SET
    count        = CASE WHEN r.window_end <= $2 THEN 1 ELSE r.count + 1 END,
    window_start = CASE WHEN r.window_end <= $2 THEN $2 ELSE r.window_start END,
    window_end   = CASE WHEN r.window_end <= $2 THEN EXCLUDED.window_end ELSE r.window_end END
RETURNING key, count, window_end`

// HitRateLimits counts one event against every hit's key, in one
// statement, and returns the counts in the order of hits.
func (s *Store) HitRateLimits(ctx context.Context, hits []auth.RateHit, now time.Time) ([]auth.RateCount, error) {
	order := make([]int, len(hits))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		switch {
		case hits[a].Key < hits[b].Key:
			return -1
		case hits[a].Key > hits[b].Key:
			return 1
		}
		return 0
	})
	keys := make([]string, len(hits))
	windows := make([]time.Duration, len(hits))
	for i, j := range order {
		keys[i], windows[i] = hits[j].Key, hits[j].Window
	}
	rows, _ := s.pool.Query(ctx, hitRateLimits, keys, now, windows)
	counts := make(map[string]auth.RateCount, len(hits))
	var key string
	var c auth.RateCount
	_, err := pgx.ForEachRow(rows, []any{&key, &c.N, &c.WindowEnd}, func() error {
		counts[key] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: hit rate limits: %w", err)
	}
	out := make([]auth.RateCount, len(hits))
	for i, h := range hits {
		out[i] = counts[h.Key]
	}
	return out, nil
}

const releaseRateLimit = `
UPDATE rate_limits SET count = count - 1 WHERE key = $1 AND window_end = $2 AND count > 0`

// ReleaseRateLimit gives back one event counted against key in the window
// ending at windowEnd; it does nothing once that window has been replaced.
func (s *Store) ReleaseRateLimit(ctx context.Context, key string, windowEnd time.Time) error {
	if _, err := s.pool.Exec(ctx, releaseRateLimit, key, windowEnd); err != nil {
		return fmt.Errorf("store: release rate limit: %w", err)
	}
	return nil
}
