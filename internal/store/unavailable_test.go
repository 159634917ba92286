package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/store"
)

// TestClassify: the errors that mean "the database cannot serve this now"
// become 503s (errors.Is auth.ErrUnavailable, with a reason), keeping
// their cause; every other error is left as it is. The fault tests in
// cmd/server see the same through the real server.
func TestClassify(t *testing.T) {
	t.Parallel()
	pg := func(code string) error { return fmt.Errorf("store: x: %w", &pgconn.PgError{Code: code}) }
	tests := []struct {
		err    error
		reason string // "" = not unavailable
	}{
		{pg("25006"), "the database is read-only"},
		{pg("57014"), "the database did not answer in time"},
		{pg("55P03"), "the database did not answer in time"},
		{pg("57P01"), "the database is not answering"},
		{pg("57P03"), "the database is not answering"},
		{pg("08006"), "the database is not answering"},
		{pg("53300"), "the database is busy"},
		{pg("40001"), "the database is busy"},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), "the database is not answering"},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), "the database is not answering"},
		{fmt.Errorf("acquire: %w", context.DeadlineExceeded), "the database did not answer in time"},
		{pg("23505"), ""},
		{pg("P0001"), ""},
		{pgx.ErrNoRows, ""},
		{context.Canceled, ""},
		{errors.New("something else"), ""},
	}
	for _, tc := range tests {
		got := store.Classify(tc.err)
		var ue *auth.UnavailableError
		isUnavailable := errors.As(got, &ue)
		switch {
		case tc.reason == "" && (isUnavailable || got != tc.err):
			t.Errorf("%v: classified as %v, want it left as it is", tc.err, got)
		case tc.reason != "" && (!isUnavailable || ue.Reason != tc.reason || !errors.Is(got, auth.ErrUnavailable) || !errors.Is(got, tc.err)):
			t.Errorf("%v: %v, want an UnavailableError %q that wraps the cause", tc.err, got, tc.reason)
		}
	}
	if store.Classify(nil) != nil {
		t.Error("nil classified")
	}
	var pe *pgconn.PgError
	if got := store.Classify(pg("25006")); !errors.As(got, &pe) || pe.Code != "25006" {
		t.Errorf("the PgError is not reachable through the classified error: %v", got)
	}
}
