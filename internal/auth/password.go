package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"unicode/utf8"

	zxcvbn "github.com/ccojocar/zxcvbn-go"
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

// PasswordHash is an argon2id PHC string. Whatever prints or logs it (fmt
// with any verb, slog, encoding/json) gets "[redacted]", so that a %+v of
// a User in a log line or an error leaks nothing. The store, which must
// keep it, converts it with string().
type PasswordHash string

const redacted = "[redacted]"

// String is "[redacted]".
func (PasswordHash) String() string { return redacted }

// GoString is "[redacted]".
func (PasswordHash) GoString() string { return redacted }

// Format writes "[redacted]" whatever the verb.
func (PasswordHash) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue is "[redacted]".
func (PasswordHash) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON is "[redacted]".
func (PasswordHash) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// HashPassword returns the PHC string of pw:
// $argon2id$v=19$m=...,t=...,p=...$salt$hash, with a random 16-byte salt.
func HashPassword(pw string, p Argon2Params) (PasswordHash, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey(normalizePassword(pw), salt, p.Time, p.MemoryKiB, p.Threads, argonKeyLen)
	return PasswordHash(fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))), nil
}

var errBadHash = errors.New("malformed password hash")

// parsePHC splits an argon2id PHC string.
func parsePHC(encoded PasswordHash) (p Argon2Params, salt, key []byte, err error) {
	parts := strings.Split(string(encoded), "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errBadHash
	}
	p, ok := parsePHCParams(parts[3])
	if !ok {
		return p, nil, nil, errBadHash
	}
	if salt, err = b64.DecodeString(parts[4]); err != nil || len(salt) < 8 {
		return p, nil, nil, errBadHash
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) < 16 {
		return p, nil, nil, errBadHash
	}
	return p, salt, key, nil
}

// parsePHCParams reads the parameter field of a PHC string: "m=…,t=…,p=…".
func parsePHCParams(field string) (p Argon2Params, ok bool) {
	var threads uint32
	if _, err := fmt.Sscanf(field, "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &threads); err != nil ||
		p.MemoryKiB == 0 || p.Time == 0 || threads == 0 || threads > 255 ||
		field != fmt.Sprintf("m=%d,t=%d,p=%d", p.MemoryKiB, p.Time, threads) {
		return Argon2Params{}, false
	}
	p.Threads = uint8(threads)
	return p, true
}

// VerifyPassword reports whether pw matches the PHC string encoded,
// comparing in constant time.
func VerifyPassword(pw string, encoded PasswordHash) (bool, error) {
	p, salt, key, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey(normalizePassword(pw), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// NeedsRehash reports whether encoded was made with other parameters than p,
// or is not an argon2id hash it can read.
func NeedsRehash(encoded PasswordHash, p Argon2Params) bool {
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

// Strength policy (NIST SP 800-63B §3.1.1.2): no composition rules, but
// passwords that are common, breached-style, repetitive, sequential or made
// of the user's own details are refused. zxcvbn estimates guessability
// from dictionaries of common passwords, names and words, keyboard walks,
// repeats, sequences and dates, plus the user's own inputs.
const (
	minStrength = 3 // zxcvbn score 0–4; 3 is "safely unguessable"
	// strengthRunes bounds the part of a password zxcvbn looks at: its cost
	// grows fast with length (a 400-character repeat takes seconds).
	strengthRunes = 64
)

// checkPasswordStrength refuses a guessable password, naming the reason.
func checkPasswordStrength(field, pw, email string) error {
	pw = norm.NFC.String(pw)
	if r := []rune(pw); len(r) > strengthRunes {
		pw = string(r[:strengthRunes])
	}
	inputs := []string{"accounts", "account", "password"}
	if email != "" {
		e := strings.ToLower(email)
		local, domain, _ := strings.Cut(e, "@")
		inputs = append(inputs, e, local, domain)
		inputs = append(inputs, strings.FieldsFunc(local+"."+domain, func(r rune) bool {
			return r == '.' || r == '-' || r == '_' || r == '+'
		})...)
	}
	if email != "" && strings.Contains(strings.ToLower(pw), strings.ToLower(email)) {
		return Invalid(field, "must not contain your email address")
	}
	if zxcvbn.PasswordStrength(pw, inputs).Score < minStrength {
		return Invalid(field, "is too easy to guess: avoid common passwords, repeats, sequences and your own details (a few unrelated words work well)")
	}
	return nil
}

// checkNewPassword applies every rule a new password must meet.
func checkNewPassword(field, pw, email string, minLen int) error {
	if err := checkPasswordLength(field, pw, minLen); err != nil {
		return err
	}
	return checkPasswordStrength(field, pw, email)
}
