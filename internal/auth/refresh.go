package auth

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// refreshTokenBytes is the entropy of a refresh token: 256 bits.
const refreshTokenBytes = 32

// refreshToken is a refresh token in its three forms.
type refreshToken struct {
	Text string   // what the client holds: base64url of Raw, no padding
	Raw  []byte   // the random bytes
	Hash [32]byte // SHA-256 of Raw: all the database keeps
}

func newRefreshToken() (refreshToken, error) {
	raw := make([]byte, refreshTokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return refreshToken{}, fmt.Errorf("refresh token: %w", err)
	}
	return refreshToken{Text: base64.RawURLEncoding.EncodeToString(raw), Raw: raw, Hash: sha256.Sum256(raw)}, nil
}

// parseRefreshToken decodes a presented token; anything not of the exact
// shape we issue is refused without a database look-up.
func parseRefreshToken(s string) (refreshToken, bool) {
	if len(s) != base64.RawURLEncoding.EncodedLen(refreshTokenBytes) {
		return refreshToken{}, false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(raw) != refreshTokenBytes {
		return refreshToken{}, false
	}
	return refreshToken{Text: s, Raw: raw, Hash: sha256.Sum256(raw)}, true
}

// successorKey derives the key that seals a token's successor from the
// token itself: only a holder of the spent token can open the successor.
func successorKey(spent refreshToken) ([]byte, error) {
	return hkdf.Key(sha256.New, spent.Raw, nil, "accounts refresh successor v1", chacha20poly1305.KeySize)
}

// sealSuccessor encrypts next under a key derived from spent, bound to spent's hash.
func sealSuccessor(spent, next refreshToken) ([]byte, error) {
	key, err := successorKey(spent)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(next.Raw)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, next.Raw, spent.Hash[:]), nil
}

// openSuccessor reverses sealSuccessor.
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
	raw, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], spent.Hash[:])
	if err != nil || len(raw) != refreshTokenBytes {
		return refreshToken{}, errors.New("sealed successor does not open")
	}
	return refreshToken{Text: base64.RawURLEncoding.EncodeToString(raw), Raw: raw, Hash: sha256.Sum256(raw)}, nil
}
