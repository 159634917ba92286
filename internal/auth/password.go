package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// MaxPasswordBytes is the longest password accepted, checked before any hashing.
const MaxPasswordBytes = 1024

// Argon2Params are the argon2id cost parameters.
type Argon2Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

const (
	argonSaltLen = 16
	argonKeyLen  = 32
)

var b64 = base64.RawStdEncoding

// normalizePassword is the one form a password is hashed in: NFC, so that the
// same text typed on two systems is the same password. Nothing is trimmed or
// folded.
func normalizePassword(pw string) []byte { return []byte(norm.NFC.String(pw)) }

// HashPassword returns the PHC string of pw:
// $argon2id$v=19$m=...,t=...,p=...$salt$hash, with a random 16-byte salt.
func HashPassword(pw string, p Argon2Params) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey(normalizePassword(pw), salt, p.Time, p.MemoryKiB, p.Threads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

var errBadHash = errors.New("malformed password hash")

// parsePHC splits an argon2id PHC string.
func parsePHC(encoded string) (p Argon2Params, salt, key []byte, err error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errBadHash
	}
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &threads); err != nil ||
		p.MemoryKiB == 0 || p.Time == 0 || threads == 0 || threads > 255 {
		return p, nil, nil, errBadHash
	}
	p.Threads = uint8(threads)
	if salt, err = b64.DecodeString(parts[4]); err != nil || len(salt) < 8 {
		return p, nil, nil, errBadHash
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) < 16 {
		return p, nil, nil, errBadHash
	}
	return p, salt, key, nil
}

// VerifyPassword reports whether pw matches the PHC string encoded,
// comparing in constant time.
func VerifyPassword(pw, encoded string) (bool, error) {
	p, salt, key, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey(normalizePassword(pw), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// NeedsRehash reports whether encoded was made with other parameters than p.
func NeedsRehash(encoded string, p Argon2Params) bool {
	got, _, _, err := parsePHC(encoded)
	return err != nil || got != p
}

// checkPasswordLength enforces the length rules: at most MaxPasswordBytes
// bytes, at least minLen code points after NFC normalisation.
func checkPasswordLength(field, pw string, minLen int) error {
	switch {
	case pw == "":
		return Invalid(field, "is required")
	case len(pw) > MaxPasswordBytes:
		return Invalid(field, fmt.Sprintf("must be at most %d bytes", MaxPasswordBytes))
	case !utf8.ValidString(pw):
		return Invalid(field, "must be valid UTF-8")
	case utf8.RuneCountInString(norm.NFC.String(pw)) < minLen:
		return Invalid(field, fmt.Sprintf("must be at least %d characters", minLen))
	}
	return nil
}
