package auth

import "context"

// ParseUncached checks a token's signature and claims without the cache,
// for benchmarks.
func (t *Tokens) ParseUncached(ctx context.Context, raw string) (Principal, error) {
	return t.parse(ctx, raw)
}
