// Package http is the service's HTTP face: chi routes, handlers, middleware,
// JSON in and out. It imports auth and never store or pgx.
package http

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/cors"

	"github.com/acme/accounts/internal/auth"
)

// Deps is what the handlers need.
type Deps struct {
	Log     *slog.Logger
	Service *auth.Service
	Keys    interface{ JWKS() []auth.JWK }
	// Ready reports whether the database answers.
	Ready func(context.Context) error
	// Metrics counts requests and serves /metrics; nil counts nothing and
	// /metrics answers 404.
	Metrics Metrics
	// TrustedProxies are CIDRs whose X-Forwarded-For is believed.
	TrustedProxies []string
	// CORSOrigins, when not empty, are the browser origins allowed to call
	// the API cross-origin; CORS is off without them.
	CORSOrigins []string
	// HSTS sends Strict-Transport-Security (when this server terminates TLS).
	HSTS bool
	// Issuer is JWT_ISSUER: the OAuth metadata's issuer and the base of its
	// endpoints' URLs.
	Issuer string
	// AccountPages serves the account pages at /account/ (ACCOUNT_PAGES).
	AccountPages bool
	// RequestTimeout, when not zero, is each request's deadline: a request
	// waiting for a database connection (every one taken by statements
	// stuck on a lock, say) or for an answer gives up then with 503
	// instead of hanging on.
	RequestTimeout time.Duration
}

// Metrics receives the HTTP layer's counts (internal/metrics implements
// it with Prometheus) and serves them.
type Metrics interface {
	// Request counts one answered request by method, route pattern and status.
	Request(method, route string, status int, d time.Duration)
	// InFlight moves the count of requests being served by delta.
	InFlight(delta int)
	// Handler serves the metrics at /metrics.
	Handler() http.Handler
}

type nopMetrics struct{}

func (nopMetrics) Request(string, string, int, time.Duration) {}
func (nopMetrics) InFlight(int)                               {}
func (nopMetrics) Handler() http.Handler                      { return http.NotFoundHandler() }

// NewServer returns the service's handler.
func NewServer(d Deps) http.Handler {
	if d.Metrics == nil {
		d.Metrics = nopMetrics{}
	}
	// Origins as browsers send them, for the CORS layers and the CSRF check.
	origins := make([]string, len(d.CORSOrigins))
	for i, o := range d.CORSOrigins {
		origins[i] = canonicalOrigin(o)
	}
	d.CORSOrigins = origins
	r := chi.NewRouter()
	r.Use(withRequestID, securityHeaders, recoverer(d.Log))
	if d.RequestTimeout > 0 {
		r.Use(withDeadline(d.RequestTimeout))
	}
	if d.HSTS {
		r.Use(hsts)
	}
	if len(d.CORSOrigins) > 0 {
		r.Use(exceptBrowser(cors.Handler(cors.Options{
			AllowedOrigins: d.CORSOrigins,
			AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodDelete},
			AllowedHeaders: []string{"Authorization", "Content-Type", "X-Request-Id"},
			ExposedHeaders: []string{"X-Request-Id", "Retry-After", "WWW-Authenticate"},
			// Bearer tokens, not cookies: no credentials mode.
			AllowCredentials: false,
			MaxAge:           600,
		})))
	}
	if len(d.TrustedProxies) > 0 {
		r.Use(middleware.ClientIPFromXFF(d.TrustedProxies...))
	} else {
		r.Use(middleware.ClientIPFromRemoteAddr)
	}
	r.Use(describeClient, logRequests(d.Log, d.Metrics), middleware.GetHead)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "not_found", Description: "no such resource"})
	})
	r.MethodNotAllowed(methodNotAllowed(r))
	addRoutes(r, d)
	return r
}
