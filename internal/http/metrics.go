package http

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/acme/accounts/internal/auth"
)

// Metrics is the service's Prometheus registry. It also receives the
// account events (auth.Metrics).
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge

	logins      *prometheus.CounterVec
	refreshes   *prometheus.CounterVec
	revocations *prometheus.CounterVec
	hashWait    *prometheus.HistogramVec
}

var _ auth.Metrics = (*Metrics)(nil)

// NewMetrics registers the HTTP metrics and the Go and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "HTTP requests by method, route pattern and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "HTTP request latency by method and route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "http_requests_in_flight", Help: "HTTP requests being served.",
		}),
	}
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accounts_logins_total", Help: "Logins by outcome (ok, failed, limited).",
	}, []string{"outcome"})
	m.refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accounts_refreshes_total", Help: "Refreshes by outcome (rotated, grace, reuse: the session was ended, invalid).",
	}, []string{"outcome"})
	m.revocations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accounts_revocations_total", Help: "Revocations made by this instance: jti (access token), session (session ended), user (logout everywhere), user_changed.",
	}, []string{"kind"})
	m.hashWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "accounts_hash_slot_wait_seconds", Help: "Time waited for a password-hashing slot, by whether one was had.",
		Buckets: []float64{.0001, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2},
	}, []string{"result"})
	m.reg.MustRegister(m.requests, m.duration, m.inFlight, m.logins, m.refreshes, m.revocations, m.hashWait,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Gauge registers a gauge read from fn at every scrape.
func (m *Metrics) Gauge(name, help string, fn func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// Login counts a login by outcome.
func (m *Metrics) Login(outcome string) { m.logins.WithLabelValues(outcome).Inc() }

// Refresh counts a refresh by outcome.
func (m *Metrics) Refresh(outcome string) { m.refreshes.WithLabelValues(outcome).Inc() }

// Revoked counts a revocation by kind.
func (m *Metrics) Revoked(k auth.RevocationKind) {
	kind := map[auth.RevocationKind]string{auth.RevokedJTI: "jti", auth.EndedSession: "session",
		auth.UserCutoff: "user", auth.UserChanged: "user_changed"}[k]
	if kind != "" {
		m.revocations.WithLabelValues(kind).Inc()
	}
}

// HashWait observes the wait for a hashing slot.
func (m *Metrics) HashWait(d time.Duration, got bool) {
	result := "acquired"
	if !got {
		result = "refused"
	}
	m.hashWait.WithLabelValues(result).Observe(d.Seconds())
}

// Registry lets other packages add their own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func (m *Metrics) observe(method, route string, status int, d time.Duration) {
	if !knownMethod(method) {
		method = "other" // keep label cardinality bounded
	}
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(method, route).Observe(d.Seconds())
}

func knownMethod(m string) bool {
	for _, k := range methods {
		if k == m {
			return true
		}
	}
	return false
}

func (m *Metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
