package auth_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/testdb"
)

// argon2FromEnv reads the ARGON2_* parameters the service would use.
func argon2FromEnv() auth.Argon2Params {
	get := func(k string, def uint64) uint64 {
		if v, err := strconv.ParseUint(os.Getenv(k), 10, 32); err == nil {
			return v
		}
		return def
	}
	return auth.Argon2Params{MemoryKiB: uint32(get("ARGON2_MEMORY_KIB", 19456)), Time: uint32(get("ARGON2_TIME", 2)),
		Threads: uint8(get("ARGON2_THREADS", 1))}
}

// BenchmarkArgon2Parallel is the login ceiling: argon2id hashes per second
// at the configured parameters across all cores (1e9 / ns/op).
func BenchmarkArgon2Parallel(b *testing.B) {
	p := argon2FromEnv()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := auth.HashPassword("correct horse battery", p); err != nil {
				b.Error(err)
			}
		}
	})
}

func BenchmarkIssueToken(b *testing.B) {
	k := testdb.NewKit(b, testdb.KitOptions{})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Service.Tokens().Issue("7c1f7a0e-8f0e-4d53-9a57-3f4f5c0d2b11", "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed", auth.RoleUser, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

// benchTokens logs a user in n times and returns the access tokens.
func benchTokens(b *testing.B, k *testdb.Kit, n int) []string {
	b.Helper()
	if _, err := k.Service.Signup(context.Background(), "bench@example.com", pw, auth.Client{}); err != nil {
		b.Fatal(err)
	}
	out := make([]string, n)
	for i := range out {
		p, err := k.Service.Login(context.Background(), "bench@example.com", pw, auth.Client{})
		if err != nil {
			b.Fatal(err)
		}
		out[i] = p.AccessToken
	}
	return out
}

// BenchmarkAuthenticateCached is the steady state of GET /v1/me's token
// check: a token seen before, with the revocation check from memory.
func BenchmarkAuthenticateCached(b *testing.B) {
	k := testdb.NewKit(b, testdb.KitOptions{})
	tok := benchTokens(b, k, 1)[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Service.Authenticate(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateUncached is a token's first use on an instance: the
// signature and claims checked (no cache), then the revocation check from memory.
func BenchmarkAuthenticateUncached(b *testing.B) {
	k := testdb.NewKit(b, testdb.KitOptions{})
	toks := benchTokens(b, k, 64)
	for _, t := range toks { // the session is known; only the token is new
		if _, err := k.Service.Authenticate(context.Background(), t); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p, err := k.Service.Tokens().ParseUncached(context.Background(), toks[i%len(toks)])
		if err != nil {
			b.Fatal(err)
		}
		if revoked, ok := k.Revocations.Check(p); revoked || !ok {
			b.Fatal("revoked or unsynced")
		}
		i++
	}
}
