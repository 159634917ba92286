package mail

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/mail/mailtest"
)

// FuzzMessage: whatever the mail's fields and MAIL_FROM, building the
// message never panics; a mail it refuses is refused as permanent, with a
// one-line error; one it accepts has exactly the expected headers, on
// CRLF lines, with the values given, and the text part keeps the link on
// a line of its own and the code findable.
func FuzzMessage(f *testing.F) {
	kindList := []auth.MailKind{auth.MailVerification, auth.MailReset, auth.MailEmailChange,
		auth.MailPasswordChanged, auth.MailEmailChanged, auth.MailAccountDenied}
	link := "http://localhost:8080/account/reset#token=AbC-_1234567xYz_-09QrStUvWxYz0123456-_AbCdE"
	f.Add(uint8(0), "bob@example.test", "0123abcd@localhost", link, "04719265", "Accounts <no-reply@localhost>")
	f.Add(uint8(3), "Jürgen <j@bücher.example>", "a.b+c=d@x-y.z", link, "", `"Acme, Inc." <a@b.c>`)
	f.Add(uint8(1), "bob@example.test\r\nBcc: eve@example.test", "a@b", link, "12345678", "a@b")
	f.Add(uint8(1), "bob@example.test", "a@b\r\nBcc: eve@example.test", link, "12345678", "a@b")
	f.Add(uint8(2), "=?utf-8?q?Bob=0D=0ABcc:_x?= <bob@example.test>", "a@b", link+"\r\nBcc: x", "12345678", "=?utf-8?q?A=0D=0AB?= <a@b>")
	f.Add(uint8(4), `"bob\"x"@example.test`, "a@[127.0.0.1]", "https://x.test/#token=00000000", "", "Ünïcødé 名前 <a@b>")
	date := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, kind uint8, to, id, link, code, from string) {
		fromAddr, err := parseFrom(from)
		if err != nil {
			fromAddr, _ = parseFrom("Accounts <no-reply@localhost>")
		}
		m := &Mailer{from: fromAddr}
		am := auth.Mail{Kind: kindList[int(kind)%len(kindList)], To: to, MessageID: id, Date: date, Link: link, Code: code}
		msg, err := m.message(am)
		if err != nil {
			if !errors.Is(err, auth.ErrMailRejected) {
				t.Fatalf("refused, but not as permanent: %v", err)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("the error has a line break: %q", err)
			}
			return
		}
		var buf bytes.Buffer
		if _, err := msg.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		raw := buf.Bytes()
		head, _, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
		if !ok {
			t.Fatalf("no end of the headers:\n%q", raw)
		}
		checkHeaders(t, string(head))
		got, err := mailtest.ParseEML(raw)
		if err != nil {
			t.Fatalf("%v:\n%s", err, raw)
		}
		if got.MessageID != id {
			t.Fatalf("Message-ID %q, want %q", got.MessageID, id)
		}
		if got.Subject != kinds[am.Kind].subject {
			t.Fatalf("Subject %q", got.Subject)
		}
		if len(got.To) != 1 || got.From != fromAddr.Address {
			t.Fatalf("From %q To %q", got.From, got.To)
		}
		if got.Link() != link {
			t.Fatalf("Link() %q, want %q", got.Link(), link)
		}
		linkRuns := mailtest.Message{Text: link}.Code() != ""
		if kinds[am.Kind].hasCode && !linkRuns && got.Code() != code {
			t.Fatalf("Code() %q, want %q", got.Code(), code)
		}
	})
}

// checkHeaders checks a header block (without its final CRLF CRLF): CRLF
// line ends only, and exactly the expected fields, once each.
func checkHeaders(t testing.TB, head string) {
	t.Helper()
	if strings.Count(head, "\r") != strings.Count(head, "\r\n") || strings.Count(head, "\n") != strings.Count(head, "\r\n") {
		t.Fatalf("a bare CR or LF in the headers:\n%q", head)
	}
	want := map[string]bool{"Date": true, "MIME-Version": true, "Message-ID": true, "Subject": true, "From": true,
		"To": true, "Content-Type": true, "Auto-Submitted": true}
	seen := map[string]bool{}
	for _, l := range strings.Split(head, "\r\n") {
		if l == "" {
			t.Fatalf("an empty line in the headers:\n%q", head)
		}
		if l[0] == ' ' || l[0] == '\t' {
			continue // folded
		}
		name, _, ok := strings.Cut(l, ":")
		if !ok || !want[name] || seen[name] {
			t.Fatalf("unexpected header line %q in:\n%s", l, head)
		}
		seen[name] = true
	}
	if len(seen) != len(want) {
		t.Fatalf("headers %v, want %v", seen, want)
	}
}
