package auth

import (
	"context"
	"encoding/base64"
	"log/slog"
	"strconv"
	"time"
)

// Event is one entry of the audit trail: never a password or a token.
type Event struct {
	ID        int64 // set by the store
	Type      string
	UserID    string
	SessionID string
	Client    Client
	Detail    map[string]any
	At        time.Time
}

// Security event names.
const (
	EventSignup          = "signup"
	EventLoginOK         = "login_succeeded"
	EventLoginFailed     = "login_failed"
	EventRefreshReuse    = "refresh_reuse_detected"
	EventLogout          = "logout"
	EventLogoutAll       = "logout_all"
	EventSessionDeleted  = "session_deleted"
	EventPasswordChanged = "password_changed"
	// EventPasswordChangeFailed is a wrong current password on a password
	// change (or another re-authentication).
	EventPasswordChangeFailed = "password_change_failed"
	EventRoleChanged          = "role_changed"
	EventAdminLogout          = "admin_logout_user"
	EventKeyRotated           = "key_rotated"
	EventKeysResealed         = "keys_resealed"
	EventRateLimited          = "rate_limited"

	EventEmailVerificationSent  = "email_verification_sent"
	EventEmailVerified          = "email_verified"
	EventPasswordResetRequested = "password_reset_requested"
	EventPasswordResetCompleted = "password_reset_completed"
	EventEmailChangeRequested   = "email_change_requested"
	EventEmailChangeConfirmed   = "email_change_confirmed"
	EventAccountDenied          = "account_denied"
	// EventEmailAbandoned is a mail given up: refused for good, or past its
	// token's lifetime.
	EventEmailAbandoned = "email_abandoned"
)

func (s *Service) record(ctx context.Context, e Event) {
	e.At = s.now()
	attrs := []slog.Attr{slog.String("event", e.Type), slog.String("request_id", e.Client.RequestID),
		slog.String("ip", e.Client.IP)}
	if e.UserID != "" {
		attrs = append(attrs, slog.String("user_id", e.UserID))
	}
	if e.SessionID != "" {
		attrs = append(attrs, slog.String("session_id", e.SessionID))
	}
	for k, v := range e.Detail {
		attrs = append(attrs, slog.Any(k, v))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "security event", attrs...)
	// The audit row must not be lost because the request was cancelled.
	if err := s.store.RecordEvent(context.WithoutCancel(ctx), e); err != nil {
		s.log.Error("audit event not stored", "event", e.Type, "err", err)
	}
}

// MyEvents pages the caller's own audit trail, newest first.
// Returns *ValidationError.
func (s *Service) MyEvents(ctx context.Context, p Principal, limit int, cursor string) ([]Event, string, error) {
	return s.events(ctx, p.UserID, limit, cursor)
}

// AllEvents pages everyone's audit trail, newest first.
// Returns ErrForbidden, ErrInvalidToken (the caller's account is gone) or *ValidationError.
func (s *Service) AllEvents(ctx context.Context, p Principal, limit int, cursor string) ([]Event, string, error) {
	if err := s.requireAdmin(ctx, p); err != nil {
		return nil, "", err
	}
	return s.events(ctx, "", limit, cursor)
}

func (s *Service) events(ctx context.Context, userID string, limit int, cursor string) ([]Event, string, error) {
	if err := checkLimit(limit); err != nil {
		return nil, "", err
	}
	var before int64
	if cursor != "" {
		b, err := base64.RawURLEncoding.Strict().DecodeString(cursor)
		if err == nil && len(b) <= 20 {
			before, err = strconv.ParseInt(string(b), 10, 64)
		}
		if err != nil || before < 1 || len(b) > 20 {
			return nil, "", Invalid("cursor", "is not a cursor from this listing")
		}
	}
	events, err := s.store.ListEvents(ctx, userID, before, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(events) > limit {
		events = events[:limit]
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(events[limit-1].ID, 10)))
	}
	return events, next, nil
}
