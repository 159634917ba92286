package auth

import (
	"testing"
)

// BenchmarkRefreshTokenHash: making a refresh token and reading one back
// (random bytes, base64url, SHA-256).
func BenchmarkRefreshTokenHash(b *testing.B) {
	rt, _ := newSecret()
	text, _ := rt.sessionText("1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := parseRefreshToken(text); !ok {
			b.Fatal("parse")
		}
	}
}

func BenchmarkNewRefreshToken(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := newSecret(); err != nil {
			b.Fatal(err)
		}
	}
}
