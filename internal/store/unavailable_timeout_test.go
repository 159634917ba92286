package store_test

// Found by a hostile review (faults).

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/store"
	"github.com/acme/accounts/internal/testdb"
)

// TestIdleInTransactionTimeoutIsUnavailable: store.Open sends the
// statement timeout as idle_in_transaction_session_timeout too, "so that a
// transaction whose client was cut off (a partition between two of its
// statements) cannot hold a user's row lock". When that timeout fires the
// server ends the connection with FATAL 25P03
// (idle_in_transaction_session_timeout), and the client reads exactly that
// at its next statement (the partition healed, or the process was stalled:
// GC, CPU starvation, a paused VM). The classifier knows 57P01, 57P05 and
// the 08 class but not 25P03, so the error is left as it is: the request
// answers 500 internal_error and logs an "internal error", where the
// contract wants 503 service_unavailable with Retry-After (the database
// cannot serve this now; a retry works).
func TestIdleInTransactionTimeoutIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := store.Open(ctx, testdb.URL(t), store.PoolOptions{StatementTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	watcher := testdb.New(t) // another database's pool: pg_stat_activity is cluster-wide

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var pid int
	if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	// The client stalls between two statements of its transaction: wait
	// (on the server's state, not a guessed duration) until the server
	// has ended the session.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := watcher.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle-in-transaction timeout never ended the session")
		}
		time.Sleep(10 * time.Millisecond) // polling a state
	}
	_, err = tx.Exec(ctx, `SELECT 1`)
	if err == nil {
		t.Fatal("a statement on a connection the server ended succeeded")
	}
	var pe *pgconn.PgError
	code := ""
	if errors.As(err, &pe) {
		code = pe.Code
	}
	got := store.Classify(err)
	if !errors.Is(got, auth.ErrUnavailable) {
		t.Errorf("the next statement failed with %v (SQLSTATE %q): classified as %v, want an UnavailableError (503)", err, code, got)
	}
	// The same, as the error value the server sends.
	if got := store.Classify(&pgconn.PgError{Severity: "FATAL", Code: "25P03"}); !errors.Is(got, auth.ErrUnavailable) {
		t.Errorf("FATAL 25P03 (idle_in_transaction_session_timeout): classified as %v, want an UnavailableError (503)", got)
	}
}
