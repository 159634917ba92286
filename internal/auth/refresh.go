package auth

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"golang.org/x/crypto/chacha20poly1305"
)

// Refresh tokens come in two formats. Both hold a 32-byte random secret
// (256 bits: all of a token's entropy), and the database keeps only its
// SHA-256.
//
//   - Format 2, issued now: the session's id (16 bytes) then the secret,
//     base64url, 64 characters. The session's own row holds the token's
//     state, found by primary key: a rotation is one update of that row.
//   - Format 1 ("legacy"): the secret alone, 43 characters, one row per
//     token in refresh_tokens. Issued before format 2, and during a rolling
//     upgrade from such a release (Config.LegacyRefreshTokens).
const (
	refreshSecretBytes = 32
	legacyTokenChars   = 43 // base64url of the secret
	sessionTokenChars  = 64 // base64url of the session id and the secret
)

var b64url = base64.RawURLEncoding

// refreshToken is a refresh token's parts.
type refreshToken struct {
	// SessionID is the session a format-2 token names; "" for format 1.
	SessionID string
	Secret    []byte
	Hash      [32]byte // SHA-256 of Secret: all the database keeps
}

func (t refreshToken) legacy() bool { return t.SessionID == "" }

// newSecret makes a token's secret; its text depends on the format it is
// given (sessionText, legacyText).
func newSecret() (refreshToken, error) {
	secret := make([]byte, refreshSecretBytes)
	if _, err := rand.Read(secret); err != nil {
		return refreshToken{}, fmt.Errorf("refresh token: %w", err)
	}
	return refreshToken{Secret: secret, Hash: sha256.Sum256(secret)}, nil
}

// sessionText is the format-2 text of a token of session sid.
func (t refreshToken) sessionText(sid string) (string, error) {
	id, err := uuid.Parse(sid)
	if err != nil {
		return "", fmt.Errorf("refresh token: session id %q: %w", sid, err)
	}
	raw := make([]byte, 0, 16+refreshSecretBytes)
	raw = append(append(raw, id[:]...), t.Secret...)
	return b64url.EncodeToString(raw), nil
}

// legacyText is the format-1 text of a token.
func (t refreshToken) legacyText() string { return b64url.EncodeToString(t.Secret) }

// parseRefreshToken decodes a presented token of either format; anything
// not of the exact shape we issue is refused without a database look-up.
func parseRefreshToken(s string) (refreshToken, bool) {
	if len(s) != legacyTokenChars && len(s) != sessionTokenChars {
		return refreshToken{}, false
	}
	raw, err := b64url.Strict().DecodeString(s)
	if err != nil {
		return refreshToken{}, false
	}
	var t refreshToken
	switch len(raw) {
	case refreshSecretBytes:
		t.Secret = raw
	case 16 + refreshSecretBytes:
		id, err := uuid.FromBytes(raw[:16])
		if err != nil || id.Version() != 4 || id.Variant() != uuid.RFC4122 {
			return refreshToken{}, false // we only ever issue random (v4) session ids
		}
		t.SessionID, t.Secret = id.String(), raw[16:]
	default:
		return refreshToken{}, false
	}
	t.Hash = sha256.Sum256(t.Secret)
	return t, true
}

// successorKey derives the key that seals a token's successor from the
// token's own secret: only a holder of the spent token can open the successor.
func successorKey(spent refreshToken) ([]byte, error) {
	return hkdf.Key(sha256.New, spent.Secret, nil, "accounts refresh successor v1", chacha20poly1305.KeySize)
}

// sealSuccessor encrypts next's secret under a key derived from spent,
// bound to spent's hash. (Format 1 sealed the whole token, which was its
// secret: releases before format 2 open what this seals for them.)
func sealSuccessor(spent, next refreshToken) ([]byte, error) {
	key, err := successorKey(spent)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(next.Secret)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, next.Secret, spent.Hash[:]), nil
}

// openSuccessor reverses sealSuccessor: it returns the successor's secret
// and hash (its text depends on its format).
func openSuccessor(spent refreshToken, sealed []byte) (refreshToken, error) {
	key, err := successorKey(spent)
	if err != nil {
		return refreshToken{}, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return refreshToken{}, err
	}
	if len(sealed) < aead.NonceSize() {
		return refreshToken{}, errors.New("sealed successor too short")
	}
	secret, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], spent.Hash[:])
	if err != nil || len(secret) != refreshSecretBytes {
		return refreshToken{}, errors.New("sealed successor does not open")
	}
	return refreshToken{Secret: secret, Hash: sha256.Sum256(secret)}, nil
}
