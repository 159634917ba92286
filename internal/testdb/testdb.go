// Package testdb gives tests a fresh, migrated PostgreSQL database each:
// TestMain migrates a template once per package, and New copies it
// (CREATE DATABASE ... TEMPLATE) for one test and drops it afterwards.
//
// The server is TEST_DATABASE_URL (an admin URL), else the one on
// 127.0.0.1:5432. A database that cannot be reached fails the run: tests
// never skip for want of one.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/acme/accounts/internal/store"
)

const defaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

var template string

func adminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return defaultAdminURL
}

// withDB returns the admin URL pointed at database name.
func withDB(name string) (string, error) {
	u, err := url.Parse(adminURL())
	if err != nil {
		return "", fmt.Errorf("testdb: TEST_DATABASE_URL is not a URL: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func adminExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, adminURL())
	if err != nil {
		return fmt.Errorf("testdb: connect to %s: %w (set TEST_DATABASE_URL or run `make test`)", redacted(), err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func redacted() string {
	u, err := url.Parse(adminURL())
	if err != nil {
		return "TEST_DATABASE_URL"
	}
	return u.Redacted()
}

// Main builds the package's migrated template, runs the tests, and drops
// the template. Call it from TestMain: os.Exit(testdb.Main(m)).
func Main(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	template = randomName("tmpl_")
	err := adminExec(ctx, "CREATE DATABASE "+template)
	if err == nil {
		err = migrateTemplate(ctx)
	}
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testdb:", err)
		return 1
	}
	code := m.Run()
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := adminExec(ctx, "DROP DATABASE IF EXISTS "+template+" WITH (FORCE)"); err != nil {
		fmt.Fprintln(os.Stderr, "testdb: drop template:", err)
	}
	return code
}

func migrateTemplate(ctx context.Context) error {
	u, err := withDB(template)
	if err != nil {
		return err
	}
	pool, err := store.Open(ctx, u)
	if err != nil {
		return err
	}
	defer pool.Close() // no connection may stay open to a template
	return store.Migrate(pool)
}

// URL creates a fresh migrated database for tb and returns its URL; the
// database is dropped when tb ends.
func URL(tb testing.TB) string {
	tb.Helper()
	if template == "" {
		tb.Fatal("testdb: call testdb.Main from TestMain first")
	}
	return create(tb, randomName("t_"), " TEMPLATE "+template)
}

// create makes database name (with the given CREATE DATABASE options),
// drops it when tb ends, and returns its URL.
func create(tb testing.TB, name, options string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := adminExec(ctx, "CREATE DATABASE "+name+options); err != nil {
		tb.Fatalf("testdb: create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := adminExec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("testdb: drop database: %v", err)
		}
	})
	u, err := withDB(name)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// New returns a pool on a fresh migrated database, closed and dropped when tb ends.
func New(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	u := URL(tb)
	pool, err := store.Open(context.Background(), u)
	if err != nil {
		tb.Fatalf("testdb: open: %v", err)
	}
	tb.Cleanup(pool.Close) // runs before the drop registered by URL
	return pool
}

// NewEmpty creates a database with no schema at all (for migration tests).
func NewEmpty(tb testing.TB) string {
	tb.Helper()
	return create(tb, randomName("e_"), "")
}
