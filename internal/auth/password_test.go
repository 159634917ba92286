package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
)

var cheap = Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1}

func TestHashPasswordPHC(t *testing.T) {
	t.Parallel()
	h1, err := HashPassword("correct horse battery", Argon2Params{MemoryKiB: 19456, Time: 2, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	phc := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !phc.MatchString(string(h1)) {
		t.Fatalf("hash %q is not an argon2id PHC string with a 16-byte salt and 32-byte tag", h1)
	}
	h2, _ := HashPassword("correct horse battery", Argon2Params{MemoryKiB: 19456, Time: 2, Threads: 1})
	if h1 == h2 {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
}

func TestVerifyPassword(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 100)
	h, _ := HashPassword("correct horse battery", cheap)
	hLong, _ := HashPassword(long, cheap)
	hNFC, _ := HashPassword("caf\u00e9 au lait!!", cheap)
	hNUL, _ := HashPassword("correct\x00horse battery", cheap)
	tests := []struct {
		name, pw string
		hash     PasswordHash
		want     bool
	}{
		{"right password", "correct horse battery", h, true},
		{"wrong password", "correct horse batterx", h, false},
		{"case-swapped", "Correct horse battery", h, false},
		{"trailing space not trimmed", "correct horse battery ", h, false},
		{"truncated is not enough", long[:72], hLong, false},
		{"whole long password", long, hLong, true},
		{"NFD form of an NFC password", "cafe\u0301 au lait!!", hNFC, true},
		{"NUL inside", "correct\x00horse battery", hNUL, true},
		{"NUL dropped", "correcthorse battery", hNUL, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := VerifyPassword(tc.pw, tc.hash)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("VerifyPassword = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestVerifyPasswordMalformedHash(t *testing.T) {
	t.Parallel()
	for _, h := range []PasswordHash{"", "plain", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=18$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "$argon2id$v=19$m=0,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA"} {
		if ok, err := VerifyPassword("x", h); ok || err == nil {
			t.Errorf("VerifyPassword(%q) = %v, %v; want false and an error", string(h), ok, err)
		}
	}
}

func TestNeedsRehash(t *testing.T) {
	t.Parallel()
	h, _ := HashPassword("correct horse battery", cheap)
	if NeedsRehash(h, cheap) {
		t.Error("a hash with the current parameters needs no rehash")
	}
	if !NeedsRehash(h, Argon2Params{MemoryKiB: 128, Time: 1, Threads: 1}) {
		t.Error("a hash with weaker parameters must be rehashed")
	}
}

func TestCheckPasswordLength(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, pw string
		ok       bool
	}{
		{"empty", "", false},
		{"11 characters", strings.Repeat("a", 11), false},
		{"12 characters", "abcdefghijkl", true},
		{"12 code points of 2 bytes", strings.Repeat("é", 12), true},
		{"11 code points after NFC (22 before)", strings.Repeat("e\u0301", 11), false},
		{"1024 bytes", strings.Repeat("a", 1024), true},
		{"1025 bytes", strings.Repeat("a", 1025), false},
		{"invalid UTF-8", "abcdefghijkl\xff", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkPasswordLength("password", tc.pw, 12)
			var ve *ValidationError
			if tc.ok != (err == nil) || (err != nil && (!errors.As(err, &ve) || ve.Fields["password"] == "")) {
				t.Fatalf("checkPasswordLength = %v, want ok=%v with fields.password", err, tc.ok)
			}
		})
	}
}

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"alice@example.com", "alice@example.com", true},
		{"  Alice@Example.COM \t", "Alice@Example.COM", true},
		{"a.b+tag@sub.example.org", "a.b+tag@sub.example.org", true},
		{"", "", false},
		{"   ", "", false},
		{"no-at-sign", "", false},
		{"@example.com", "", false},
		{"alice@", "", false},
		{"a@b@example.com", "", false},
		{"Alice <alice@example.com>", "", false},
		{"alice@example.com\r\nBcc: v@y.io", "", false},
		{`"><script>alert(1)</script>"@example.org`, "", false},
		{"ali\u200bce@example.com", "", false},
		{"alice\x00@example.com", "", false},
		{"alice@exa mple.com", "", false},
		{"' OR '1'='1'--@x.io", "", false},
		{strings.Repeat("a", 65) + "@example.com", "", false},
		{"a@" + strings.Repeat("b", 250) + ".com", "", false},
		{"al\xffice@example.com", "", false},
	}
	for _, tc := range tests {
		got, err := NormalizeEmail(tc.in)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestRefreshTokenFormat(t *testing.T) {
	t.Parallel()
	sid := uuid.NewString()
	seen := map[string]bool{}
	for range 1000 {
		rt, err := newSecret()
		if err != nil {
			t.Fatal(err)
		}
		v2, err := rt.sessionText(sid)
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range []string{v2, rt.legacyText()} {
			if (len(text) != 64 && len(text) != 43) || seen[text] {
				t.Fatalf("token %q: wrong length or repeated", text)
			}
			seen[text] = true
			back, ok := parseRefreshToken(text)
			if !ok || back.Hash != rt.Hash {
				t.Fatal("parseRefreshToken does not read back a token")
			}
			if wantSID := map[bool]string{true: sid, false: ""}[len(text) == 64]; back.SessionID != wantSID {
				t.Fatalf("session id %q, want %q", back.SessionID, wantSID)
			}
		}
	}
	notV4 := b64url.EncodeToString(append(make([]byte, 16), make([]byte, 32)...)) // a nil UUID
	for _, bad := range []string{"", "short", strings.Repeat("A", 44), strings.Repeat("+", 43), strings.Repeat("A", 42) + "B",
		strings.Repeat("A", 63), strings.Repeat("A", 65), notV4} {
		if _, ok := parseRefreshToken(bad); ok {
			t.Errorf("parseRefreshToken(%q) accepted", bad)
		}
	}
}

func TestSealedSuccessorOpensOnlyWithTheSpentToken(t *testing.T) {
	t.Parallel()
	spent, _ := newSecret()
	next, _ := newSecret()
	other, _ := newSecret()
	sealed, err := sealSuccessor(spent, next)
	if err != nil {
		t.Fatal(err)
	}
	got, err := openSuccessor(spent, sealed)
	if err != nil || !bytes.Equal(got.Secret, next.Secret) || got.Hash != next.Hash {
		t.Fatalf("openSuccessor = %x, %v; want the successor", got.Secret, err)
	}
	if _, err := openSuccessor(other, sealed); err == nil {
		t.Fatal("another token opened the sealed successor")
	}
	if bytes.Contains(sealed, next.Secret) || strings.Contains(string(sealed), next.legacyText()) {
		t.Fatal("sealed successor holds the token in the clear")
	}
}

func TestPasswordStrength(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pw, email string
		ok        bool
	}{
		{"password1234", "a@example.com", false},
		{"qwertyuiop123", "a@example.com", false},
		{"123456789012", "a@example.com", false},
		{"aaaaaaaaaaaa", "a@example.com", false},
		{"abcabcabcabc", "a@example.com", false},
		{"            ", "a@example.com", false},
		{"alice@example.com", "alice@example.com", false},
		{"xAlice@Example.comx", "alice@example.com", false},
		{"aliceexample2024", "alice@example.com", false},
		{"accountspassword", "a@example.com", false},
		{"correct horse battery", "a@example.com", true},
		{"zebra piano lamp", "a@example.com", true},
		{"Tr0ub4dor&3xyz", "a@example.com", true},
		{"日本語のパスワードは長い", "a@example.com", true},
		{strings.Repeat("xq7!", 256), "a@example.com", true}, // only the first 64 code points are scored
	}
	for _, tc := range tests {
		err := checkPasswordStrength("password", tc.pw, tc.email)
		var ve *ValidationError
		if tc.ok != (err == nil) || (err != nil && (!errors.As(err, &ve) || ve.Fields["password"] == "")) {
			t.Errorf("strength(%q) = %v, want ok=%v", tc.pw, err, tc.ok)
		}
	}
}

func TestPasswordHashNeverPrints(t *testing.T) {
	t.Parallel()
	h, _ := HashPassword("correct horse battery", cheap)
	u := User{ID: "u1", Email: "a@example.com", PasswordHash: h}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("user", "user", u, "hash", h)
	j, _ := json.Marshal(u)
	for _, out := range []string{
		fmt.Sprintf("%v %+v %#v %s %q %x", u, u, u, h, h, h),
		fmt.Sprint(h), fmt.Sprintln(u), logged.String(), string(j),
		fmt.Errorf("wrapped: %v", u).Error(),
	} {
		if strings.Contains(out, "argon2id") || strings.Contains(out, string(h)[30:]) {
			t.Fatalf("the hash shows in %q", out)
		}
		if !strings.Contains(out, "[redacted]") {
			t.Fatalf("no [redacted] in %q", out)
		}
	}
}
