package auth

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// NormalizeEmail trims email, puts it in Unicode NFC (so that "rené"
// typed precomposed or decomposed is one address), and checks that it is
// one plain address (local@domain, no display name, quotes, brackets,
// spaces or control characters, at most 254 bytes with a local part of at
// most 64). Case is kept as given; lookups compare case-insensitively.
// Returns *ValidationError.
func NormalizeEmail(email string) (string, error) {
	e := strings.TrimSpace(email)
	if e == "" {
		return "", Invalid("email", "is required")
	}
	if len(e) > 4*254 || !utf8.ValidString(e) {
		return "", Invalid("email", "is not a valid email address")
	}
	e = norm.NFC.String(e)
	if len(e) > 254 {
		return "", Invalid("email", "is not a valid email address")
	}
	for _, r := range e {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError ||
			strings.ContainsRune("\"<>()[]\\,;:`", r) || unicode.Is(unicode.Cf, r) {
			return "", Invalid("email", "is not a valid email address")
		}
	}
	at := strings.LastIndexByte(e, '@')
	if at < 1 || at > 64 || at == len(e)-1 || strings.Count(e, "@") != 1 {
		return "", Invalid("email", "is not a valid email address")
	}
	addr, err := mail.ParseAddress(e)
	if err != nil || addr.Address != e || addr.Name != "" {
		return "", Invalid("email", "is not a valid email address")
	}
	return e, nil
}
