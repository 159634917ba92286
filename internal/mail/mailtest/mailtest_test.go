package mailtest_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/acme/accounts/internal/mail/mailtest"
)

const raw = "From: A <a@example.test>\r\nTo: b@example.test\r\nSubject: Hi\r\nMessage-ID: <x1@example.test>\r\n\r\nHello\r\n"

// send sends raw over a plain connection to s, with AUTH PLAIN if user is
// set.
func send(t *testing.T, s *mailtest.Server, user, pass string) error {
	t.Helper()
	c, err := gosmtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if user != "" {
		if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
			return err
		}
	}
	return c.SendMail("a@example.test", []string{"b@example.test"}, strings.NewReader(raw))
}

func TestAuthRequired(t *testing.T) {
	s := mailtest.Start(t, mailtest.Options{User: "u", Password: "p"})
	var se *gosmtp.SMTPError
	if err := send(t, s, "", ""); !errors.As(err, &se) || se.Code != 502 {
		t.Fatalf("without AUTH: %v, want 502", err)
	}
	if err := send(t, s, "u", "wrong"); !errors.As(err, &se) || se.Code != 535 {
		t.Fatalf("wrong password: %v, want 535", err)
	}
	if err := send(t, s, "u", "p"); err != nil {
		t.Fatal(err)
	}
	got := s.Wait(t, 0, 1)
	if len(got) != 1 || got[0].AuthUser != "u" || got[0].TLS || got[0].MessageID != "x1@example.test" || got[0].Text != "Hello\r\n" {
		t.Fatalf("got %+v", got)
	}
	if s.URL() != "smtp+insecure://u:p@"+s.Addr() {
		t.Errorf("URL() = %q", s.URL())
	}
}

func TestURL(t *testing.T) {
	for _, tc := range []struct {
		o    mailtest.Options
		want string
	}{
		{mailtest.Options{ImplicitTLS: true}, "smtps://"},
		{mailtest.Options{STARTTLS: true, User: "u@x", Password: "p/w:d"}, "smtp://u%40x:p%2Fw%3Ad@"},
		{mailtest.Options{}, "smtp+insecure://"},
	} {
		s := mailtest.Start(t, tc.o)
		if got := s.URL(); got != tc.want+s.Addr() {
			t.Errorf("URL() = %q, want %q", got, tc.want+s.Addr())
		}
	}
}

func TestFaults(t *testing.T) {
	s := mailtest.Start(t, mailtest.Options{})
	s.FailNext(2, 451)
	var se *gosmtp.SMTPError
	for i := range 2 {
		if err := send(t, s, "", ""); !errors.As(err, &se) || se.Code != 451 || se.EnhancedCode != (gosmtp.EnhancedCode{4, 3, 0}) {
			t.Fatalf("%d: %v, want 451 4.3.0", i, err)
		}
	}
	if err := send(t, s, "", ""); err != nil {
		t.Fatal(err)
	}
	s.DropAfterData(1)
	if err := send(t, s, "", ""); err == nil {
		t.Fatal("the dropped message was acknowledged")
	}
	if n := len(s.Wait(t, 0, 2)); n != 2 {
		t.Fatalf("%d messages, want 2 (the dropped one is stored)", n)
	}
	s.Down()
	s.Down() // idempotent
	if c, err := gosmtp.Dial(s.Addr()); err == nil {
		c.Close()
		t.Fatal("connected while down")
	}
	s.Up()
	s.Up()
	if err := send(t, s, "", ""); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Messages()); n != 3 {
		t.Fatalf("%d messages, want 3", n)
	}
}

// Faults and state may be set from any goroutine.
func TestConcurrentUse(t *testing.T) {
	s := mailtest.Start(t, mailtest.Options{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 4 {
			case 0:
				s.FailNext(0, 451)
			case 1:
				s.DropAfterData(0)
			case 2:
				_ = s.Messages()
			default:
				s.Down()
				s.Up()
			}
		}()
	}
	wg.Wait()
	s.Up()
	if err := send(t, s, "", ""); err != nil {
		t.Fatal(err)
	}
	s.Wait(t, 0, 1)
}

func TestFailNextRefusesSuccessCodes(t *testing.T) {
	s := mailtest.Start(t, mailtest.Options{})
	defer func() {
		if recover() == nil {
			t.Error("FailNext(1, 250) did not panic")
		}
	}()
	s.FailNext(1, 250)
}

// fakeTB records Fatalf.
type fakeTB struct {
	testing.TB
	mu     sync.Mutex
	failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = fmt.Sprintf(format, args...)
}

func TestWaitTimesOut(t *testing.T) {
	s := mailtest.Start(t, mailtest.Options{})
	f := &fakeTB{TB: t}
	if got := s.Wait(f, 10*time.Millisecond, 1); got != nil || !strings.Contains(f.failed, "for 1 messages") || !strings.Contains(f.failed, "got 0") {
		t.Fatalf("Wait returned %v, failed %q", got, f.failed)
	}
}

func TestCode(t *testing.T) {
	for text, want := range map[string]string{
		"":                                    "",
		"no digits":                           "",
		"Your code:\n12345678\n":              "12345678",
		"code 12345678, again 12345678":       "12345678",
		"12345678 and 87654321":               "",
		"123456789 is nine, 1234567 seven":    "",
		"port 8080, 24 hours\r\n04719265\r\n": "04719265",
		"x12345678y":                          "12345678",
	} {
		if got := (mailtest.Message{Text: text}).Code(); got != want {
			t.Errorf("Code() of %q = %q, want %q", text, got, want)
		}
	}
}

func TestLinkAndToken(t *testing.T) {
	m := mailtest.Message{Text: "Hello,\r\n\r\nsee https://example.test/x inline\r\n  http://localhost:8080/account/reset#token=AbC-_x  \r\nhttps://later.test\r\n"}
	if got := m.Link(); got != "http://localhost:8080/account/reset#token=AbC-_x" {
		t.Errorf("Link() = %q", got)
	}
	if got := m.Token(); got != "AbC-_x" {
		t.Errorf("Token() = %q", got)
	}
	if got := (mailtest.Message{Text: "no link"}); got.Link() != "" || got.Token() != "" {
		t.Errorf("Link() %q Token() %q, want empty", got.Link(), got.Token())
	}
}

// A maildir file as aiosmtpd writes it: LF line ends, base64 and
// quoted-printable parts, extra headers.
func TestParseEMLMaildir(t *testing.T) {
	eml := strings.Join([]string{
		"Date: Thu, 02 Jan 2025 03:04:05 +0000",
		"Message-ID: <abc@localhost>",
		"Subject: =?UTF-8?q?Verify_your_email_address?=",
		`From: "Accounts" <no-reply@localhost>`,
		"To: <bob@example.test>",
		"Content-Type: multipart/alternative; boundary=b1",
		"X-Peer: ('127.0.0.1', 4242)",
		"X-MailFrom: no-reply@localhost",
		"",
		"--b1",
		"Content-Transfer-Encoding: base64",
		"Content-Type: text/plain; charset=UTF-8",
		"",
		"aHR0cDovL2xvY2FsaG9zdDo4MDgwL3YjdG9rZW49YWJjCgpDb2RlOiAwNDcxOTI2NQo=",
		"--b1",
		"Content-Transfer-Encoding: quoted-printable",
		"Content-Type: text/html; charset=UTF-8",
		"",
		`<a href=3D"http://localhost:8080/v#token=3Dabc">Verify</a> 0471=`,
		"9265",
		"--b1--",
		"",
	}, "\n")
	m, err := mailtest.ParseEML([]byte(eml))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"MessageID", m.MessageID, "abc@localhost"},
		{"Subject", m.Subject, "Verify your email address"},
		{"ContentType", m.ContentType, "multipart/alternative"},
		{"From", m.From, "no-reply@localhost"},
		{"To", strings.Join(m.To, ","), "bob@example.test"},
		{"Link", m.Link(), "http://localhost:8080/v#token=abc"},
		{"Token", m.Token(), "abc"},
		{"Code", m.Code(), "04719265"},
		{"HTML", m.HTML, `<a href="http://localhost:8080/v#token=abc">Verify</a> 04719265`},
		{"X-MailFrom", m.Header.Get("X-MailFrom"), "no-reply@localhost"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestParseEMLSinglePart(t *testing.T) {
	m, err := mailtest.ParseEML([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if m.ContentType != "text/plain" || m.Text != "Hello\r\n" || m.HTML != "" || m.Subject != "Hi" {
		t.Fatalf("got %+v", m)
	}
	if _, err := mailtest.ParseEML([]byte("not a message")); err == nil {
		t.Error("parsed garbage")
	}
}
