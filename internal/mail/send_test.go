package mail_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/mail"
	"github.com/acme/accounts/internal/mail/mailtest"
)

// newMailer is a Mailer for the test server srv.
func newMailer(t testing.TB, smtpURL string, srv *mailtest.Server) *mail.Mailer {
	t.Helper()
	o := mail.Options{HELO: "accounts.test", Timeout: 20 * time.Second}
	if srv != nil {
		o.TLSConfig = srv.TLSConfig()
	}
	m, err := mail.New(smtpURL, from, o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkReceived checks that got is want, as sent.
func checkReceived(t *testing.T, got mailtest.Message, want auth.Mail) {
	t.Helper()
	if got.ParseError != nil {
		t.Fatalf("the server could not parse the message: %v\n%s", got.ParseError, got.Raw)
	}
	subject, _, _, _ := mail.Render(want)
	for _, c := range []struct{ name, got, want string }{
		{"envelope from", got.From, "no-reply@localhost"},
		{"envelope to", strings.Join(got.To, ","), want.To},
		{"Message-ID", got.MessageID, want.MessageID},
		{"Subject", got.Subject, subject},
		{"Content-Type", got.ContentType, "multipart/alternative"},
		{"Link", got.Link(), want.Link},
		{"Token", got.Token(), token},
		{"Code", got.Code(), want.Code},
		{"Date", got.Header.Get("Date"), want.Date.UTC().Format(time.RFC1123Z)},
		{"From", got.Header.Get("From"), `"Accounts" <no-reply@localhost>`},
		{"User-Agent", got.Header.Get("User-Agent") + got.Header.Get("X-Mailer"), ""},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if got.Text == "" || got.HTML == "" {
		t.Errorf("a part is missing: text %d bytes, html %d bytes", len(got.Text), len(got.HTML))
	}
}

func TestSendTransports(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     mailtest.Options
		query    string
		wantTLS  bool
		wantUser string
	}{
		{"smtps", mailtest.Options{ImplicitTLS: true}, "", true, ""},
		{"smtps with AUTH PLAIN", mailtest.Options{ImplicitTLS: true, User: "u", Password: password}, "", true, "u"},
		{"STARTTLS with AUTH PLAIN", mailtest.Options{STARTTLS: true, User: "u", Password: password}, "", true, "u"},
		{"STARTTLS with AUTH LOGIN", mailtest.Options{STARTTLS: true, User: "u", Password: password}, "?auth=login", true, "u"},
		{"STARTTLS without AUTH", mailtest.Options{STARTTLS: true}, "", true, ""},
		{"smtp+insecure", mailtest.Options{}, "", false, ""},
		{"smtp+insecure with AUTH PLAIN", mailtest.Options{User: "u", Password: password}, "", false, "u"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := mailtest.Start(t, tc.opts)
			m := newMailer(t, srv.URL()+tc.query, srv)
			for _, k := range allKinds {
				if err := m.Send(context.Background(), sample(k)); err != nil {
					t.Fatalf("%s: %v", k, err)
				}
			}
			got := srv.Wait(t, 0, len(allKinds))
			for i, k := range allKinds {
				checkReceived(t, got[i], sample(k))
				if got[i].TLS != tc.wantTLS || got[i].AuthUser != tc.wantUser || got[i].Helo != "accounts.test" {
					t.Errorf("%s: session TLS=%v AUTH=%q HELO=%q, want TLS=%v AUTH=%q HELO=accounts.test",
						k, got[i].TLS, got[i].AuthUser, got[i].Helo, tc.wantTLS, tc.wantUser)
				}
			}
		})
	}
}

// smtp:// requires STARTTLS: against a server without it, nothing is sent
// (not even in the clear), and the failure is temporary (configuration).
func TestSendSTARTTLSRequired(t *testing.T) {
	for _, opts := range []mailtest.Options{{}, {User: "u", Password: password}} {
		t.Run(fmt.Sprintf("auth=%v", opts.User != ""), func(t *testing.T) {
			srv := mailtest.Start(t, opts)
			u := strings.Replace(srv.URL(), "smtp+insecure://", "smtp://", 1)
			err := newMailer(t, u, srv).Send(context.Background(), sample(auth.MailReset))
			if err == nil {
				t.Fatal("sent without STARTTLS")
			}
			if errors.Is(err, auth.ErrMailRejected) {
				t.Errorf("err %v is permanent", err)
			}
			if !strings.Contains(err.Error(), "STARTTLS") {
				t.Errorf("err %v does not say STARTTLS", err)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("err %v has the password", err)
			}
			if n := len(srv.Messages()); n != 0 {
				t.Errorf("the server received %d messages", n)
			}
		})
	}
}

// A certificate the client does not trust: temporary, nothing sent.
func TestSendUntrustedCertificate(t *testing.T) {
	for _, opts := range []mailtest.Options{{ImplicitTLS: true}, {STARTTLS: true}} {
		srv := mailtest.Start(t, opts)
		m, err := mail.New(srv.URL(), from, mail.Options{}) // system roots
		if err != nil {
			t.Fatal(err)
		}
		err = m.Send(context.Background(), sample(auth.MailVerification))
		if err == nil || errors.Is(err, auth.ErrMailRejected) || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s: err = %v, want a temporary certificate error", srv.URL(), err)
		}
		if n := len(srv.Messages()); n != 0 {
			t.Errorf("the server received %d messages", n)
		}
	}
}

func TestSendWrongPassword(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{STARTTLS: true, User: "u", Password: password})
	u := strings.Replace(srv.URL(), password, "wrong-"+password[:3], 1)
	err := newMailer(t, u, srv).Send(context.Background(), sample(auth.MailVerification))
	if err == nil || errors.Is(err, auth.ErrMailRejected) || !strings.Contains(err.Error(), "535") {
		t.Fatalf("err = %v, want a temporary 535", err)
	}
	if strings.Contains(err.Error(), "wrong-") {
		t.Errorf("err %v has the password", err)
	}
}

func TestSendReplyCodes(t *testing.T) {
	for _, tc := range []struct {
		code     int
		rejected bool
	}{
		{421, false}, {450, false}, {451, false}, {452, false},
		{550, true}, {552, true}, {554, true},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			srv := mailtest.Start(t, mailtest.Options{STARTTLS: true, User: "u", Password: password})
			m := newMailer(t, srv.URL(), srv)
			srv.FailNext(1, tc.code)
			err := m.Send(context.Background(), sample(auth.MailReset))
			if err == nil {
				t.Fatal("sent")
			}
			if errors.Is(err, auth.ErrMailRejected) != tc.rejected {
				t.Errorf("errors.Is(%v, ErrMailRejected) = %v, want %v", err, !tc.rejected, tc.rejected)
			}
			if !strings.Contains(err.Error(), fmt.Sprint(tc.code)) {
				t.Errorf("err %v does not say %d", err, tc.code)
			}
			if strings.Contains(err.Error(), "bob@") {
				t.Errorf("err %v names the recipient", err)
			}
			if len(srv.Messages()) != 0 {
				t.Errorf("a failed message was stored")
			}
			// FailNext(1, ...) fails one: the next goes through.
			if err := m.Send(context.Background(), sample(auth.MailReset)); err != nil {
				t.Fatal(err)
			}
			srv.Wait(t, 0, 1)
		})
	}
}

func TestSendConnectionRefused(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	m := newMailer(t, srv.URL(), srv)
	srv.Down()
	err := m.Send(context.Background(), sample(auth.MailVerification))
	if err == nil || errors.Is(err, auth.ErrMailRejected) {
		t.Fatalf("err = %v, want a temporary error", err)
	}
	if !strings.Contains(err.Error(), "refused") {
		t.Errorf("err %v does not say refused", err)
	}
	srv.Up() // the same port
	if err := m.Send(context.Background(), sample(auth.MailVerification)); err != nil {
		t.Fatal(err)
	}
	checkReceived(t, srv.Wait(t, 0, 1)[0], sample(auth.MailVerification))
}

// A message the server stored but did not acknowledge is sent again with
// the same Message-ID and Date, so the duplicate can be recognised.
func TestSendRetryKeepsMessageID(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{ImplicitTLS: true})
	m := newMailer(t, srv.URL(), srv)
	srv.DropAfterData(1)
	first := sample(auth.MailEmailChange)
	err := m.Send(context.Background(), first)
	if err == nil || errors.Is(err, auth.ErrMailRejected) {
		t.Fatalf("err = %v, want a temporary error", err)
	}
	retry := first
	retry.Link, retry.Code = strings.Replace(first.Link, "AbC", "XyZ", 1), "11223344" // a new token per attempt
	if err := m.Send(context.Background(), retry); err != nil {
		t.Fatal(err)
	}
	got := srv.Wait(t, 0, 2)
	if len(got) != 2 {
		t.Fatalf("got %d messages, want 2", len(got))
	}
	for _, h := range []string{"Message-Id", "Date", "Subject", "From", "To"} {
		if a, b := got[0].Header.Get(h), got[1].Header.Get(h); a != b || a == "" {
			t.Errorf("%s: %q then %q", h, a, b)
		}
	}
	if got[0].MessageID != first.MessageID || got[0].Code() != first.Code || got[1].Code() != retry.Code {
		t.Errorf("ids %q %q, codes %q %q", got[0].MessageID, got[1].MessageID, got[0].Code(), got[1].Code())
	}
}

// ctx bounds the whole conversation, not only the dial: here the server
// never greets, and Send returns once ctx is cancelled.
func TestSendContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
			cancel() // the client is connected, waiting for the greeting
		}
	}()
	m, err := mail.New("smtp+insecure://"+ln.Addr().String(), from, mail.Options{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = m.Send(ctx, sample(auth.MailVerification))
	if !errors.Is(err, context.Canceled) || errors.Is(err, auth.ErrMailRejected) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Send took %v: the Timeout, not ctx, ended it", d)
	}
	(<-accepted).Close()

	// A context already done sends nothing.
	if err := m.Send(ctx, sample(auth.MailVerification)); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestSendConcurrent(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{STARTTLS: true, User: "u", Password: password})
	m := newMailer(t, srv.URL(), srv)
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			am := sample(allKinds[i%len(allKinds)])
			am.MessageID = fmt.Sprintf("c%d@localhost", i)
			errs <- m.Send(context.Background(), am)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	ids := map[string]bool{}
	for _, msg := range srv.Wait(t, 0, n) {
		ids[msg.MessageID] = true
	}
	if len(ids) != n {
		t.Errorf("%d distinct messages, want %d", len(ids), n)
	}
}

// Mails that can never be sent are refused as permanent, before any
// connection.
func TestSendRefusesInvalidMail(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	m := newMailer(t, srv.URL(), srv)
	for _, tc := range []struct {
		name string
		edit func(*auth.Mail)
	}{
		{"unknown kind", func(m *auth.Mail) { m.Kind = "welcome" }},
		{"no link", func(m *auth.Mail) { m.Link = "" }},
		{"bad code", func(m *auth.Mail) { m.Code = "1234" }},
		{"no Message-ID", func(m *auth.Mail) { m.MessageID = "" }},
		{"Message-ID in <>", func(m *auth.Mail) { m.MessageID = "<a@localhost>" }},
		{"Message-ID without @", func(m *auth.Mail) { m.MessageID = "abc" }},
		{"Message-ID with two @", func(m *auth.Mail) { m.MessageID = "a@b@localhost" }},
		{"Message-ID with CRLF", func(m *auth.Mail) { m.MessageID = "a@localhost\r\nBcc: x@example.test" }},
		{"Message-ID with a space", func(m *auth.Mail) { m.MessageID = "a b@localhost" }},
		{"Message-ID with a slash", func(m *auth.Mail) { m.MessageID = "../../etc@localhost" }},
		{"Message-ID with a leading dot", func(m *auth.Mail) { m.MessageID = ".a@localhost" }},
		{"Message-ID not ASCII", func(m *auth.Mail) { m.MessageID = "ä@localhost" }},
		{"Message-ID too long", func(m *auth.Mail) { m.MessageID = strings.Repeat("a", 300) + "@localhost" }},
		{"no Date", func(m *auth.Mail) { m.Date = time.Time{} }},
		{"no recipient", func(m *auth.Mail) { m.To = "" }},
		{"recipient with CRLF", func(m *auth.Mail) { m.To = "bob@example.test\r\nBcc: eve@example.test" }},
		{"recipient with LF", func(m *auth.Mail) { m.To = "bob@example.test\nBcc: eve@example.test" }},
		{"two recipients", func(m *auth.Mail) { m.To = "bob@example.test, eve@example.test" }},
		{"recipient not an address", func(m *auth.Mail) { m.To = "bob" }},
		{"recipient local part not ASCII", func(m *auth.Mail) { m.To = "jürgen@example.test" }},
		{"recipient bad domain", func(m *auth.Mail) { m.To = "bob@exa..test" }},
		{"recipient bad international domain", func(m *auth.Mail) { m.To = "bob@bü_cher.example" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			am := sample(auth.MailVerification)
			tc.edit(&am)
			err := m.Send(context.Background(), am)
			if !errors.Is(err, auth.ErrMailRejected) {
				t.Fatalf("err = %v, want ErrMailRejected", err)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("err %q has a line break", err)
			}
		})
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("the server received %d messages", n)
	}
}

// A non-ASCII domain goes out as its A-label; a display name is kept and
// encoded.
func TestSendInternationalRecipient(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	m := newMailer(t, srv.URL(), srv)
	am := sample(auth.MailVerification)
	am.To = "Jürgen Müller <juergen@bücher.example>"
	if err := m.Send(context.Background(), am); err != nil {
		t.Fatal(err)
	}
	got := srv.Wait(t, 0, 1)[0]
	if want := "juergen@xn--bcher-kva.example"; len(got.To) != 1 || got.To[0] != want {
		t.Errorf("RCPT TO %q, want %q", got.To, want)
	}
	to, err := got.Header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Name != "Jürgen Müller" || to[0].Address != "juergen@xn--bcher-kva.example" {
		t.Errorf("To header %q: %v %v", got.Header.Get("To"), to, err)
	}
}

// The headers are exactly the expected ones, each on CRLF-terminated lines.
func TestSendHeaders(t *testing.T) {
	dir := t.TempDir()
	m := newMailer(t, "file://"+dir, nil)
	for _, k := range allKinds {
		am := sample(k)
		if err := m.Send(context.Background(), am); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, mail.FileName(am.MessageID)))
		if err != nil {
			t.Fatal(err)
		}
		head, _, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
		if !ok {
			t.Fatalf("%s: no CRLF CRLF after the headers", k)
		}
		mail.CheckHeaders(t, string(head))
	}
}

func TestSendFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	m := newMailer(t, "file://"+dir, nil)
	if err := os.RemoveAll(dir); err != nil { // gone since New: Send makes it again
		t.Fatal(err)
	}
	first := sample(auth.MailReset)
	if err := m.Send(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	retry := first
	retry.Link, retry.Code = strings.Replace(first.Link, "AbC", "XyZ", 1), "55667788"
	if err := m.Send(context.Background(), retry); err != nil {
		t.Fatal(err)
	}
	other := sample(auth.MailPasswordChanged)
	if err := m.Send(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", e.Name(), fi.Mode())
		}
	}
	want := []string{mail.FileName(first.MessageID), mail.FileName(other.MessageID)}
	if strings.Join(names, " ") != strings.Join(want, " ") && strings.Join(names, " ") != want[1]+" "+want[0] {
		t.Fatalf("files %q, want %q (one per Message-ID, no temporary files)", names, want)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory: %v %v, want mode 0700", fi, err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, mail.FileName(first.MessageID)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := mailtest.ParseEML(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.MessageID != first.MessageID || got.Link() != retry.Link || got.Code() != retry.Code {
		t.Errorf("the file holds %q %q %q, want the retry's %q %q %q",
			got.MessageID, got.Link(), got.Code(), retry.MessageID, retry.Link, retry.Code)
	}
	if got.From != "no-reply@localhost" || len(got.To) != 1 || got.To[0] != first.To {
		t.Errorf("From %q To %q", got.From, got.To)
	}
}

// file:// writes the bytes SMTP sends.
func TestSendFileSameBytesAsSMTP(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	dir := t.TempDir()
	am := sample(auth.MailVerification)
	if err := newMailer(t, srv.URL(), srv).Send(context.Background(), am); err != nil {
		t.Fatal(err)
	}
	if err := newMailer(t, "file://"+dir, nil).Send(context.Background(), am); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, mail.FileName(am.MessageID)))
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.Wait(t, 0, 1)[0].Raw; !bytes.Equal(got, raw) {
		t.Errorf("SMTP sent\n%s\nthe file holds\n%s", got, raw)
	}
}

func TestFileName(t *testing.T) {
	for in, want := range map[string]string{
		"0123abcd@localhost":  "0123abcd@localhost.eml",
		"a.b+c=d-e_f@x.y":     "a.b+c=d-e_f@x.y.eml",
		"../x@y":              "_._x@y.eml",
		".hidden@y":           "_hidden@y.eml",
		"a/b\\c d\r\n@y":      "a_b_c_d__@y.eml",
		"ü@y":                 "__@y.eml",
		"":                    ".eml",
		"outbox-42.1@acme.io": "outbox-42.1@acme.io.eml",
	} {
		if got := mail.FileName(in); got != want {
			t.Errorf("FileName(%q) = %q, want %q", in, got, want)
		}
	}
}
