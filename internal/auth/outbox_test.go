package auth_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/mail"
	"github.com/acme/accounts/internal/mail/mailtest"
	"github.com/acme/accounts/internal/testdb"
)

// Delivery faults, against a real SMTP server (go-smtp in process, with
// STARTTLS and AUTH PLAIN) and the real outbox in PostgreSQL.

var quickSender = auth.SenderConfig{Backoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	Poll: 50 * time.Millisecond, Lease: 10 * time.Second, SendTimeout: 5 * time.Second}

func smtpMailer(t *testing.T) (*mailtest.Server, *mail.Mailer) {
	t.Helper()
	srv := mailtest.Start(t, mailtest.Options{STARTTLS: true, User: "accounts", Password: "smtp-secret"})
	m, err := mail.New(srv.URL(), "Accounts <no-reply@test.local>", mail.Options{TLSConfig: srv.TLSConfig(),
		Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return srv, m
}

func mailKit(t *testing.T, m auth.Mailer, o testdb.KitOptions) *testdb.Kit {
	t.Helper()
	o.Mailer = m
	if o.Sender == (auth.SenderConfig{}) {
		o.Sender = quickSender
	}
	if o.Clock == nil {
		o.Clock = testdb.NewRunningClock()
	}
	return testdb.NewKit(t, o)
}

// settle waits until no mail of the outbox is pending.
func settle(t *testing.T, k *testdb.Kit) {
	t.Helper()
	waitCount(t, k, 0, `SELECT count(*) FROM email_outbox WHERE status = 'pending'`)
}

// waitCount waits until the count query answers want.
func waitCount(t *testing.T, k *testdb.Kit, want int, sql string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for k.Count(t, sql, args...) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%q is not %d after 30 s", sql, want)
		}
		time.Sleep(10 * time.Millisecond) // waiting on a state, not guessing a duration
	}
}

func outboxRow(t *testing.T, k *testdb.Kit) (status, outcome string, attempts int) {
	t.Helper()
	err := k.Pool.QueryRow(ctx, `SELECT status, outcome, attempts FROM email_outbox ORDER BY id DESC LIMIT 1`).
		Scan(&status, &outcome, &attempts)
	if err != nil {
		t.Fatal(err)
	}
	return
}

func TestTemporaryFailuresAreRetried(t *testing.T) {
	t.Parallel()
	srv, m := smtpMailer(t)
	srv.FailNext(2, 451)
	k := mailKit(t, m, testdb.KitOptions{})
	if _, err := k.Service.Signup(ctx, "retry@example.com", pw, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	msg := srv.Wait(t, 30*time.Second, 1)[0]
	if msg.To[0] != "retry@example.com" || msg.Token() == "" {
		t.Fatalf("delivered %v %q", msg.To, msg.Link())
	}
	settle(t, k)
	if status, _, attempts := outboxRow(t, k); status != "sent" || attempts != 3 {
		t.Fatalf("status %s after %d attempts, want sent after 3", status, attempts)
	}
	// Each attempt made a fresh token: the one delivered works.
	if err := k.Service.VerifyEmail(ctx, auth.Redemption{Token: msg.Token()}, auth.Client{}); err != nil {
		t.Fatal(err)
	}
}

func TestPermanentFailureIsAbandonedAndAudited(t *testing.T) {
	t.Parallel()
	srv, m := smtpMailer(t)
	srv.FailNext(1, 550)
	k := mailKit(t, m, testdb.KitOptions{})
	u, err := k.Service.Signup(ctx, "bounce@example.com", pw, auth.Client{RequestID: "req-bounce"})
	if err != nil {
		t.Fatal(err)
	}
	settle(t, k)
	if status, _, attempts := outboxRow(t, k); status != "failed" || attempts != 1 {
		t.Fatalf("status %s after %d attempts, want failed after 1", status, attempts)
	}
	waitCount(t, k, 1, `SELECT count(*) FROM audit_events WHERE event = 'email_abandoned' AND user_id = $1
	    AND detail->>'kind' = 'verification' AND request_id = 'req-bounce'`, u.ID)
	if n := k.Count(t, `SELECT count(*) FROM one_time_tokens WHERE used_at IS NULL`); n != 0 {
		t.Fatalf("%d live tokens for a mail that never arrived", n)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("%d messages", n)
	}
}

func TestServerDownThenBack(t *testing.T) {
	t.Parallel()
	srv, m := smtpMailer(t)
	srv.Down()
	k := mailKit(t, m, testdb.KitOptions{})
	if _, err := k.Service.Signup(ctx, "down@example.com", pw, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	// Wait for a failed attempt, then bring the server back.
	deadline := time.Now().Add(30 * time.Second)
	for k.Count(t, `SELECT count(*) FROM email_outbox WHERE attempts >= 2`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no retry while the server was down")
		}
		time.Sleep(10 * time.Millisecond) // waiting on a state
	}
	srv.Up()
	msg := srv.Wait(t, 30*time.Second, 1)[0]
	if msg.To[0] != "down@example.com" {
		t.Fatalf("to %v", msg.To)
	}
	settle(t, k)
	if status, _, _ := outboxRow(t, k); status != "sent" {
		t.Fatalf("status %s", status)
	}
}

func TestTwoSendersDeliverEachMailOnce(t *testing.T) {
	t.Parallel()
	srv, m := smtpMailer(t)
	pool := testdb.New(t)
	clock := testdb.NewRunningClock()
	a := mailKit(t, m, testdb.KitOptions{Pool: pool, Clock: clock})
	b := mailKit(t, m, testdb.KitOptions{Pool: pool, Clock: clock})
	const n = 30
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := a
			if i%2 == 1 {
				k = b
			}
			if _, err := k.Service.Signup(ctx, "two"+string(rune('a'+i))+"@example.com", pw, auth.Client{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	settle(t, a)
	msgs := srv.Messages()
	ids := map[string]int{}
	for _, msg := range msgs {
		ids[msg.MessageID]++
	}
	if len(msgs) != n || len(ids) != n {
		t.Fatalf("%d messages with %d Message-IDs for %d mails", len(msgs), len(ids), n)
	}
}

func TestSenderKilledBetweenSendingAndMarking(t *testing.T) {
	t.Parallel()
	srv, m := smtpMailer(t)
	pool := testdb.New(t)
	clock := testdb.NewRunningClock()
	lease := auth.SenderConfig{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Poll: 50 * time.Millisecond, Lease: 500 * time.Millisecond}
	first := mailKit(t, m, testdb.KitOptions{Pool: pool, Clock: clock, Sender: lease, ManualSender: true})
	sent := make(chan struct{})
	var once sync.Once
	first.Service.SetHooks(auth.Hooks{AfterSend: func(ctx context.Context, _ auth.Mail) {
		once.Do(func() { close(sent) })
		<-ctx.Done() // killed here: the mail went out, the outbox never hears of it
	}})
	first.StartSender(t)
	if _, err := first.Service.Signup(ctx, "killed@example.com", pw, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	<-sent
	first.StopSender()
	// Another instance takes the mail once the lease is over.
	second := mailKit(t, m, testdb.KitOptions{Pool: pool, Clock: clock, Sender: lease})
	srv.Wait(t, 30*time.Second, 2)
	settle(t, second)
	msgs := srv.Messages()
	if len(msgs) != 2 || msgs[0].MessageID != msgs[1].MessageID || msgs[0].MessageID == "" {
		t.Fatalf("%d messages, Message-IDs %v: want one duplicate with the same Message-ID", len(msgs),
			[]string{msgs[0].MessageID, msgs[len(msgs)-1].MessageID})
	}
	// Both links work until one is used (each attempt made its own token).
	tokens := []string{msgs[0].Token(), msgs[1].Token()}
	if slices.Contains(tokens, "") || tokens[0] == tokens[1] {
		t.Fatalf("tokens %q", tokens)
	}
	if err := second.Service.VerifyEmail(ctx, auth.Redemption{Token: tokens[0]}, auth.Client{}); err != nil {
		t.Fatal(err)
	}
}

func TestDeliveryExpiresWithTheTokensLifetime(t *testing.T) {
	t.Parallel()
	srv, m := smtpMailer(t)
	srv.Down()
	clock := testdb.NewRunningClock()
	k := mailKit(t, m, testdb.KitOptions{Clock: clock})
	if _, err := k.Service.Signup(ctx, "late@example.com", pw, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	if err := k.Service.ForgotPassword(ctx, "late@example.com", auth.Client{}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Minute) // a reset intent lives 30 minutes; a verification 24 hours
	srv.Up()
	srv.Wait(t, 30*time.Second, 1)
	settle(t, k)
	var kinds []string
	rows, _ := k.Pool.Query(ctx, `SELECT kind || ' ' || status FROM email_outbox ORDER BY id`)
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		kinds = append(kinds, s)
	}
	want := []string{"verification sent", "reset expired"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("outbox: %v, want %v", kinds, want)
	}
}
