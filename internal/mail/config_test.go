package mail_test

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/accounts/internal/mail"
)

const (
	from     = "Accounts <no-reply@localhost>"
	password = "Sup3r-S3cret"
)

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, url, from string
		o               mail.Options
		want            []string // in the error, besides the variable's name
	}{
		{"empty", "", from, mail.Options{}, []string{"SMTP_URL", "not set"}},
		{"bad scheme", "ftp://u:" + password + "@mail.example.test", from, mail.Options{}, []string{"SMTP_URL", `"ftp"`}},
		{"mailto", "mailto:u:" + password + "@mail.example.test", from, mail.Options{}, []string{"SMTP_URL", "scheme"}},
		{"no scheme", "u:" + password + "@mail.example.test:587", from, mail.Options{}, []string{"SMTP_URL", "scheme"}},
		{"no scheme, no colon", "mail.example.test", from, mail.Options{}, []string{"SMTP_URL", "no scheme"}},
		{"port too big", "smtp://u:" + password + "@mail.example.test:99999", from, mail.Options{}, []string{"SMTP_URL", "port"}},
		{"port zero", "smtp+insecure://mail.example.test:0", from, mail.Options{}, []string{"SMTP_URL", "port"}},
		{"port empty", "smtp://u:" + password + "@mail.example.test:", from, mail.Options{}, []string{"SMTP_URL", "port"}},
		{"port not a number", "smtp://u:" + password + "@mail.example.test:smtp", from, mail.Options{}, []string{"SMTP_URL", "not a valid URL"}},
		{"missing host", "smtp://u:" + password + "@:587", from, mail.Options{}, []string{"SMTP_URL", "no host"}},
		{"missing host, no port", "smtps://", from, mail.Options{}, []string{"SMTP_URL", "no host"}},
		{"unescaped slash in password", "smtp://u:12/34" + password + "@mail.example.test", from, mail.Options{}, []string{"SMTP_URL", "percent-encode"}},
		{"unescaped slash, port-like", "smtp://u:" + password + "/x@mail.example.test", from, mail.Options{}, []string{"SMTP_URL", "percent-encode"}},
		{"unescaped hash in password", "smtp://u:" + password + "#x@mail.example.test", from, mail.Options{}, []string{"SMTP_URL"}},
		{"unescaped question mark", "smtp://u:1?" + password + "@mail.example.test", from, mail.Options{}, []string{"SMTP_URL"}},
		{"space in host", "smtp://u:" + password + "@mail example.test", from, mail.Options{}, []string{"SMTP_URL", "not a valid URL"}},
		{"user without password", "smtp://u@mail.example.test", from, mail.Options{}, []string{"SMTP_URL", "no password"}},
		{"password without user", "smtp://:" + password + "@mail.example.test", from, mail.Options{}, []string{"SMTP_URL", "no user"}},
		{"unknown auth", "smtp://u:" + password + "@mail.example.test?auth=cram-md5", from, mail.Options{}, []string{"SMTP_URL", "plain or login"}},
		{"auth without credentials", "smtp://mail.example.test?auth=plain", from, mail.Options{}, []string{"SMTP_URL", "auth"}},
		{"unknown parameter", "smtp://u:" + password + "@mail.example.test?tls=off", from, mail.Options{}, []string{"SMTP_URL", "parameter"}},
		{"path", "smtp://u:" + password + "@mail.example.test/x", from, mail.Options{}, []string{"SMTP_URL", "path"}},
		{"file relative", "file://out/mail", from, mail.Options{}, []string{"SMTP_URL", "absolute"}},
		{"file opaque", "file:out", from, mail.Options{}, []string{"SMTP_URL", "absolute"}},
		{"file query", "file:///tmp/x?y=1", from, mail.Options{}, []string{"SMTP_URL", "query"}},
		{"file user", "file://u:" + password + "@localhost/tmp/x", from, mail.Options{}, []string{"SMTP_URL", "user"}},
		{"from empty", "smtp+insecure://localhost:2525", "", mail.Options{}, []string{"MAIL_FROM", "not set"}},
		{"from not an address", "smtp+insecure://localhost:2525", "Accounts", mail.Options{}, []string{"MAIL_FROM"}},
		{"from two addresses", "smtp+insecure://localhost:2525", "a@example.test, b@example.test", mail.Options{}, []string{"MAIL_FROM"}},
		{"from with CRLF", "smtp+insecure://localhost:2525", "a@example.test\r\nBcc: x@example.test", mail.Options{}, []string{"MAIL_FROM", "line break"}},
		{"from with LF in name", "smtp+insecure://localhost:2525", "Acc\nounts <a@example.test>", mail.Options{}, []string{"MAIL_FROM", "line break"}},
		{"from non-ASCII local part", "smtp+insecure://localhost:2525", "Konten <jürgen@example.test>", mail.Options{}, []string{"MAIL_FROM", "ASCII"}},
		{"from non-ASCII domain", "smtp+insecure://localhost:2525", "no-reply@bücher.example", mail.Options{}, []string{"MAIL_FROM", "ASCII"}},
		{"HELO with a space", "smtp+insecure://localhost:2525", from, mail.Options{HELO: "a b"}, []string{"HELO"}},
		{"HELO with CRLF", "smtp+insecure://localhost:2525", from, mail.Options{HELO: "a\r\nMAIL FROM:<x>"}, []string{"HELO"}},
		{"negative timeout", "smtp+insecure://localhost:2525", from, mail.Options{Timeout: -time.Second}, []string{"Timeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := mail.New(tc.url, tc.from, tc.o)
			if err == nil {
				t.Fatalf("New accepted it: %v", m)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if !strings.HasPrefix(msg, "mail: ") {
				t.Errorf("error %q lacks the package prefix", msg)
			}
			for _, secret := range []string{password, url.QueryEscape(password), "12/34", "S3cret"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q contains the password (%q)", msg, secret)
				}
			}
		})
	}
}

func TestNewAccepts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	for _, tc := range []struct {
		name, url, from, want string
	}{
		{"smtps default port", "smtps://u:" + password + "@mail.example.test", from, "smtps://u@mail.example.test:465 (implicit TLS, AUTH PLAIN)"},
		{"smtp default port", "smtp://u:" + password + "@mail.example.test", from, "smtp://u@mail.example.test:587 (STARTTLS required, AUTH PLAIN)"},
		{"smtp login", "smtp://u:" + password + "@mail.example.test:2587?auth=login", from, "smtp://u@mail.example.test:2587 (STARTTLS required, AUTH LOGIN)"},
		{"smtp auth upper case", "smtp://u:" + password + "@mail.example.test?auth=LOGIN", from, "smtp://u@mail.example.test:587 (STARTTLS required, AUTH LOGIN)"},
		{"escaped password", "smtps://user%40example.test:" + url.QueryEscape("p@ss/w:rd#?") + "@mail.example.test:4650", from, "smtps://user%40example.test@mail.example.test:4650 (implicit TLS, AUTH PLAIN)"},
		{"insecure default port", "smtp+insecure://localhost", from, "smtp+insecure://localhost:25 (no TLS: development only)"},
		{"insecure with auth", "smtp+insecure://u:" + password + "@localhost:1025", from, "smtp+insecure://u@localhost:1025 (no TLS: development only, AUTH PLAIN)"},
		{"no credentials", "smtps://[::1]:4650", from, "smtps://[::1]:4650 (implicit TLS)"},
		{"trailing slash", "smtp://mail.example.test:587/", from, "smtp://mail.example.test:587 (STARTTLS required)"},
		{"file", "file://" + dir, from, "file://" + filepath.ToSlash(dir) + " (development: writes .eml files)"},
		{"file localhost", "file://localhost" + dir, "no-reply@localhost", "file://" + filepath.ToSlash(dir) + " (development: writes .eml files)"},
		{"from non-ASCII name", "smtp+insecure://localhost:2525", "Kontën <no-reply@example.test>", "smtp+insecure://localhost:2525 (no TLS: development only)"},
		{"from quoted name", "smtp+insecure://localhost:2525", `"Acme, Accounts" <no-reply@example.test>`, "smtp+insecure://localhost:2525 (no TLS: development only)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := mail.New(tc.url, tc.from, mail.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := m.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			if strings.Contains(m.String(), password) || strings.Contains(m.String(), "p@ss") {
				t.Errorf("String() %q contains the password", m.String())
			}
		})
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("file:// directory mode %v, want a directory 0700", fi.Mode())
	}
}

func TestNewFileNotADirectory(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := mail.New("file://"+f, from, mail.Options{}); err == nil || !strings.Contains(err.Error(), "SMTP_URL") {
		t.Fatalf("err = %v, want an SMTP_URL error", err)
	}
}
