package auth_test

import (
	"context"
	"errors"
	"testing"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/testdb"
)

// The login paths an attacker could compare: an unknown email and a known
// email with a wrong password must cost the same (one argon2id hash each,
// at the production parameters). Compare with:
//
//	go test -run '^$' -bench 'Login(Unknown|WrongPassword)|Signup' -count 6 ./internal/auth | benchstat -
func benchKit(b *testing.B) *testdb.Kit {
	return testdb.NewKit(b, testdb.KitOptions{Config: func(c *auth.Config) {
		c.Argon2 = auth.Argon2Params{MemoryKiB: 19456, Time: 2, Threads: 1}
	}})
}

func benchLogin(b *testing.B, email string) {
	k := benchKit(b)
	if _, err := k.Service.Signup(context.Background(), "known@example.com", pw, auth.Client{}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := k.Service.Login(context.Background(), email, "not the password at all", auth.Client{}); !errors.Is(err, auth.ErrInvalidCredentials) {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoginUnknownEmail(b *testing.B)  { benchLogin(b, "unknown@example.com") }
func BenchmarkLoginWrongPassword(b *testing.B) { benchLogin(b, "known@example.com") }

func BenchmarkSignupExistingEmail(b *testing.B) {
	k := benchKit(b)
	if _, err := k.Service.Signup(context.Background(), "known@example.com", pw, auth.Client{}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := k.Service.Signup(context.Background(), "known@example.com", pw, auth.Client{}); !errors.Is(err, auth.ErrEmailTaken) {
			b.Fatal(err)
		}
	}
}
