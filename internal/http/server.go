// Package http is the service's HTTP face: chi routes, handlers, middleware,
// JSON in and out. It imports auth and never store or pgx.
package http

import (
	"context"
	"log/slog"
	"net/http"

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
	Ready   func(context.Context) error
	Metrics *Metrics
	// TrustedProxies are CIDRs whose X-Forwarded-For is believed.
	TrustedProxies []string
	// CORSOrigins, when not empty, are the browser origins allowed to call
	// the API cross-origin; CORS is off without them.
	CORSOrigins []string
	// HSTS sends Strict-Transport-Security (when this server terminates TLS).
	HSTS bool
}

// NewServer returns the service's handler.
func NewServer(d Deps) http.Handler {
	if d.Metrics == nil {
		d.Metrics = NewMetrics()
	}
	if d.Service != nil {
		d.Service.SetMetrics(d.Metrics)
		d.Metrics.Gauge("accounts_hash_slots_in_use", "Password hashes being computed.",
			func() float64 { return float64(d.Service.HashSlotsInUse()) })
	}
	r := chi.NewRouter()
	r.Use(withRequestID, securityHeaders, recoverer(d.Log))
	if d.HSTS {
		r.Use(hsts)
	}
	if len(d.CORSOrigins) > 0 {
		r.Use(cors.Handler(cors.Options{
			AllowedOrigins: d.CORSOrigins,
			AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodDelete},
			AllowedHeaders: []string{"Authorization", "Content-Type", "X-Request-Id"},
			ExposedHeaders: []string{"X-Request-Id", "Retry-After", "WWW-Authenticate"},
			// Bearer tokens, not cookies: no credentials mode.
			AllowCredentials: false,
			MaxAge:           600,
		}))
	}
	if len(d.TrustedProxies) > 0 {
		r.Use(middleware.ClientIPFromXFF(d.TrustedProxies...))
	} else {
		r.Use(middleware.ClientIPFromRemoteAddr)
	}
	r.Use(logRequests(d.Log, d.Metrics), middleware.GetHead)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "not_found", Description: "no such resource"})
	})
	r.MethodNotAllowed(methodNotAllowed(r))
	addRoutes(r, d)
	return r
}
