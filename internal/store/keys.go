package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acme/accounts/internal/auth"
)

type keyRow struct {
	KID        string     `db:"kid"`
	Alg        string     `db:"alg"`
	PrivateKey []byte     `db:"private_key"`
	Sealed     bool       `db:"sealed"`
	CreatedAt  time.Time  `db:"created_at"`
	RetiredAt  *time.Time `db:"retired_at"`
}

const signingKeys = `
SELECT kid, alg, private_key, sealed, created_at, retired_at
  FROM signing_keys
 WHERE alg = $1 AND (retired_at IS NULL OR retired_at > $2)
 ORDER BY created_at`

// SigningKeys returns the keys of alg that are active or retired after retiredAfter.
func (s *Store) SigningKeys(ctx context.Context, alg string, retiredAfter time.Time) ([]auth.StoredKey, error) {
	rows, _ := s.pool.Query(ctx, signingKeys, alg, retiredAfter)
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[keyRow])
	if err != nil {
		return nil, fmt.Errorf("store: signing keys: %w", err)
	}
	out := make([]auth.StoredKey, len(rs))
	for i, r := range rs {
		out[i] = auth.StoredKey{KID: r.KID, Alg: r.Alg, PrivateKey: r.PrivateKey, Sealed: r.Sealed,
			CreatedAt: r.CreatedAt, RetiredAt: r.RetiredAt}
	}
	return out, nil
}

// keysLock is the advisory lock that serialises key creation across instances.
const keysLock = `SELECT pg_advisory_xact_lock(hashtext('accounts.signing_keys'))`

const insertKeyIfNone = `
INSERT INTO signing_keys (kid, alg, private_key, sealed)
SELECT $1, $2, $3, $4
 WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE alg = $2 AND retired_at IS NULL)`

// EnsureSigningKey stores k unless a key of its algorithm is already active.
// Instances that start together on an empty database take turns on an
// advisory lock, so exactly one key is made.
func (s *Store) EnsureSigningKey(ctx context.Context, k auth.StoredKey) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, keysLock); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, insertKeyIfNone, k.KID, k.Alg, k.PrivateKey, k.Sealed)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: ensure signing key: %w", err)
	}
	return nil
}

const retireKeys = `UPDATE signing_keys SET retired_at = $2 WHERE alg = $1 AND retired_at IS NULL`

const insertKey = `
INSERT INTO signing_keys (kid, alg, private_key, sealed, created_at) VALUES ($1, $2, $3, $4, $5)`

// AddSigningKey retires the active keys of k.Alg and stores k as the active one.
func (s *Store) AddSigningKey(ctx context.Context, k auth.StoredKey, now time.Time) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, keysLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, retireKeys, k.Alg, now); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, insertKey, k.KID, k.Alg, k.PrivateKey, k.Sealed, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: add signing key: %w", err)
	}
	return nil
}

const allSigningKeys = `
SELECT kid, alg, private_key, sealed, created_at, retired_at FROM signing_keys ORDER BY created_at FOR UPDATE`

const updateSigningKey = `UPDATE signing_keys SET private_key = $2, sealed = $3 WHERE kid = $1`

const allSecrets = `SELECT name, secret, sealed, created_at FROM secret_keys ORDER BY name FOR UPDATE`

const updateSecret = `UPDATE secret_keys SET secret = $2, sealed = $3 WHERE name = $1`

// ResealKeys passes every stored signing key and secret (locked; a secret
// as a StoredKey of Alg auth.AlgSecret, with its kid auth.SecretKID(name))
// to reseal and stores what it returns, in one transaction: all change or
// none.
func (s *Store) ResealKeys(ctx context.Context, reseal func([]auth.StoredKey) ([]auth.StoredKey, error)) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, keysLock); err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, allSigningKeys)
		rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[keyRow])
		if err != nil {
			return err
		}
		keys := make([]auth.StoredKey, len(rs))
		for i, r := range rs {
			keys[i] = auth.StoredKey{KID: r.KID, Alg: r.Alg, PrivateKey: r.PrivateKey, Sealed: r.Sealed,
				CreatedAt: r.CreatedAt, RetiredAt: r.RetiredAt}
		}
		rows, _ = tx.Query(ctx, allSecrets)
		var name string
		var k auth.StoredKey
		_, err = pgx.ForEachRow(rows, []any{&name, &k.PrivateKey, &k.Sealed, &k.CreatedAt}, func() error {
			k.KID, k.Alg = auth.SecretKID(name), auth.AlgSecret
			keys = append(keys, k)
			return nil
		})
		if err != nil {
			return err
		}
		out, err := reseal(keys)
		if err != nil {
			return err
		}
		for _, k := range out {
			q, id := updateSigningKey, k.KID
			if k.Alg == auth.AlgSecret {
				q, id = updateSecret, strings.TrimPrefix(k.KID, auth.SecretKID(""))
			}
			if _, err := tx.Exec(ctx, q, id, k.PrivateKey, k.Sealed); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: reseal keys: %w", err)
	}
	return nil
}
