package auth

import (
	"testing"
)

// BenchmarkRefreshTokenHash: making a refresh token and reading one back
// (random bytes, base64url, SHA-256).
func BenchmarkRefreshTokenHash(b *testing.B) {
	rt, _ := newRefreshToken()
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := parseRefreshToken(rt.Text); !ok {
			b.Fatal("parse")
		}
	}
}

func BenchmarkNewRefreshToken(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := newRefreshToken(); err != nil {
			b.Fatal(err)
		}
	}
}
