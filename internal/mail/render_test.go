package mail_test

import (
	"html"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/mail"
)

// token is shaped like the service's: 43 base64url characters (with
// digits, but no run of 8).
const token = "AbC-_1234567xYz_-09QrStUvWxYz0123456-_AbCdE"

var date = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// codeKinds carry a link and a code, noticeKinds only a link.
var (
	codeKinds   = []auth.MailKind{auth.MailVerification, auth.MailReset, auth.MailEmailChange}
	noticeKinds = []auth.MailKind{auth.MailPasswordChanged, auth.MailEmailChanged, auth.MailAccountDenied}
	allKinds    = append(append([]auth.MailKind(nil), codeKinds...), noticeKinds...)
)

// sample is a well-formed mail of kind k.
func sample(k auth.MailKind) auth.Mail {
	m := auth.Mail{Kind: k, To: "bob@example.test", MessageID: "0123abcd" + string(k) + "@localhost", Date: date,
		Link: "http://localhost:8080/account/" + string(k) + "#token=" + token}
	m.MessageID = strings.ReplaceAll(m.MessageID, "_", "-")
	if hasCode(k) {
		m.Code = "04719265"
	}
	return m
}

func hasCode(k auth.MailKind) bool {
	for _, c := range codeKinds {
		if c == k {
			return true
		}
	}
	return false
}

// eightDigitRuns are the runs of exactly 8 digits in s.
func eightDigitRuns(s string) []string {
	var runs []string
	for _, r := range regexp.MustCompile(`[0-9]+`).FindAllString(s, -1) {
		if len(r) == 8 {
			runs = append(runs, r)
		}
	}
	return runs
}

func TestRenderEveryKind(t *testing.T) {
	subjects := map[auth.MailKind]string{
		auth.MailVerification:    "Verify your email address",
		auth.MailReset:           "Reset your password",
		auth.MailEmailChange:     "Confirm your new email address",
		auth.MailPasswordChanged: "Your password was changed",
		auth.MailEmailChanged:    "Your email address was changed",
		auth.MailAccountDenied:   "We stopped access to your account",
	}
	lifetimes := map[auth.MailKind]string{
		auth.MailVerification: "24 hours", auth.MailReset: "30 minutes", auth.MailEmailChange: "1 hour",
		auth.MailPasswordChanged: "7 days", auth.MailEmailChanged: "7 days", auth.MailAccountDenied: "7 days",
	}
	for _, k := range allKinds {
		t.Run(string(k), func(t *testing.T) {
			m := sample(k)
			subject, text, htm, err := mail.Render(m)
			if err != nil {
				t.Fatal(err)
			}
			if subject != subjects[k] {
				t.Errorf("subject %q, want %q", subject, subjects[k])
			}
			if strings.ContainsAny(subject, "\r\n") {
				t.Errorf("subject %q has a line break", subject)
			}
			if text == "" || htm == "" {
				t.Fatalf("empty part: text %d bytes, html %d bytes", len(text), len(htm))
			}
			// The link on a line of its own, once.
			lines := strings.Split(text, "\n")
			n := 0
			for _, l := range lines {
				if l == m.Link {
					n++
				} else if strings.Contains(l, "http") {
					t.Errorf("another line mentions a URL: %q", l)
				}
			}
			if n != 1 {
				t.Errorf("the link is on %d lines of its own, want 1:\n%s", n, text)
			}
			// The code rule.
			runs := eightDigitRuns(text)
			if hasCode(k) {
				if len(runs) != 1 || runs[0] != m.Code {
					t.Errorf("8-digit runs in the text %q, want only the code %q", runs, m.Code)
				}
				if !strings.Contains(htm, m.Code) {
					t.Errorf("the HTML part lacks the code")
				}
			} else if len(runs) != 0 {
				t.Errorf("a notice has 8-digit runs %q", runs)
			}
			if len(eightDigitRuns(htm)) > 1 {
				t.Errorf("the HTML part has 8-digit runs %q", eightDigitRuns(htm))
			}
			if !strings.Contains(text, lifetimes[k]) || !strings.Contains(htm, lifetimes[k]) {
				t.Errorf("the lifetime %q is missing", lifetimes[k])
			}
			// HTML: the link as an <a href>, nothing external.
			if !strings.Contains(htm, `<a href="`+html.EscapeString(m.Link)+`"`) {
				t.Errorf("no <a href> to the link in:\n%s", htm)
			}
			for _, bad := range []string{"<img", "<script", "<link", "<iframe", "url(", "@import", "https://", "javascript:"} {
				if strings.Contains(strings.ToLower(htm), bad) {
					t.Errorf("the HTML part contains %q", bad)
				}
			}
			if strings.Count(htm, "http") != strings.Count(htm, m.Link) {
				t.Errorf("the HTML part mentions a URL besides the link")
			}
			if !strings.HasPrefix(htm, "<!DOCTYPE html>") || !strings.Contains(htm, `<html lang="en">`) {
				t.Errorf("the HTML part is not a document with a language")
			}
		})
	}
}

// The HTML part escapes what it shows; the text part shows the link as is.
func TestRenderEscapesHTML(t *testing.T) {
	m := sample(auth.MailReset)
	m.Link = `https://example.test/reset?a=1&b='2'#token=<x>`
	_, text, htm, err := mail.Render(m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "\n"+m.Link+"\n") {
		t.Errorf("text part lacks the raw link")
	}
	if strings.Contains(htm, "<x>") || strings.Contains(htm, "'2'") || !strings.Contains(htm, "a=1&amp;b=") {
		t.Errorf("the HTML part does not escape the link:\n%s", htm)
	}
}

func TestRenderRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*auth.Mail)
	}{
		{"unknown kind", func(m *auth.Mail) { m.Kind = "welcome" }},
		{"empty kind", func(m *auth.Mail) { m.Kind = "" }},
		{"no link", func(m *auth.Mail) { m.Link = "" }},
		{"relative link", func(m *auth.Mail) { m.Link = "/account/reset#token=x" }},
		{"javascript link", func(m *auth.Mail) { m.Link = "javascript:alert(1)" }},
		{"link with a line break", func(m *auth.Mail) { m.Link += "\r\nBcc: x@example.test" }},
		{"link with a space", func(m *auth.Mail) { m.Link += " x" }},
		{"link not ASCII", func(m *auth.Mail) { m.Link += "ü" }},
		{"no code", func(m *auth.Mail) { m.Code = "" }},
		{"7-digit code", func(m *auth.Mail) { m.Code = "1234567" }},
		{"9-digit code", func(m *auth.Mail) { m.Code = "123456789" }},
		{"code with a letter", func(m *auth.Mail) { m.Code = "1234567a" }},
		{"code with a line break", func(m *auth.Mail) { m.Code = "1234\n567" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := sample(auth.MailVerification)
			tc.edit(&m)
			if _, _, _, err := mail.Render(m); err == nil {
				t.Fatal("rendered")
			} else if !strings.HasPrefix(err.Error(), "mail: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
	t.Run("notice with a code", func(t *testing.T) {
		m := sample(auth.MailPasswordChanged)
		m.Code = "12345678"
		if _, _, _, err := mail.Render(m); err == nil {
			t.Fatal("rendered")
		}
	})
}

// Render checks only what it shows: To, Message-ID and Date are Send's.
func TestRenderIgnoresEnvelope(t *testing.T) {
	m := sample(auth.MailEmailChanged)
	m.To, m.MessageID, m.Date = "", "", time.Time{}
	if _, _, _, err := mail.Render(m); err != nil {
		t.Fatal(err)
	}
}
