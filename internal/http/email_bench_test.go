package http_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/acme/accounts/internal/auth"
	httpapi "github.com/acme/accounts/internal/http"
	"github.com/acme/accounts/internal/mail"
	"github.com/acme/accounts/internal/mail/mailtest"
	"github.com/acme/accounts/internal/metrics"
	"github.com/acme/accounts/internal/testdb"
)

// BenchmarkEmailRequests measures the request path of the two request
// endpoints for the five kinds of address the answer must not tell apart:
// known (an account whose verification mail is still live), verified,
// unverified, unknown, and an account past its per-account cap. The request records an intent and returns, the
// same work for each: the per-case times should agree within noise
// (compare them with benchstat). The sender is stopped while it runs, so
// only the request path is measured.
func BenchmarkEmailRequests(b *testing.B) {
	smtp := mailtest.Start(b, mailtest.Options{})
	m, err := mail.New(smtp.URL(), mailFrom, mail.Options{})
	if err != nil {
		b.Fatal(err)
	}
	k := testdb.NewKit(b, testdb.KitOptions{Mailer: m, Sender: fastSender, Clock: testdb.NewRunningClock()})
	reg := metrics.New()
	srv := httptest.NewServer(httpapi.NewServer(httpapi.Deps{Log: k.Log, Service: k.Service, Keys: k.Keys,
		Ready: k.Store.Ping, Metrics: reg}))
	b.Cleanup(srv.Close)
	ctx := context.Background()
	for _, addr := range []string{"known@example.com", "verified@example.com", "unverified@example.com", "capped@example.com"} {
		if _, err := k.Service.Signup(ctx, addr, pw, auth.Client{IP: "192.0.2.1"}); err != nil {
			b.Fatal(err)
		}
	}
	for range 4 { // the cap: 3 an hour from one IP
		if err := k.Service.ForgotPassword(ctx, "capped@example.com", auth.Client{IP: "192.0.2.1"}); err != nil {
			b.Fatal(err)
		}
	}
	msgs := smtp.Wait(b, 30*time.Second, 7)
	for _, msg := range msgs {
		if msg.To[0] == "verified@example.com" {
			if strings.Contains(msg.Link(), "/verify#") {
				if err := k.Service.VerifyEmail(ctx, auth.Redemption{Token: msg.Token()}, auth.Client{}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for k.Count(b, `SELECT count(*) FROM email_outbox WHERE status = 'pending'`) > 0 {
		if time.Now().After(deadline) {
			b.Fatal("outbox did not settle")
		}
		time.Sleep(10 * time.Millisecond) // waiting on a state
	}
	if k.Count(b, `SELECT count(*) FROM email_outbox WHERE outcome = 'capped'`) != 1 {
		b.Fatal("capped@example.com is not past its cap")
	}
	k.StopSender()

	client := srv.Client()
	for _, path := range []string{"/v1/password/forgot", "/v1/email/verification"} {
		for _, c := range []struct{ name, addr string }{
			{"known", "known@example.com"}, {"verified", "verified@example.com"},
			{"unverified", "unverified@example.com"}, {"unknown", "nobody@example.com"},
			{"capped", "capped@example.com"},
		} {
			b.Run(strings.TrimPrefix(path, "/v1/")+"/"+c.name, func(b *testing.B) {
				body := `{"email":"` + c.addr + `"}`
				for b.Loop() {
					req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					res, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					res.Body.Close()
					if res.StatusCode != http.StatusAccepted {
						b.Fatalf("status %d", res.StatusCode)
					}
				}
			})
		}
	}
}
