package testdb

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"
)

// CraftJWT builds a compact JWS from raw header and claims, signed by sign
// (nil: an empty signature), for tests that play the attacker.
func CraftJWT(tb testing.TB, header, claims map[string]any, sign func([]byte) []byte) string {
	tb.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + enc.EncodeToString(sig)
}

// SigningKey reads the active EdDSA signing key back from the database, so
// that tests can sign claims the verifier must still refuse.
func (k *Kit) SigningKey(tb testing.TB) (string, ed25519.PrivateKey) {
	tb.Helper()
	var kid string
	var der []byte
	err := k.Pool.QueryRow(context.Background(),
		`SELECT kid, private_key FROM signing_keys WHERE retired_at IS NULL`).Scan(&kid, &der)
	if err != nil {
		tb.Fatal(err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		tb.Fatal(err)
	}
	return kid, priv.(ed25519.PrivateKey)
}

// Header returns a valid access-token header for kid, with mod applied
// (a nil value deletes the member).
func Header(kid string, mod map[string]any) map[string]any {
	return apply(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": kid}, mod)
}

// Claims returns valid access-token claims for a user's session at now,
// with mod applied (a nil value deletes the claim).
func Claims(userID, sessionID string, now time.Time, mod map[string]any) map[string]any {
	return apply(map[string]any{
		"iss": Issuer, "sub": userID, "aud": []string{Audience},
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
		"jti": "crafted-" + randomName(""), "sid": sessionID, "role": "user",
	}, mod)
}

func apply(m, mod map[string]any) map[string]any {
	for k, v := range mod {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}
