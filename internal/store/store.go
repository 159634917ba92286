// Package store is the PostgreSQL side of the service: every SQL statement
// lives here. It imports auth (whose Store interface it satisfies) and
// migrations; nothing else of ours.
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/migrations"
)

var _ auth.Store = (*Store)(nil)

// Store wraps a pgx pool.
type Store struct {
	pool      db // every error classified (see classify)
	listenURL string
}

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: db{pool}} }

// PoolOptions tune the connection pool; the zero value keeps pgx's defaults.
type PoolOptions struct {
	MaxConns int32
	// StatementCache is "prepare" (pgx's default: named prepared
	// statements), "describe" (cache only descriptions and run unnamed
	// statements: works through PgBouncer in transaction mode) or "off".
	StatementCache string
	// StatementTimeout, when not zero, is sent as each connection's
	// statement_timeout, so that a stuck query cannot pin the pool, and as
	// its idle_in_transaction_session_timeout, so that a transaction whose
	// client was cut off (a partition between two of its statements)
	// cannot hold a user's row lock for longer either.
	StatementTimeout time.Duration
}

// Open connects to databaseURL and checks that the database answers.
func Open(ctx context.Context, databaseURL string, opts ...PoolOptions) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("store: parse DATABASE_URL: %w", redactErr(err))
	}
	for _, o := range opts {
		if o.MaxConns > 0 {
			cfg.MaxConns = o.MaxConns
		}
		switch o.StatementCache {
		case "describe":
			cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
		case "off":
			cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
		}
		if o.StatementTimeout > 0 {
			ms := strconv.FormatInt(o.StatementTimeout.Milliseconds(), 10)
			cfg.ConnConfig.RuntimeParams["statement_timeout"] = ms
			cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = ms
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: database does not answer: %w", err)
	}
	return pool, nil
}

// redactErr drops the text of a connection-string parse error, which can
// quote the URL and so its password.
func redactErr(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("malformed connection string")
	}
	return err
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// PoolStats reports the pool's connections, for metrics.
func (s *Store) PoolStats() *pgxpool.Stat { return s.pool.Stat() }

// Migrator returns golang-migrate on the embedded migrations, over its own
// connection to the pool's database. Close it when done.
func Migrator(pool *pgxpool.Pool) (*migrate.Migrate, error) {
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	db := stdlib.OpenDB(*migrationConnConfig(pool))
	drv, err := pgxmigrate.WithInstance(db, &pgxmigrate.Config{})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		drv.Close()
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	return m, nil
}

// migrationConnConfig is the pool's connection config without its
// statement_timeout: schema changes may take longer than a request's
// statement may (building an index on a large table, say).
func migrationConnConfig(pool *pgxpool.Pool) *pgx.ConnConfig {
	cfg := pool.Config().ConnConfig.Copy()
	delete(cfg.RuntimeParams, "statement_timeout")
	delete(cfg.RuntimeParams, "idle_in_transaction_session_timeout")
	return cfg
}

// Migrate applies every pending migration. A migration that fails (one
// that refuses to run on the data it finds, say) leaves the schema as it
// was and the version where it was, not dirty: see Up.
func Migrate(pool *pgxpool.Pool) error {
	m, err := Migrator(pool)
	if err != nil {
		return err
	}
	defer m.Close()
	return Up(m)
}

// Up applies every pending migration with m. Each migration file runs as
// one simple-protocol query, which PostgreSQL runs as one transaction, so
// a file that fails changes nothing; golang-migrate still marks its version
// dirty, and Up puts the version back to the last one applied, so that the
// next start (or `server migrate up`) tries again once the cause is fixed
// instead of stopping at "dirty database". It does so only for a version
// that this call made dirty: a dirty version found when golang-migrate
// holds its lock (a crash between a migration's commit and its clean mark,
// say) may well be applied, and is left to an operator (`server migrate
// force`). The dirty check is golang-migrate's own, under its lock: a
// version read as dirty before that is as likely another instance applying
// that migration right now (instances started together on an empty
// database), which m.Up waits for. Every migration must therefore stay
// transactional (no CREATE INDEX CONCURRENTLY).
func Up(m *migrate.Migrate) error {
	err := m.Up()
	if err == nil || errors.Is(err, migrate.ErrNoChange) {
		return nil
	}
	var de migrate.ErrDirty
	if errors.As(err, &de) {
		v := uint(de.Version)
		return fmt.Errorf("store: migrate up: the schema is marked dirty at version %d: a migration was interrupted; "+
			"check whether it was applied, then run `server migrate force %d` (applied) or `server migrate force %d` (not applied)",
			v, v, previousVersion(v))
	}
	// A migration failed under the lock this call held: the dirty version
	// is its own, and the migration's transaction changed nothing.
	if v, dirty, verr := m.Version(); verr == nil && dirty {
		if ferr := m.Force(previousVersion(v)); ferr != nil {
			return fmt.Errorf("store: migrate up: %w (and the dirty version %d could not be reset: %v)", err, v, ferr)
		}
	}
	return fmt.Errorf("store: migrate up: %w", err)
}

// previousVersion is the migration before v (database.NilVersion when v
// is the first).
func previousVersion(v uint) int {
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return database.NilVersion
	}
	defer src.Close()
	prev, err := src.Prev(v)
	if err != nil {
		return database.NilVersion
	}
	return int(prev)
}

const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
)

func isForeignKey(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == foreignKeyViolation
}

func isUnique(err error, constraint string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == uniqueViolation && pe.ConstraintName == constraint
}

// notFound turns pgx.ErrNoRows into auth.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return auth.ErrNotFound
	}
	return err
}
