package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// requireAdmin authorises on the user's role as it is now, not as the
// token says: a demotion takes effect at once. Returns ErrForbidden or
// ErrInvalidToken.
func (s *Service) requireAdmin(ctx context.Context, p Principal) error {
	u, err := s.Me(ctx, p)
	if err != nil {
		return err
	}
	if u.Role != RoleAdmin {
		return ErrForbidden
	}
	return nil
}

// Page sizes of the cursor-paged listings (users, audit events).
const (
	DefaultPageSize = 50
	MaxPageSize     = 100
)

// ListUsers is the admin listing, paged by an opaque cursor.
// Returns ErrForbidden, ErrInvalidToken (the caller's account is gone) or *ValidationError.
func (s *Service) ListUsers(ctx context.Context, p Principal, limit int, cursor string) ([]User, string, error) {
	if err := s.requireAdmin(ctx, p); err != nil {
		return nil, "", err
	}
	if err := checkLimit(limit); err != nil {
		return nil, "", err
	}
	var after *UserCursor
	if cursor != "" {
		c, err := decodeCursor(cursor)
		if err != nil {
			return nil, "", Invalid("cursor", "is not a cursor from this listing")
		}
		after = &c
	}
	users, err := s.store.ListUsers(ctx, after, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(users) > limit {
		users = users[:limit]
		last := users[limit-1]
		next = encodeCursor(UserCursor{CreatedAt: last.CreatedAt, ID: last.ID})
	}
	return users, next, nil
}

func checkLimit(limit int) error {
	if limit < 1 || limit > MaxPageSize {
		return Invalid("limit", fmt.Sprintf("must be between 1 and %d", MaxPageSize))
	}
	return nil
}

func encodeCursor(c UserCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + "," + c.ID))
}

func decodeCursor(s string) (UserCursor, error) {
	if len(s) > 128 {
		return UserCursor{}, errors.New("cursor too long")
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return UserCursor{}, err
	}
	ts, id, ok := strings.Cut(string(b), ",")
	if !ok || uuid.Validate(id) != nil {
		return UserCursor{}, errors.New("bad cursor")
	}
	micros, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return UserCursor{}, err
	}
	return UserCursor{CreatedAt: time.UnixMicro(micros).UTC(), ID: id}, nil
}

// AdminLogoutUser ends every session of a user and revokes every access
// token issued to them so far.
// Returns ErrForbidden, ErrInvalidToken (the caller's account is gone) or ErrNotFound.
func (s *Service) AdminLogoutUser(ctx context.Context, p Principal, userID string, c Client) error {
	if err := s.requireAdmin(ctx, p); err != nil {
		return err
	}
	if uuid.Validate(userID) != nil {
		return ErrNotFound
	}
	if err := s.logoutUser(ctx, userID); err != nil {
		return err
	}
	s.record(ctx, Event{Type: EventAdminLogout, UserID: userID, Client: c, Detail: map[string]any{"admin_id": p.UserID}})
	return nil
}

// SetRole changes a user's role. The admin check reads the stored role, so
// the change holds from the next request (elsewhere once its notification
// arrives); the token's role claim follows at the next login or refresh.
// Returns *ValidationError or ErrNotFound.
func (s *Service) SetRole(ctx context.Context, email, role string, c Client) (User, error) {
	if !ValidRole(role) {
		return User{}, Invalid("role", "must be user or admin")
	}
	e, err := NormalizeEmail(email)
	if err != nil {
		return User{}, err
	}
	u, err := s.store.SetRole(ctx, e, role, s.now())
	if err != nil {
		return User{}, err
	}
	s.revoke(Revocation{Kind: UserChanged, ID: u.ID})
	s.record(ctx, Event{Type: EventRoleChanged, UserID: u.ID, Client: c, Detail: map[string]any{"role": role}})
	return u, nil
}
