package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/acme/accounts/internal/auth"
)

// TestWriteError checks the one table from error to status, code and headers.
func TestWriteError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err    error
		status int
		code   string
		header string
		value  string
	}{
		{auth.Invalid("email", "is required"), 400, "invalid_request", "", ""},
		{badRequest("x"), 400, "invalid_request", "", ""},
		{auth.ErrInvalidCredentials, 401, "invalid_credentials", "", ""},
		{auth.ErrInvalidGrant, 401, "invalid_grant", "", ""},
		{auth.ErrInvalidToken, 401, "invalid_token", "WWW-Authenticate", `Bearer error="invalid_token"`},
		{auth.ErrNoToken, 401, "invalid_token", "WWW-Authenticate", "Bearer"},
		{auth.ErrForbidden, 403, "forbidden", "", ""},
		{auth.ErrNotFound, 404, "not_found", "", ""},
		{fmt.Errorf("store: x: %w", auth.ErrEmailTaken), 409, "email_taken", "", ""},
		{errTooLarge, 413, "payload_too_large", "", ""},
		{errMediaType, 415, "unsupported_media_type", "", ""},
		{&auth.RateLimitError{RetryAfter: 1500 * time.Millisecond}, 429, "too_many_requests", "Retry-After", "2"},
		{auth.ErrUnavailable, 503, "service_unavailable", "Retry-After", "1"},
		{fmt.Errorf("store: x: %w", &auth.UnavailableError{Reason: "the database is read-only", Err: errors.New("25006")}), 503, "service_unavailable", "Retry-After", "1"},
		{errors.New("store: connection refused at 10.0.0.1"), 500, "internal_error", "", ""},
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			w := httptest.NewRecorder()
			writeError(w, httptest.NewRequest("GET", "/", nil), log, tc.err)
			var body errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if w.Code != tc.status || body.Error != tc.code || body.Description == "" {
				t.Fatalf("got %d %+v, want %d %s", w.Code, body, tc.status, tc.code)
			}
			if tc.header != "" && w.Header().Get(tc.header) != tc.value {
				t.Fatalf("%s = %q, want %q", tc.header, w.Header().Get(tc.header), tc.value)
			}
			var ue *auth.UnavailableError
			if errors.As(tc.err, &ue) && body.Description != ue.Reason {
				t.Fatalf("description %q, want the reason %q", body.Description, ue.Reason)
			}
			if tc.status == 500 && body.Description != "internal error" {
				t.Fatalf("500 leaks: %q", body.Description)
			}
		})
	}
}

func asError[T error](err error, target *T) bool { return errors.As(err, target) }

func isAuthError(err error) bool {
	return errors.Is(err, auth.ErrNoToken) || errors.Is(err, auth.ErrInvalidToken)
}

// TestWriteErrorPastTheDeadline: a request whose deadline (Deps.RequestTimeout)
// passed answers 503 with Retry-After, not 500.
func TestWriteErrorPastTheDeadline(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	<-ctx.Done()
	w := httptest.NewRecorder()
	writeError(w, httptest.NewRequest("GET", "/", nil).WithContext(ctx), slog.New(slog.NewJSONHandler(io.Discard, nil)),
		fmt.Errorf("auth: x: %w", context.DeadlineExceeded))
	var body errorBody
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	if w.Code != 503 || body.Error != "service_unavailable" || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("got %d %+v (Retry-After %q), want 503 service_unavailable with Retry-After", w.Code, body, w.Header().Get("Retry-After"))
	}
}
