package http

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5/middleware"
)

// BenchmarkMiddleware is the per-request middleware of an authenticated
// POST that the rate limit and the handler both describe the client for.
func BenchmarkMiddleware(b *testing.B) {
	var sink string
	h := withRequestID(middleware.ClientIPFromRemoteAddr(describeClient(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sink = client(r).IP        // the rate limit
		sink = client(r).UserAgent // the use case
	}))))
	r := httptest.NewRequest("POST", "/v1/token/refresh", nil)
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36")
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
	_ = sink
}
