package auth

import (
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sealing private signing keys at rest with the key-encryption key
// (KEY_ENCRYPTION_KEY): XChaCha20-Poly1305 with the kid as associated data.

// SealKey encrypts a private key with the key-encryption key, binding it to kid.
func SealKey(kek []byte, kid string, der []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(der)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	return aead.Seal(nonce, nonce, der, []byte(kid)), nil
}

// OpenKey reverses SealKey.
func OpenKey(kek []byte, kid string, sealed []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, fmt.Errorf("open key: %w", err)
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("open key: too short")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(kid))
}

// AlgSecret marks, among the keys Reseal takes, a secret (the email key)
// rather than a signing key: raw bytes, sealed like a private key.
const AlgSecret = "secret"

// SecretKID is the kid a secret is sealed under (its associated data).
func SecretKID(name string) string { return "secret:" + name }

// Reseal returns keys sealed with newKEK. A key already sealed with newKEK
// is kept; one sealed with oldKEK is opened with it; an unsealed one is
// sealed. A key that opens with neither is an error naming its kid.
func Reseal(keys []StoredKey, oldKEK, newKEK []byte) ([]StoredKey, error) {
	if len(newKEK) != chacha20poly1305.KeySize {
		return nil, errors.New("reseal: the new key-encryption key must be 32 bytes")
	}
	out := make([]StoredKey, 0, len(keys))
	for _, k := range keys {
		der := k.PrivateKey
		if k.Sealed {
			if _, err := OpenKey(newKEK, k.KID, der); err == nil {
				out = append(out, k) // already sealed with the new key
				continue
			}
			if oldKEK == nil {
				return nil, fmt.Errorf("reseal: key %s is sealed with another key; set OLD_KEY_ENCRYPTION_KEY", k.KID)
			}
			var err error
			if der, err = OpenKey(oldKEK, k.KID, der); err != nil {
				return nil, fmt.Errorf("reseal: key %s opens with neither key-encryption key", k.KID)
			}
		}
		if _, err := x509.ParsePKCS8PrivateKey(der); err != nil && k.Alg != AlgSecret {
			return nil, fmt.Errorf("reseal: key %s is not a private key: %w", k.KID, err)
		}
		sealed, err := SealKey(newKEK, k.KID, der)
		if err != nil {
			return nil, err
		}
		k.PrivateKey, k.Sealed = sealed, true
		out = append(out, k)
	}
	return out, nil
}
