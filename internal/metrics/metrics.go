// Package metrics is the service's Prometheus registry. It implements the
// small metrics interfaces that auth (auth.Metrics) and http (http.Metrics)
// declare, reads the gauges of the pool, the hashing slots and the
// revocation state at every scrape, and serves the text format. It imports
// auth for its types and nothing else of ours; each instance makes its own
// registry.
package metrics

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/acme/accounts/internal/auth"
)

// Registry is one instance's metrics.
type Registry struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge

	logins      *prometheus.CounterVec
	refreshes   *prometheus.CounterVec
	revocations *prometheus.CounterVec
	hashWait    *prometheus.HistogramVec
	emails      *prometheus.CounterVec

	watchOnce sync.Once
}

var _ auth.Metrics = (*Registry)(nil)

// New makes a registry with the HTTP and account series and the Go and
// process collectors.
func New() *Registry {
	m := &Registry{
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
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accounts_logins_total", Help: "Logins by outcome (ok, failed, limited).",
		}, []string{"outcome"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accounts_refreshes_total", Help: "Refreshes by outcome (rotated, grace, reuse: the session was ended, invalid).",
		}, []string{"outcome"}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accounts_revocations_total", Help: "Revocations made by this instance: jti (access token), session (session ended), user (logout everywhere), user_changed.",
		}, []string{"kind"}),
		hashWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "accounts_hash_slot_wait_seconds", Help: "Time waited for a password-hashing slot, by whether one was had.",
			Buckets: []float64{.0001, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2},
		}, []string{"result"}),
		emails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accounts_emails_total", Help: "Mail delivery attempts by kind and outcome (sent, retry, failed: refused for good, expired, skipped: nothing to send).",
		}, []string{"kind", "outcome"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.inFlight, m.logins, m.refreshes, m.revocations, m.hashWait, m.emails,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Login counts a login by outcome.
func (m *Registry) Login(outcome string) { m.logins.WithLabelValues(outcome).Inc() }

// Refresh counts a refresh by outcome.
func (m *Registry) Refresh(outcome auth.RotateOutcome) {
	m.refreshes.WithLabelValues(outcome.String()).Inc()
}

var revocationKinds = map[auth.RevocationKind]string{auth.RevokedJTI: "jti", auth.EndedSession: "session",
	auth.UserCutoff: "user", auth.UserChanged: "user_changed"}

// Revoked counts a revocation by kind.
func (m *Registry) Revoked(k auth.RevocationKind) {
	if kind := revocationKinds[k]; kind != "" {
		m.revocations.WithLabelValues(kind).Inc()
	}
}

// HashWait observes the wait for a hashing slot.
func (m *Registry) HashWait(d time.Duration, got bool) {
	result := "acquired"
	if !got {
		result = "refused"
	}
	m.hashWait.WithLabelValues(result).Observe(d.Seconds())
}

// Email counts one delivery attempt by kind and outcome.
func (m *Registry) Email(kind, outcome string) { m.emails.WithLabelValues(kind, outcome).Inc() }

// methods are the request methods counted by name; any other is "other",
// so that label cardinality stays bounded.
var methods = map[string]bool{http.MethodGet: true, http.MethodHead: true, http.MethodPost: true,
	http.MethodPut: true, http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true}

// Request counts one answered request by method, route pattern and status.
func (m *Registry) Request(method, route string, status int, d time.Duration) {
	if !methods[method] {
		method = "other"
	}
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(method, route).Observe(d.Seconds())
}

// InFlight moves the in-flight gauge by delta.
func (m *Registry) InFlight(delta int) { m.inFlight.Add(float64(delta)) }

// Handler serves the registry in the Prometheus text format.
func (m *Registry) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

// PoolStat is what the pool gauges read (a *pgxpool.Stat).
type PoolStat interface {
	AcquiredConns() int32
	IdleConns() int32
	MaxConns() int32
	EmptyAcquireCount() int64
	EmptyAcquireWaitTime() time.Duration
}

// ErrWatched is a second Watch on one registry.
var ErrWatched = errors.New("metrics: the registry already watches a service")

// Watch registers the gauges read at every scrape: the connection pool's
// (pool, when not nil), the service's hashing slots and, when it keeps
// them, its revocation state. A registry watches one service; a second
// Watch returns ErrWatched.
func (m *Registry) Watch(pool func() PoolStat, svc *auth.Service) error {
	err := ErrWatched
	m.watchOnce.Do(func() { err = m.watch(pool, svc) })
	return err
}

func (m *Registry) watch(pool func() PoolStat, svc *auth.Service) error {
	gauge := func(name, help string, fn func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn)
	}
	slots, memory := svc.HashSlots()
	cs := []prometheus.Collector{
		gauge("accounts_hash_slots_in_use", "Password hashes being computed.",
			func() float64 { return float64(svc.HashSlotsInUse()) }),
		gauge("accounts_hash_slots", "Password hashes that may be computed at once.",
			func() float64 { return float64(slots) }),
		gauge("accounts_hash_memory_bytes", "Memory one password hash takes (argon2id m).",
			func() float64 { return float64(memory) }),
		gauge("accounts_email_outbox_pending", "Mails waiting in the outbox (all instances), as this instance's sender last counted.",
			func() float64 { n, _ := svc.OutboxPending(); return float64(n) }),
		gauge("accounts_email_outbox_oldest_seconds", "Age of the oldest mail waiting in the outbox (0 when none).",
			func() float64 { _, age := svc.OutboxPending(); return age.Seconds() }),
	}
	if pool != nil {
		cs = append(cs,
			gauge("accounts_db_pool_acquired_conns", "Pool connections in use.",
				func() float64 { return float64(pool().AcquiredConns()) }),
			gauge("accounts_db_pool_idle_conns", "Idle pool connections.",
				func() float64 { return float64(pool().IdleConns()) }),
			gauge("accounts_db_pool_max_conns", "Pool size (DATABASE_MAX_CONNS).",
				func() float64 { return float64(pool().MaxConns()) }),
			gauge("accounts_db_pool_empty_acquire_total", "Acquires that had to wait for a connection.",
				func() float64 { return float64(pool().EmptyAcquireCount()) }),
			gauge("accounts_db_pool_acquire_wait_seconds_total", "Time spent waiting for a pool connection.",
				func() float64 { return pool().EmptyAcquireWaitTime().Seconds() }))
	}
	if rev := svc.Revocations(); rev != nil {
		seconds := func(d time.Duration) float64 {
			if d < 0 {
				return -1
			}
			return d.Seconds()
		}
		cs = append(cs,
			gauge("accounts_revocations_cached", "Revocations held in memory (jtis, ended sessions, user cut-offs).",
				func() float64 { return float64(rev.Size()) }),
			gauge("accounts_revocations_synced", "1 while the in-memory revocation state is trusted (listener up), else 0: tokens are then checked against the database.",
				func() float64 {
					if rev.Synced() {
						return 1
					}
					return 0
				}),
			gauge("accounts_revocations_lag_seconds", "Time since the revocation state last heard from the database (-1 while not synced).",
				func() float64 { return seconds(rev.Lag()) }),
			gauge("accounts_revocations_heartbeat_age_seconds", "Time since this instance's last heartbeat came back through its revocation listener (-1 while not synced); over 3 s the listener is taken for dead.",
				func() float64 { return seconds(rev.HeartbeatAge()) }))
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
