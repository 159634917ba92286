package http_test

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/mail"
	"github.com/acme/accounts/internal/mail/mailtest"
	"github.com/acme/accounts/internal/testdb"
)

// The email section of the contract, end to end: the real router on the
// real database, the outbox's sender delivering over SMTP (STARTTLS and
// AUTH PLAIN) to an in-process go-smtp server, whose messages are parsed
// part by part.

const mailFrom = "Accounts <no-reply@test.local>"

type mailEnv struct {
	*env
	smtp *mailtest.Server
}

// fastSender retries within milliseconds, so that the fault tests run
// quickly; the back-off doubling and jitter are the production code's.
var fastSender = auth.SenderConfig{Backoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	Poll: 50 * time.Millisecond, Lease: 10 * time.Second, SendTimeout: 10 * time.Second}

func newMailEnv(t *testing.T, o envOptions) *mailEnv {
	t.Helper()
	smtp := mailtest.Start(t, mailtest.Options{STARTTLS: true, User: "accounts", Password: "smtp-secret"})
	m, err := mail.New(smtp.URL(), mailFrom, mail.Options{TLSConfig: smtp.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	o.kit.Mailer = m
	if o.kit.Sender == (auth.SenderConfig{}) {
		o.kit.Sender = fastSender
	}
	if o.kit.Clock == nil {
		o.kit.Clock = testdb.NewRunningClock()
	}
	return &mailEnv{env: newEnv(t, o), smtp: smtp}
}

// next waits for the n-th message (1-based) since the start and returns it.
func (e *mailEnv) next(t *testing.T, n int) mailtest.Message {
	t.Helper()
	msgs := e.smtp.Wait(t, 30*time.Second, n)
	return msgs[n-1]
}

// latest waits until the outbox has settled and returns the newest mail
// whose link goes to linkPath (failing when none does).
func (e *mailEnv) latest(t *testing.T, linkPath string) mailtest.Message {
	t.Helper()
	e.settled(t)
	msgs := e.smtp.Messages()
	for i := len(msgs) - 1; i >= 0; i-- {
		if strings.Contains(msgs[i].Link(), "/account"+linkPath+"#") {
			return msgs[i]
		}
	}
	t.Fatalf("no mail with a %s link", linkPath)
	return mailtest.Message{}
}

// settled waits until the outbox has no pending mail: every intent so far
// was sent, skipped or given up.
func (e *mailEnv) settled(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for e.Count(t, `SELECT count(*) FROM email_outbox WHERE status = 'pending'`) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the outbox still has pending mails after 30 s")
		}
		time.Sleep(10 * time.Millisecond) // waiting on a state, not guessing a duration
	}
}

func (e *mailEnv) me(t *testing.T, at string) response {
	t.Helper()
	r := e.req(t, "GET", "/v1/me", nil, bearer(at)...)
	r.want(t, 200, "")
	return r
}

// checkMail checks what the contract says of every mail.
func checkMail(t *testing.T, m mailtest.Message, to, linkPath string, withCode bool) {
	t.Helper()
	if !slices.Equal(m.To, []string{to}) {
		t.Fatalf("mail to %v, want %s", m.To, to)
	}
	if !m.TLS || m.AuthUser != "accounts" {
		t.Fatalf("mail delivered without STARTTLS or AUTH: tls=%v auth=%q", m.TLS, m.AuthUser)
	}
	if !strings.HasPrefix(m.ContentType, "multipart/alternative") || m.Text == "" || m.HTML == "" {
		t.Fatalf("mail is not multipart/alternative with text and HTML: %q", m.ContentType)
	}
	if from := m.Header.Get("From"); !strings.Contains(from, "no-reply@test.local") {
		t.Fatalf("From = %q", from)
	}
	if m.MessageID == "" || m.Header.Get("Date") == "" {
		t.Fatalf("Message-ID %q, Date %q", m.MessageID, m.Header.Get("Date"))
	}
	if !strings.HasPrefix(m.Link(), testdb.Issuer+"/account"+linkPath+"#token=") || len(m.Token()) != 43 {
		t.Fatalf("link = %q, want %s/account%s#token=<43 characters>", m.Link(), testdb.Issuer, linkPath)
	}
	if withCode != (m.Code() != "") {
		t.Fatalf("code = %q in a mail that %s carry one; text:\n%s", m.Code(),
			map[bool]string{true: "must", false: "must not"}[withCode], m.Text)
	}
	if !strings.Contains(m.HTML, m.Token()) {
		t.Fatal("the HTML part has no link with the token")
	}
}

func TestEmailVerificationAndResetEndToEnd(t *testing.T) {
	t.Parallel()
	e := newMailEnv(t, envOptions{})
	const addr = "walk@example.com"
	e.signup(t, addr)
	verify := e.next(t, 1)
	checkMail(t, verify, addr, "/verify", true)

	at := e.login(t, addr).access
	me := e.me(t, at)
	if me.body["email_verified"] != false || me.body["pending_email"] != nil {
		t.Fatalf("/v1/me before verification: %s", me.raw)
	}
	e.req(t, "POST", "/v1/email/verify", map[string]string{"token": verify.Token()}).want(t, 204, "")
	if me := e.me(t, at); me.body["email_verified"] != true {
		t.Fatalf("/v1/me after verification: %s", me.raw)
	}
	// A spent token itself is 401; so is its code (using either spends both).
	e.req(t, "POST", "/v1/email/verify", map[string]string{"token": verify.Token()}).want(t, 401, "invalid_grant")
	e.req(t, "POST", "/v1/email/verify", map[string]string{"email": addr, "code": verify.Code()}).want(t, 401, "invalid_grant")

	// Forgot, then reset by code.
	old := e.login(t, addr)
	e.req(t, "POST", "/v1/password/forgot", map[string]string{"email": "WALK@example.com"}).want(t, 202, "")
	reset := e.next(t, 2)
	checkMail(t, reset, addr, "/reset", true)
	// The new password is checked before anything is spent.
	r := e.req(t, "POST", "/v1/password/reset", map[string]string{"email": addr, "code": reset.Code(), "new_password": "short"})
	r.want(t, 400, "invalid_request")
	r.field(t, "new_password")
	const newPW = "a brand new passphrase"
	e.req(t, "POST", "/v1/password/reset", map[string]string{"email": addr, "code": reset.Code(), "new_password": newPW}).want(t, 204, "")
	// Every session ended, every access token stopped, no tokens returned.
	e.req(t, "GET", "/v1/me", nil, bearer(old.access)...).want(t, 401, "invalid_token")
	e.req(t, "POST", "/v1/token/refresh", map[string]string{"refresh_token": old.refresh}).want(t, 401, "invalid_grant")
	e.req(t, "POST", "/v1/login", map[string]string{"email": addr, "password": pw}).want(t, 401, "invalid_credentials")
	e.req(t, "POST", "/v1/login", map[string]string{"email": addr, "password": newPW}).want(t, 200, "")
	// The link of that reset mail was spent with its code.
	e.req(t, "POST", "/v1/password/reset", map[string]string{"token": reset.Token(), "new_password": newPW + "!"}).want(t, 401, "invalid_grant")

	// The "your password was changed" notice carries a "this wasn't me" link only.
	notice := e.next(t, 3)
	checkMail(t, notice, addr, "/deny", false)

	events := e.Count(t, `SELECT count(*) FROM audit_events WHERE event IN
	    ('email_verification_sent','email_verified','password_reset_requested','password_reset_completed')`)
	if events != 4 {
		t.Fatalf("%d of the 4 email audit events", events)
	}
}

func TestPasswordChangeNoticeAndDeny(t *testing.T) {
	t.Parallel()
	e := newMailEnv(t, envOptions{})
	const addr = "deny@example.com"
	e.signup(t, addr)
	e.next(t, 1) // verification
	s := e.login(t, addr)
	const changed = "the thief's passphrase"
	e.req(t, "POST", "/v1/password", map[string]string{"current_password": pw, "new_password": changed},
		bearer(s.access)...).want(t, 204, "")
	notice := e.next(t, 2)
	checkMail(t, notice, addr, "/deny", false)
	if !strings.Contains(strings.ToLower(notice.Subject), "password") {
		t.Fatalf("subject %q", notice.Subject)
	}

	e.req(t, "POST", "/v1/account/deny", map[string]string{"token": notice.Token()}).want(t, 204, "")
	// Every session ends; the password stops working, even the right one.
	e.req(t, "GET", "/v1/me", nil, bearer(s.access)...).want(t, 401, "invalid_token")
	e.req(t, "POST", "/v1/login", map[string]string{"email": addr, "password": changed}).want(t, 401, "invalid_credentials")
	e.req(t, "POST", "/v1/account/deny", map[string]string{"token": notice.Token()}).want(t, 401, "invalid_grant")

	// A reset mail is queued (and an account-denied notice); the reset
	// lifts the stop.
	msgs := e.smtp.Wait(t, 30*time.Second, 4)[2:]
	var reset mailtest.Message
	for _, m := range msgs {
		if strings.Contains(m.Link(), "/reset#") {
			reset = m
		}
	}
	checkMail(t, reset, addr, "/reset", true)
	const mine = "my own new passphrase"
	e.req(t, "POST", "/v1/password/reset", map[string]string{"token": reset.Token(), "new_password": mine}).want(t, 204, "")
	e.req(t, "POST", "/v1/login", map[string]string{"email": addr, "password": mine}).want(t, 200, "")
	if n := e.Count(t, `SELECT count(*) FROM audit_events WHERE event = 'account_denied'`); n != 1 {
		t.Fatalf("%d account_denied events", n)
	}
}

func TestEmailChangeEndToEnd(t *testing.T) {
	t.Parallel()
	e := newMailEnv(t, envOptions{})
	const oldAddr, newAddr = "old@example.com", "new@example.com"
	e.signup(t, oldAddr)
	e.next(t, 1)
	s := e.login(t, oldAddr)

	r := e.req(t, "POST", "/v1/email/change", map[string]string{"new_email": newAddr, "current_password": "wrong password!"}, bearer(s.access)...)
	r.want(t, 401, "invalid_credentials")
	e.req(t, "POST", "/v1/email/change", map[string]string{"new_email": newAddr, "current_password": pw}, bearer(s.access)...).want(t, 202, "")
	if me := e.me(t, s.access); me.str("pending_email") != newAddr || me.str("email") != oldAddr {
		t.Fatalf("/v1/me while the change waits: %s", me.raw)
	}
	confirm := e.next(t, 2)
	checkMail(t, confirm, newAddr, "/email", true)
	// A code of another purpose never works for this one.
	e.req(t, "POST", "/v1/email/verify", map[string]string{"email": newAddr, "code": confirm.Code()}).want(t, 401, "invalid_grant")
	e.req(t, "POST", "/v1/password/reset", map[string]string{"token": confirm.Token(), "new_password": "whatever passphrase"}).want(t, 401, "invalid_grant")
	e.req(t, "POST", "/v1/email/change/confirm", map[string]string{"email": newAddr, "code": confirm.Code()}).want(t, 204, "")
	me := e.me(t, s.access)
	if me.str("email") != newAddr || me.body["email_verified"] != true || me.body["pending_email"] != nil {
		t.Fatalf("/v1/me after the change: %s", me.raw)
	}
	e.req(t, "POST", "/v1/login", map[string]string{"email": newAddr, "password": pw}).want(t, 200, "")

	// The old address gets the notice; "this wasn't me" puts it back.
	notice := e.next(t, 3)
	checkMail(t, notice, oldAddr, "/deny", false)
	e.req(t, "POST", "/v1/account/deny", map[string]string{"token": notice.Token()}).want(t, 204, "")
	var email string
	if err := e.Pool.QueryRow(context.Background(), `SELECT email FROM users`).Scan(&email); err != nil || email != oldAddr {
		t.Fatalf("after the denial the address is %q (%v), want %s", email, err, oldAddr)
	}
	e.settled(t)
	var reset mailtest.Message
	for _, m := range e.smtp.Messages()[3:] {
		if strings.Contains(m.Link(), "/reset#") {
			reset = m
		}
	}
	checkMail(t, reset, oldAddr, "/reset", true)
}

func TestEmailChangeToATakenAddressSendsNothing(t *testing.T) {
	t.Parallel()
	e := newMailEnv(t, envOptions{})
	e.signup(t, "taker@example.com")
	e.signup(t, "mover@example.com")
	e.smtp.Wait(t, 30*time.Second, 2)
	s := e.login(t, "mover@example.com")
	e.req(t, "POST", "/v1/email/change", map[string]string{"new_email": "TAKER@example.com", "current_password": pw}, bearer(s.access)...).want(t, 202, "")
	e.settled(t)
	if n := len(e.smtp.Messages()); n != 2 {
		t.Fatalf("%d mails: a change to a taken address sent one", n)
	}
	if n := e.Count(t, `SELECT count(*) FROM email_outbox WHERE kind = 'email_change' AND status = 'skipped' AND outcome = 'email_taken'`); n != 1 {
		t.Fatal("the change's intent was not skipped as taken")
	}

	// Taken between the mail and the confirmation: 409, nothing changes.
	e.req(t, "POST", "/v1/email/change", map[string]string{"new_email": "free@example.com", "current_password": pw}, bearer(s.access)...).want(t, 202, "")
	confirm := e.next(t, 3)
	e.signup(t, "free@example.com")
	e.req(t, "POST", "/v1/email/change/confirm", map[string]string{"token": confirm.Token()}).want(t, 409, "email_taken")
	if me := e.me(t, s.access); me.str("email") != "mover@example.com" {
		t.Fatalf("/v1/me after a refused confirmation: %s", me.raw)
	}
}

func TestVerificationForTheSignedInUser(t *testing.T) {
	t.Parallel()
	e := newMailEnv(t, envOptions{kit: testdb.KitOptions{Config: func(c *auth.Config) { c.Email.Verification = auth.VerificationOff }}})
	e.signup(t, "own@example.com")
	s := e.login(t, "own@example.com")
	e.req(t, "POST", "/v1/email/verification", map[string]string{"email": "own@example.com"}, bearer(s.access)...).want(t, 400, "invalid_request")
	e.req(t, "POST", "/v1/email/verification", nil, bearer(s.access)...).want(t, 202, "")
	e.req(t, "POST", "/v1/email/verification", nil, "Authorization", "Bearer nonsense").want(t, 401, "invalid_token")
	m := e.next(t, 1) // signup sent none: EMAIL_VERIFICATION=off
	checkMail(t, m, "own@example.com", "/verify", true)
	e.req(t, "POST", "/v1/email/verify", map[string]string{"email": "own@example.com", "code": m.Code()}).want(t, 204, "")
	// Verified: a new request sends nothing.
	e.req(t, "POST", "/v1/email/verification", nil, bearer(s.access)...).want(t, 202, "")
	e.settled(t)
	if n := len(e.smtp.Messages()); n != 1 {
		t.Fatalf("%d mails", n)
	}
}

func TestEmailVerificationRequired(t *testing.T) {
	t.Parallel()
	e := newMailEnv(t, envOptions{kit: testdb.KitOptions{Config: func(c *auth.Config) { c.Email.Verification = auth.VerificationRequired }}})
	e.signup(t, "must@example.com")
	m := e.next(t, 1)
	e.req(t, "POST", "/v1/login", map[string]string{"email": "must@example.com", "password": "not the password"}).want(t, 401, "invalid_credentials")
	e.req(t, "POST", "/v1/login", map[string]string{"email": "must@example.com", "password": pw}).want(t, 403, "email_not_verified")
	if n := e.Count(t, `SELECT count(*) FROM sessions`); n != 0 {
		t.Fatalf("%d sessions for an unverified account", n)
	}
	e.req(t, "POST", "/v1/email/verify", map[string]string{"token": m.Token()}).want(t, 204, "")
	e.login(t, "must@example.com")

	// The purge deletes accounts made under the mode and left unverified
	// for 7 days, and no other account.
	e.signup(t, "never@example.com")
	if _, err := e.Pool.Exec(context.Background(), `INSERT INTO users (email, password_hash, created_at, updated_at)
	    VALUES ('before@example.com', 'x', now() - interval '30 days', now())`); err != nil {
		t.Fatal(err)
	}
	now := e.Clock.Now().Add(7*24*time.Hour + time.Minute)
	if _, _, err := e.Store.PurgeExclusive(context.Background(), now, now.Add(-90*24*time.Hour), 1000); err != nil {
		t.Fatal(err)
	}
	var left []string
	rows, _ := e.Pool.Query(context.Background(), `SELECT email FROM users ORDER BY email`)
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		left = append(left, s)
	}
	if !slices.Equal(left, []string{"before@example.com", "must@example.com"}) {
		t.Fatalf("after the purge: %v", left)
	}
}

// uniform reduces a response to what must not differ between addresses:
// the status, the body, and the header names and values but Date and
// X-Request-Id.
func uniform(r response) string {
	h := r.header.Clone()
	h.Del("Date")
	h.Del("X-Request-Id")
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s\n", r.status, r.raw)
	_ = h.Write(&b)
	return b.String()
}

func TestRequestAnswersAreUniform(t *testing.T) {
	t.Parallel()
	e := newMailEnv(t, envOptions{proxies: []string{"127.0.0.1/32"}})
	e.signup(t, "verified@example.com")
	v := e.next(t, 1)
	e.req(t, "POST", "/v1/email/verify", map[string]string{"token": v.Token()}).want(t, 204, "")
	e.signup(t, "unverified@example.com")
	e.signup(t, "capped@example.com")
	e.smtp.Wait(t, 30*time.Second, 3)
	for i := range 3 { // the per-IP cap of this account and purpose
		e.req(t, "POST", "/v1/password/forgot", map[string]string{"email": "capped@example.com"}, "X-Forwarded-For", "198.51.100.7").want(t, 202, "")
		e.next(t, 4+i)
	}
	for _, path := range []string{"/v1/password/forgot", "/v1/email/verification"} {
		var want string
		for _, addr := range []string{"verified@example.com", "unverified@example.com", "nobody@example.com", "capped@example.com", "CAPPED@Example.com"} {
			r := e.req(t, "POST", path, map[string]string{"email": addr}, "X-Forwarded-For", "198.51.100.7")
			got := uniform(r)
			if want == "" {
				want = got
				if r.status != 202 || strings.TrimSpace(r.raw) != "{}" {
					t.Fatalf("%s: %d %s", path, r.status, r.raw)
				}
			} else if got != want {
				t.Fatalf("%s answers %s differently:\n%s\nvs\n%s", path, addr, got, want)
			}
		}
	}
	e.settled(t)
	// Sent: the reset of the verified, the unverified and the unknown none,
	// capped none; verification only to the unverified.
	var kinds []string
	for _, m := range e.smtp.Messages()[6:] {
		kinds = append(kinds, m.To[0]+" "+m.Link()[len(testdb.Issuer+"/account"):][:6])
	}
	slices.Sort(kinds)
	want := []string{"capped@example.com /verif", "capped@example.com /verif", // not capped: another purpose
		"unverified@example.com /reset", "unverified@example.com /verif", "verified@example.com /reset"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("mails sent: %v, want %v", kinds, want)
	}
}

func TestOneTimeTokenRules(t *testing.T) {
	t.Parallel()
	e := newMailEnv(t, envOptions{proxies: []string{"127.0.0.1/32"}})
	const addr = "rules@example.com"
	e.signup(t, addr)
	e.next(t, 1)
	forgot := func(ip string) mailtest.Message {
		t.Helper()
		before := len(e.smtp.Messages())
		e.req(t, "POST", "/v1/password/forgot", map[string]string{"email": addr}, "X-Forwarded-For", ip).want(t, 202, "")
		m := e.latest(t, "/reset")
		if len(e.smtp.Messages()) == before {
			t.Fatal("no reset mail was sent")
		}
		return m
	}
	reset := func(body map[string]string) response {
		body["new_password"] = "quiet harbour lantern"
		return e.req(t, "POST", "/v1/password/reset", body)
	}

	t.Run("at most 3 live issuances", func(t *testing.T) {
		var ms []mailtest.Message
		for i := range 4 {
			ms = append(ms, forgot(fmt.Sprintf("203.0.113.%d", i+1)))
		}
		reset(map[string]string{"token": ms[0].Token()}).want(t, 401, "invalid_grant") // the fourth spent the oldest
		reset(map[string]string{"token": ms[1].Token()}).want(t, 204, "")
		reset(map[string]string{"token": ms[3].Token()}).want(t, 401, "invalid_grant") // using one spent all
	})

	t.Run("single use under 20 concurrent redemptions", func(t *testing.T) {
		m := forgot("203.0.113.10")
		codes := make(chan int, 20)
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := map[string]string{"token": m.Token()}
				if i%2 == 1 {
					body = map[string]string{"email": addr, "code": m.Code()}
				}
				codes <- reset(body).status
			}()
		}
		wg.Wait()
		close(codes)
		ok := 0
		for c := range codes {
			switch c {
			case 204:
				ok++
			case 401:
			default:
				t.Errorf("status %d", c)
			}
		}
		if ok != 1 {
			t.Fatalf("%d of 20 concurrent redemptions succeeded, want 1", ok)
		}
	})

	t.Run("five wrong codes spend an issuance", func(t *testing.T) {
		m := forgot("203.0.113.11")
		wrong := wrongCode(m.Code())
		for range 5 {
			reset(map[string]string{"email": addr, "code": wrong}).want(t, 401, "invalid_grant")
		}
		reset(map[string]string{"email": addr, "code": m.Code()}).want(t, 401, "invalid_grant")
		reset(map[string]string{"token": m.Token()}).want(t, 401, "invalid_grant")
	})

	t.Run("20 concurrent wrong codes evaluate at most the budget", func(t *testing.T) {
		// 5 wrong codes were counted today already; the budget is 10. Three
		// more against b leave 2, fewer than c's own 5.
		b := forgot("203.0.113.12")
		for range 3 {
			reset(map[string]string{"email": addr, "code": wrongCode(b.Code())}).want(t, 401, "invalid_grant")
		}
		c := forgot("203.0.113.13")
		wrong := wrongCode(c.Code())
		if wrong == b.Code() {
			wrong = "22222222"
		}
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() { defer wg.Done(); reset(map[string]string{"email": addr, "code": wrong}) }()
		}
		wg.Wait()
		if n := e.Count(t, `SELECT wrong_codes FROM one_time_tokens ORDER BY id DESC LIMIT 1`); n > 2 {
			t.Fatalf("%d wrong codes evaluated against the newest issuance; the day's budget left 2", n)
		}
		if n := e.Count(t, `SELECT max(wrong_codes) FROM one_time_tokens`); n > 5 {
			t.Fatalf("an issuance had %d wrong codes evaluated, at most 5", n)
		}
		// Past the day's budget only links work.
		reset(map[string]string{"email": addr, "code": c.Code()}).want(t, 401, "invalid_grant")
		reset(map[string]string{"token": c.Token()}).want(t, 204, "")
	})

	t.Run("expiry", func(t *testing.T) {
		m := forgot("203.0.113.14")
		e.Clock.Advance(30*time.Minute + time.Second)
		reset(map[string]string{"token": m.Token()}).want(t, 401, "invalid_grant")
	})

	t.Run("malformed tokens and codes", func(t *testing.T) {
		for _, body := range []map[string]string{
			{"token": "short"}, {"token": strings.Repeat("A", 43)}, {"token": strings.Repeat("*", 43)},
			{"email": addr, "code": "1234567"}, {"email": addr, "code": "abcdefgh"}, {"email": "not an address", "code": "12345678"},
		} {
			reset(body).want(t, 401, "invalid_grant")
		}
		for _, body := range []map[string]string{
			{}, {"token": "x", "code": "12345678"}, {"email": addr}, {"code": "12345678"},
		} {
			reset(body).want(t, 400, "invalid_request")
		}
	})
}

// wrongCode is an 8-digit code that is not code.
func wrongCode(code string) string {
	if code == "00000000" {
		return "11111111"
	}
	return "00000000"
}

func TestIssuanceCaps(t *testing.T) {
	t.Parallel()
	e := newMailEnv(t, envOptions{proxies: []string{"127.0.0.1/32"}})
	const addr = "caps@example.com"
	e.signup(t, addr)
	e.next(t, 1)
	// 3 an hour from one IP; 10 an hour in all.
	for i := range 12 {
		ip := fmt.Sprintf("192.0.2.%d", i/4+1) // four requests from each of three IPs
		e.req(t, "POST", "/v1/password/forgot", map[string]string{"email": addr}, "X-Forwarded-For", ip).want(t, 202, "")
	}
	e.settled(t)
	if n := len(e.smtp.Messages()) - 1; n != 9 {
		t.Fatalf("%d reset mails, want 9 (3 from each of 3 IPs)", n)
	}
	for i := range 4 {
		e.req(t, "POST", "/v1/password/forgot", map[string]string{"email": addr}, "X-Forwarded-For", fmt.Sprintf("192.0.2.%d", 10+i)).want(t, 202, "")
	}
	e.settled(t)
	if n := len(e.smtp.Messages()) - 1; n != 10 {
		t.Fatalf("%d reset mails, want 10 (the cap in all)", n)
	}
	if n := e.Count(t, `SELECT count(*) FROM email_outbox WHERE outcome = 'capped'`); n != 6 {
		t.Fatalf("%d capped intents, want 6", n)
	}
}

func TestEmailEndpointsAreRateLimited(t *testing.T) {
	t.Parallel()
	e := newMailEnv(t, envOptions{proxies: []string{"127.0.0.1/32"},
		kit: testdb.KitOptions{Config: func(c *auth.Config) { c.IPLimit = auth.RateLimit{N: 2, Window: time.Hour} }}})
	for i, path := range []string{"/v1/email/verification", "/v1/email/verify", "/v1/password/forgot",
		"/v1/password/reset", "/v1/email/change", "/v1/email/change/confirm", "/v1/account/deny"} {
		ip := fmt.Sprintf("198.51.100.%d", i+1)
		for range 2 {
			if r := e.req(t, "POST", path, map[string]string{"email": "x@example.com"}, "X-Forwarded-For", ip); r.status == 429 {
				t.Fatalf("%s: 429 within the limit", path)
			}
		}
		r := e.req(t, "POST", path, map[string]string{"email": "x@example.com"}, "X-Forwarded-For", ip)
		r.want(t, 429, "too_many_requests")
		if r.header.Get("Retry-After") == "" {
			t.Fatalf("%s: 429 without Retry-After", path)
		}
	}
}

func TestEmailFlowsLeakNoSecrets(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	e := newMailEnv(t, envOptions{kit: testdb.KitOptions{Log: &logs}})
	secrets := []string{pw}
	var bodies []string
	do := func(method, path string, body any, status int, hdr ...string) response {
		t.Helper()
		r := e.req(t, method, path, body, hdr...)
		r.want(t, status, "")
		bodies = append(bodies, r.raw)
		return r
	}
	keep := func(m mailtest.Message) mailtest.Message {
		secrets = append(secrets, m.Token())
		if m.Code() != "" {
			secrets = append(secrets, m.Code())
		}
		return m
	}
	const addr, newAddr = "secret@example.com", "secret2@example.com"
	e.signup(t, addr)
	v := keep(e.latest(t, "/verify"))
	do("POST", "/v1/email/verify", map[string]string{"email": addr, "code": wrongCode(v.Code())}, 401)
	do("POST", "/v1/email/verify", map[string]string{"email": addr, "code": v.Code()}, 204)
	do("POST", "/v1/email/verify", map[string]string{"token": v.Token()}, 401)
	do("POST", "/v1/password/forgot", map[string]string{"email": addr}, 202)
	r := keep(e.latest(t, "/reset"))
	const pw2, pw3 = "second secret passphrase", "third secret passphrase"
	secrets = append(secrets, pw2, pw3)
	do("POST", "/v1/password/reset", map[string]string{"token": r.Token(), "new_password": pw2}, 204)
	do("POST", "/v1/password/reset", map[string]string{"token": r.Token(), "new_password": pw2}, 401)
	keep(e.latest(t, "/deny"))
	lr := e.req(t, "POST", "/v1/login", map[string]string{"email": addr, "password": pw2}) // its body is the tokens
	lr.want(t, 200, "")
	at := lr.str("access_token")
	secrets = append(secrets, at, lr.str("refresh_token"))
	do("POST", "/v1/email/change", map[string]string{"new_email": newAddr, "current_password": pw}, 401, bearer(at)...)
	do("POST", "/v1/email/change", map[string]string{"new_email": newAddr, "current_password": pw2}, 202, bearer(at)...)
	c := keep(e.latest(t, "/email"))
	do("POST", "/v1/email/change/confirm", map[string]string{"email": newAddr, "code": c.Code()}, 204)
	d := keep(e.latest(t, "/deny"))
	do("POST", "/v1/account/deny", map[string]string{"token": d.Token()}, 204)
	keep(e.latest(t, "/reset"))
	do("POST", "/v1/password/forgot", map[string]string{"email": addr}, 202)
	r = keep(e.latest(t, "/reset"))
	do("POST", "/v1/password/reset", map[string]string{"email": addr, "code": r.Code(), "new_password": pw3}, 204)
	e.settled(t)
	e.req(t, "GET", "/healthz", nil) // the last request's log line is written

	var audit []string
	rows, _ := e.Pool.Query(context.Background(), `SELECT row_to_json(a)::text FROM audit_events a`)
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		audit = append(audit, s)
	}
	if len(audit) < 10 {
		t.Fatalf("only %d audit rows", len(audit))
	}
	dump, err := exec.Command("pg_dump", "--data-only", e.Pool.Config().ConnString()).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	places := map[string]string{"logs": logs.String(), "audit rows": strings.Join(audit, "\n"),
		"response bodies": strings.Join(bodies, "\n"), "database dump": string(dump)}
	for place, text := range places {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("the %s hold a secret (%d characters)", place, len(s))
			}
		}
	}
	if !strings.Contains(string(dump), "one_time_tokens") {
		t.Fatal("the dump does not hold the tokens table")
	}
}
