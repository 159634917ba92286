package metrics_test

import (
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/acme/accounts/internal/metrics"
	"github.com/acme/accounts/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

func scrape(t *testing.T, r *metrics.Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestEachInstanceHasItsOwnRegistry(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	a, b := metrics.New(), metrics.New()
	for _, r := range []*metrics.Registry{a, b} {
		if err := r.Watch(nil, k.Service); err != nil {
			t.Fatalf("two registries watching one service: %v", err)
		}
	}
	// A second Watch on one registry is refused, not a panic.
	if err := a.Watch(nil, k.Service); !errors.Is(err, metrics.ErrWatched) {
		t.Fatalf("second Watch: %v, want ErrWatched", err)
	}
	a.Request("GET", "/v1/me", 200, time.Millisecond)
	a.Request("BREW", "/v1/me", 405, time.Millisecond)
	a.Login("ok")
	got, other := scrape(t, a), scrape(t, b)
	for _, want := range []string{
		`http_requests_total{method="GET",route="/v1/me",status="200"} 1`,
		`http_requests_total{method="other",route="/v1/me",status="405"} 1`,
		`accounts_logins_total{outcome="ok"} 1`,
		"accounts_hash_slots_in_use 0",
		"accounts_revocations_synced 1",
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(other, "accounts_logins_total{") {
		t.Error("a count made on one registry shows on another")
	}
}
