package store

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/acme/accounts/internal/auth"
)

// Reasons a database cannot serve a request now, as a client reads them
// in error_description.
const (
	reasonReadOnly = "the database is read-only"
	reasonDown     = "the database is not answering"
	reasonSlow     = "the database did not answer in time"
	reasonBusy     = "the database is busy"
)

// classify is the one place where a database error that says "not now"
// (the server restarting or gone, a connection lost, a statement timeout,
// a lock not granted, a read-only server, a full connection table) becomes
// an *auth.UnavailableError, which the HTTP layer answers with 503 and
// Retry-After. Every statement of the store passes through it (see db):
// no method needs to remember. Any other error is returned as it is.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ue *auth.UnavailableError
	if errors.As(err, &ue) {
		return err
	}
	if reason := unavailableReason(err); reason != "" {
		return &auth.UnavailableError{Reason: reason, Err: err}
	}
	return err
}

func unavailableReason(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "25006": // read_only_sql_transaction: a standby, or default_transaction_read_only
			return reasonReadOnly
		case pe.Code == "57014", pe.Code == "55P03": // query_canceled (statement_timeout), lock_not_available
			return reasonSlow
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // admin_shutdown, crash_shutdown, cannot_connect_now
			pe.Code == "57P05",                     // idle_session_timeout
			pe.Code == "25P03", pe.Code == "25P04": // idle_in_transaction_session_timeout (store.Open sets it), transaction_timeout (PostgreSQL 17)
			return reasonDown
		case strings.HasPrefix(pe.Code, "53"), // insufficient resources (too_many_connections)
			pe.Code == "40001", pe.Code == "40P01": // serialization failure, deadlock: try again
			return reasonBusy
		}
		return ""
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "" // the client went away: the HTTP layer knows
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return reasonSlow
	case errors.As(err, &ce), errors.As(err, &ne),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		pgconn.SafeToRetry(err), strings.Contains(err.Error(), "conn closed"):
		return reasonDown
	}
	return ""
}

// db is the pool as the store's methods use it: every error of a
// statement, a transaction or a row passes through classify.
type db struct{ *pgxpool.Pool }

func (d db) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := d.Pool.Exec(ctx, sql, args...)
	return tag, classify(err)
}

func (d db) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := d.Pool.Query(ctx, sql, args...)
	return wrapRows(rows), classify(err)
}

func (d db) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return row{d.Pool.QueryRow(ctx, sql, args...)}
}

func (d db) Begin(ctx context.Context) (pgx.Tx, error) {
	t, err := d.Pool.Begin(ctx)
	if err != nil {
		return nil, classify(err)
	}
	return tx{t}, nil
}

type tx struct{ pgx.Tx }

func (t tx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := t.Tx.Exec(ctx, sql, args...)
	return tag, classify(err)
}

func (t tx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := t.Tx.Query(ctx, sql, args...)
	return wrapRows(rows), classify(err)
}

func (t tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return row{t.Tx.QueryRow(ctx, sql, args...)}
}

func (t tx) Begin(ctx context.Context) (pgx.Tx, error) {
	sp, err := t.Tx.Begin(ctx)
	if err != nil {
		return nil, classify(err)
	}
	return tx{sp}, nil
}

func (t tx) Commit(ctx context.Context) error { return classify(t.Tx.Commit(ctx)) }

type row struct{ pgx.Row }

func (r row) Scan(dest ...any) error { return classify(r.Row.Scan(dest...)) }

type rows struct{ pgx.Rows }

// wrapRows keeps nil nil: pgx returns rows that report the error even
// when Query fails, and callers that ignore Query's error read it there.
func wrapRows(r pgx.Rows) pgx.Rows {
	if r == nil {
		return nil
	}
	return rows{r}
}

func (r rows) Err() error             { return classify(r.Rows.Err()) }
func (r rows) Scan(dest ...any) error { return classify(r.Rows.Scan(dest...)) }
