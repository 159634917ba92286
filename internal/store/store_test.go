package store_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/store"
	"github.com/acme/accounts/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

var ctx = context.Background()

func TestUserErrors(t *testing.T) {
	t.Parallel()
	s := store.New(testdb.New(t))
	now := time.Now()
	u, err := s.CreateUser(ctx, auth.NewUser{Email: "Case@Example.com", PasswordHash: "h", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, auth.NewUser{Email: "case@example.COM", PasswordHash: "h", Now: now}); !errors.Is(err, auth.ErrEmailTaken) {
		t.Fatalf("duplicate email: %v, want ErrEmailTaken", err)
	}
	got, err := s.UserByEmail(ctx, "CASE@example.com")
	if err != nil || got.ID != u.ID || got.Email != "Case@Example.com" {
		t.Fatalf("UserByEmail = %+v, %v", got, err)
	}
	for name, err := range map[string]error{
		"by email": func() error { _, err := s.UserByEmail(ctx, "nobody@example.com"); return err }(),
		"by id":    func() error { _, err := s.UserByID(ctx, uuid.NewString()); return err }(),
		"set role": func() error { _, err := s.SetRole(ctx, "nobody@example.com", "admin", now); return err }(),
		"logout":   func() error { _, err := s.LogoutUser(ctx, uuid.NewString(), now); return err }(),
		"session":  s.EndSession(ctx, u.ID, uuid.NewString(), now),
	} {
		if !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	// A role outside the schema's set is refused by the database itself.
	if _, err := s.SetRole(ctx, "case@example.com", "root", now); err == nil || errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("role root: %v, want a constraint error", err)
	}
}

func TestPurgeIsBounded(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	s := store.New(pool)
	now := time.Now()
	if _, err := pool.Exec(ctx, `INSERT INTO revoked_tokens (jti, expires_at)
		SELECT 'j' || g, $1::timestamptz - interval '1 minute' FROM generate_series(1, 25) g`, now); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO revoked_tokens (jti, expires_at) VALUES ('live', $1::timestamptz + interval '1 hour')`, now); err != nil {
		t.Fatal(err)
	}
	n, ran, err := s.PurgeExclusive(ctx, now, now.Add(-time.Hour), 10)
	if err != nil || !ran || n != 10 {
		t.Fatalf("first purge = %d, %v, %v; want 10", n, ran, err)
	}
	for range 3 {
		if _, _, err := s.PurgeExclusive(ctx, now, now.Add(-time.Hour), 10); err != nil {
			t.Fatal(err)
		}
	}
	var left []string
	rows, _ := pool.Query(ctx, `SELECT jti FROM revoked_tokens`)
	for rows.Next() {
		var j string
		_ = rows.Scan(&j)
		left = append(left, j)
	}
	if len(left) != 1 || left[0] != "live" {
		t.Fatalf("left after purging = %v, want only the unexpired row", left)
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t) // already migrated from the template
	if err := store.Migrate(pool); err != nil {
		t.Fatalf("migrate on a migrated database: %v", err)
	}
}

func TestPurgeEventsKeepsRecentOnes(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	s := store.New(pool)
	now := time.Now()
	for i, at := range []time.Time{now.Add(-100 * 24 * time.Hour), now.Add(-91 * 24 * time.Hour), now.Add(-time.Hour)} {
		if err := s.RecordEvent(ctx, auth.Event{Type: "signup", At: at, Detail: map[string]any{"n": i}}); err != nil {
			t.Fatal(err)
		}
	}
	n, _, err := s.PurgeExclusive(ctx, now, now.Add(-90*24*time.Hour), 1)
	if err != nil || n != 1 {
		t.Fatalf("bounded purge = %d, %v; want 1", n, err)
	}
	if n, _, _ = s.PurgeExclusive(ctx, now, now.Add(-90*24*time.Hour), 100); n != 1 {
		t.Fatalf("second purge = %d, want 1", n)
	}
	left, err := s.ListEvents(ctx, "", 0, 10)
	if err != nil || len(left) != 1 || left[0].Detail["n"] != float64(2) {
		t.Fatalf("left = %+v, %v", left, err)
	}
}

func TestMigrationsIgnoreTheStatementTimeout(t *testing.T) {
	t.Parallel()
	pool, err := store.Open(ctx, testdb.URL(t), store.PoolOptions{StatementTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	const slow = `SELECT pg_sleep(0.2)`
	if _, err := pool.Exec(ctx, slow); err == nil {
		t.Fatal("a 200 ms statement ran on a pool with a 50 ms statement_timeout")
	}
	db := stdlib.OpenDB(*store.MigrationConnConfig(pool))
	defer db.Close()
	if _, err := db.ExecContext(ctx, slow); err != nil {
		t.Fatalf("the migrations' connection kept the timeout: %v", err)
	}
}

func TestEmailMigrationStopsOnCollisions(t *testing.T) {
	t.Parallel()
	pool, err := store.Open(ctx, testdb.NewEmpty(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	m, err := store.Migrator(pool)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Migrate(4); err != nil { // the schema before emails were normalised
		t.Fatal(err)
	}
	const composed, decomposed = "ren\u00e9@example.com", "Rene\u0301@example.com"
	var a, b string
	for _, e := range []struct {
		email string
		id    *string
	}{{composed, &a}, {decomposed, &b}} {
		if err := pool.QueryRow(ctx, `INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id::text`, e.email).Scan(e.id); err != nil {
			t.Fatal(err)
		}
	}
	err = store.Up(m)
	if err == nil {
		t.Fatal("the migration merged or renamed two accounts that look the same")
	}
	for _, want := range []string{a, b, composed, decomposed} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %q: %v", want, err)
		}
	}
	// Nothing changed, and the version is not left dirty.
	if v, dirty, _ := m.Version(); v != 4 || dirty {
		t.Fatalf("version %d (dirty %v) after the refused migration, want 4, clean", v, dirty)
	}
	var stored string
	if err := pool.QueryRow(ctx, `SELECT email FROM users WHERE id = $1`, b).Scan(&stored); err != nil || stored != decomposed {
		t.Fatalf("email = %q, %v; want it untouched", stored, err)
	}
	// Once an operator resolves it, the migration runs and normalises.
	if _, err := pool.Exec(ctx, `DELETE FROM users WHERE id = $1`, a); err != nil {
		t.Fatal(err)
	}
	if err := store.Up(m); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT email FROM users WHERE id = $1`, b).Scan(&stored); err != nil || stored != "Ren\u00e9@example.com" {
		t.Fatalf("email = %q, %v; want the NFC form", stored, err)
	}
}

func TestWireFormatsMatchTheSchema(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	labels := func(typ string) []string {
		var out []string
		if err := pool.QueryRow(ctx, `SELECT array_agg(l::text ORDER BY l) FROM unnest(enum_range(NULL::`+typ+`)) l`).Scan(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, tc := range []struct {
		typ  string
		keys []string
	}{
		{"revocation_kind", slices.Collect(maps.Keys(store.RevocationKinds))},
		{"rotation_outcome", slices.Collect(maps.Keys(store.RotationOutcomes))},
	} {
		got := labels(tc.typ)
		slices.Sort(got)
		slices.Sort(tc.keys)
		if !slices.Equal(got, tc.keys) {
			t.Errorf("SQL type %s has %v, Go spells %v", tc.typ, got, tc.keys)
		}
	}
	// Every kind a trigger announces comes back as the kind Go expects.
	k := testdb.NewKit(t, testdb.KitOptions{Pool: pool})
	u, err := k.Service.Signup(ctx, "wire@example.com", "correct horse battery", auth.Client{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Service.SetRole(ctx, u.Email, auth.RoleAdmin, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Store.LogoutUser(ctx, u.ID, k.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	snap, err := k.Store.RevocationSnapshot(ctx, k.Clock.Now(), time.Hour)
	if err != nil || len(snap) != 1 || snap[0].Kind != auth.UserCutoff || snap[0].ID != u.ID {
		t.Fatalf("snapshot = %+v, %v; want the user's cut-off", snap, err)
	}
}
