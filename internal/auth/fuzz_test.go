package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/testdb"
)

// FuzzAuthenticate: no string but a token the service issued passes the
// verification and revocation check; everything else is ErrInvalidToken.
func FuzzAuthenticate(f *testing.F) {
	k := testdb.NewKit(f, testdb.KitOptions{})
	if _, err := k.Service.Signup(context.Background(), "fuzz@example.com", pw, auth.Client{}); err != nil {
		f.Fatal(err)
	}
	pair, err := k.Service.Login(context.Background(), "fuzz@example.com", pw, auth.Client{})
	if err != nil {
		f.Fatal(err)
	}
	valid := pair.AccessToken
	parts := strings.Split(valid, ".")
	f.Add(valid)
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(parts[0] + ".." + parts[2])
	f.Add(strings.ToUpper(valid))
	f.Add(pair.RefreshToken)
	f.Fuzz(func(t *testing.T, token string) {
		p, err := k.Service.Authenticate(context.Background(), token)
		if token == valid {
			if err != nil {
				t.Fatalf("the issued token failed: %v", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("accepted a token the service did not issue: %q (sub %s)", token, p.UserID)
		}
		if !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("error %v, want ErrInvalidToken", err)
		}
	})
}

// FuzzRefresh: a refresh token that was never issued is ErrInvalidGrant
// (or a validation error when empty), whatever its bytes; never a success
// and never another error from the database look-up.
func FuzzRefresh(f *testing.F) {
	k := testdb.NewKit(f, testdb.KitOptions{})
	for _, s := range []string{"", "x", strings.Repeat("A", 43), strings.Repeat("_", 43), "' OR 1=1 --",
		strings.Repeat("A", 42) + "=", "\x00\x00", strings.Repeat("é", 43)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		_, err := k.Service.Refresh(context.Background(), token, auth.Client{})
		var ve *auth.ValidationError
		switch {
		case token == "" && errors.As(err, &ve):
		case errors.Is(err, auth.ErrInvalidGrant):
		default:
			t.Fatalf("Refresh(%q) = %v, want ErrInvalidGrant", token, err)
		}
	})
}
