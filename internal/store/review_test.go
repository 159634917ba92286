package store_test

// Hostile review of d7dce07 (store side): deterministic reproductions that
// fail on d7dce07.

import (
	"net/mail"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/store"
	"github.com/acme/accounts/internal/testdb"
)

// oldNormalizeEmail is NormalizeEmail as it was before 6593a59 (no NFC):
// the rule every stored row was checked against.
func oldNormalizeEmail(email string) (string, bool) {
	e := strings.TrimSpace(email)
	if e == "" || len(e) > 254 || !utf8.ValidString(e) {
		return "", false
	}
	for _, r := range e {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError ||
			strings.ContainsRune("\"<>()[]\\,;:`", r) || unicode.Is(unicode.Cf, r) {
			return "", false
		}
	}
	at := strings.LastIndexByte(e, '@')
	if at < 1 || at > 64 || at == len(e)-1 || strings.Count(e, "@") != 1 {
		return "", false
	}
	addr, err := mail.ParseAddress(e)
	if err != nil || addr.Address != e || addr.Name != "" {
		return "", false
	}
	return e, true
}

// R6a. Migration 000005 rewrites every email to NFC without checking that
// the result is still an address the application accepts. NFC is not
// length-preserving (U+0958 DEVANAGARI QA is a composition exclusion: 3
// bytes become 6) and can produce forbidden characters (U+037E GREEK
// QUESTION MARK becomes ';'). Such accounts, valid before, can no longer
// log in, sign up again, or be found by `users set-role`.
func TestEmailMigrationRefusesAddressesNFCWouldBreak(t *testing.T) {
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
	if err := m.Migrate(4); err != nil {
		t.Fatal(err)
	}
	hash, _ := auth.HashPassword("correct horse battery", testdb.TestArgon2)
	emails := []string{
		strings.Repeat("\u0958", 21) + "@example.com",    // local part 63 bytes, 126 after NFC
		"u@" + strings.Repeat("\u0958", 80) + ".example", // 250 bytes, 490 after NFC
		"why\u037e@example.com",                          // ';' after NFC
	}
	for _, e := range emails {
		if _, ok := oldNormalizeEmail(e); !ok {
			t.Fatalf("%q was not a valid address before 6593a59 either", e)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO users (email, password_hash) VALUES ($1, $2)`, e, hash); err != nil {
			t.Fatal(err)
		}
	}
	// The migration stops, naming each account, for an operator to resolve.
	err = store.Up(m)
	if err == nil {
		t.Fatal("the migration rewrote addresses into ones the service refuses")
	}
	var ids []string
	rows, _ := pool.Query(ctx, `SELECT id::text FROM users`)
	for rows.Next() {
		var id string
		_ = rows.Scan(&id)
		ids = append(ids, id)
	}
	for _, id := range ids {
		if !strings.Contains(err.Error(), id) {
			t.Errorf("the error does not name account %s: %v", id, err)
		}
	}
	if v, dirty, _ := m.Version(); v != 4 || dirty {
		t.Fatalf("version %d (dirty %v) after the refused migration, want 4, clean", v, dirty)
	}
}

// R6b. Nothing in the schema holds emails to NFC. During a rolling deploy
// (MIGRATE_ON_START=true on the first new instance, old instances still
// serving) an old instance stores a decomposed address; the new instances
// can never find that account, and let the composed twin sign up: exactly
// the look-alike pair the migration refuses to create.
func TestSchemaRefusesNonNFCEmails(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	const decomposed = "rene\u0301@example.com"
	// An instance of the previous release signs up (its NormalizeEmail only
	// trims): the schema refuses, rather than keep an account no instance
	// of this release can find.
	hash, _ := auth.HashPassword("correct horse battery", testdb.TestArgon2)
	if _, err := k.Store.CreateUser(ctx, auth.NewUser{Email: decomposed, PasswordHash: hash, Now: k.Clock.Now()}); err == nil {
		t.Fatal("the schema stored an email that is not in NFC")
	}
	if _, err := k.Service.Signup(ctx, decomposed, "correct horse battery", auth.Client{}); err != nil {
		t.Fatalf("signup of the same address through the service (which normalises): %v", err)
	}
}

// R7. Up "resets the dirty version" on ANY dirty state it finds, assuming
// the dirty migration rolled back. golang-migrate marks a version dirty
// before running it and clean after; a crash (or a lost connection)
// between the commit and the clean mark leaves an APPLIED migration dirty.
// Up then rewinds the version to 3 although the schema is at 4, and every
// later start re-runs 000004, fails ("column already exists"), rewinds
// again: no instance can start, and `migrate version` lies.
func TestUpLeavesADirtyVersionFoundAtStartToTheOperator(t *testing.T) {
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
	if err := m.Migrate(4); err != nil {
		t.Fatal(err)
	}
	// The process died after 000004 committed, before golang-migrate
	// recorded it clean.
	if _, err := pool.Exec(ctx, `UPDATE schema_migrations SET dirty = true`); err != nil {
		t.Fatal(err)
	}
	first := store.Up(m)
	if first == nil || !strings.Contains(first.Error(), "server migrate force 4") {
		t.Errorf("a dirty version found at start: %v, want an error telling the operator what to check and run", first)
	}
	v, dirty, _ := m.Version()
	t.Logf("first start: %.80s…; version now %d (dirty %v)", first, v, dirty)
	second := store.Up(m)
	v2, dirty2, _ := m.Version()
	t.Logf("second start: %.60s… %s; version now %d (dirty %v)", second, tail(second), v2, dirty2)
	if v < 4 || v2 < 4 {
		t.Errorf("the version of an applied migration was rewound (to %d, then %d) although session_epoch exists", v, v2)
	}
	if second != nil && strings.Contains(second.Error(), "already exists") {
		t.Errorf("a start after the rewind re-ran an applied migration: %s", tail(second))
	}
}

func tail(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if i := strings.LastIndex(s, "(details:"); i >= 0 {
		return s[i:]
	}
	return s
}
