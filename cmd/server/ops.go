package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/acme/accounts/internal/auth"
	httpapi "github.com/acme/accounts/internal/http"
	"github.com/acme/accounts/internal/store"
)

// registerGauges exposes the pool and the revocation state as metrics.
func registerGauges(m *httpapi.Metrics, st *store.Store, rev *auth.Revocations) {
	m.Gauge("accounts_db_pool_acquired_conns", "Pool connections in use.",
		func() float64 { return float64(st.PoolStats().AcquiredConns()) })
	m.Gauge("accounts_db_pool_idle_conns", "Idle pool connections.",
		func() float64 { return float64(st.PoolStats().IdleConns()) })
	m.Gauge("accounts_db_pool_max_conns", "Pool size (DATABASE_MAX_CONNS).",
		func() float64 { return float64(st.PoolStats().MaxConns()) })
	m.Gauge("accounts_db_pool_empty_acquire_total", "Acquires that had to wait for a connection.",
		func() float64 { return float64(st.PoolStats().EmptyAcquireCount()) })
	m.Gauge("accounts_db_pool_acquire_wait_seconds_total", "Time spent waiting for a pool connection.",
		func() float64 { return st.PoolStats().EmptyAcquireWaitTime().Seconds() })
	m.Gauge("accounts_revocations_cached", "Revocations held in memory (jtis, ended sessions, user cut-offs).",
		func() float64 { return float64(rev.Size()) })
	m.Gauge("accounts_revocations_synced", "1 while the in-memory revocation state is trusted (listener up), else 0: tokens are then checked against the database.",
		func() float64 {
			if rev.Synced() {
				return 1
			}
			return 0
		})
	m.Gauge("accounts_revocations_heartbeat_age_seconds", "Time since this instance's last heartbeat came back through its revocation listener (-1 while not synced); over 3 s the listener is taken for dead.",
		func() float64 {
			if a := rev.HeartbeatAge(); a >= 0 {
				return a.Seconds()
			}
			return -1
		})
	m.Gauge("accounts_revocations_lag_seconds", "Time since the revocation state last heard from the database (-1 while not synced).",
		func() float64 {
			if l := rev.Lag(); l >= 0 {
				return l.Seconds()
			}
			return -1
		})
}

// serveDebug serves pprof on its own listener (DEBUG_ADDR), never on the
// public one. It returns a function that stops it.
func serveDebug(addr string, log *slog.Logger) (func(), error) {
	stop, _, err := startDebug(addr, log)
	return stop, err
}

func startDebug(addr string, log *slog.Logger) (func(), string, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen on DEBUG_ADDR=%s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("debug listener", "err", err)
		}
	}()
	log.Warn("pprof is served on DEBUG_ADDR; keep it off public networks", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, ln.Addr().String(), nil
}
