package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/acme/accounts/internal/auth"
	httpapi "github.com/acme/accounts/internal/http"
	"github.com/acme/accounts/internal/mail"
	"github.com/acme/accounts/internal/metrics"
	"github.com/acme/accounts/internal/store"
)

var timeNow = time.Now

const (
	// hashWait is how long a request (signup, login, password change) waits
	// for a hashing slot before 503.
	hashWait = time.Second
	// hashMemoryBudget bounds the memory all hashes in flight may take.
	hashMemoryBudget = 256 << 20
	// memoryMargin is the memory beyond the hashing slots the runtime may
	// use before it collects harder: connections, caches, buffers.
	memoryMargin    = 96 << 20
	shutdownTimeout = 20 * time.Second
	purgeInterval   = time.Minute
	purgeBatch      = 1000
	// revocationResync is how often the in-memory revocation state is
	// reloaded in full, in case a notification was ever missed.
	revocationResync = 30 * time.Second
)

// setMemoryLimit gives the Go runtime a soft memory limit, unless the
// operator set GOMEMLIMIT: argon2id leaves m KiB of garbage per hash, and
// with the default GOGC the heap may grow to twice what is live before a
// collection. The limit makes the collector keep the heap near the hashing
// slots' memory plus a working margin.
func setMemoryLimit(getenv func(string) string, p auth.Argon2Params, log *slog.Logger) {
	if getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := int64(hashSlots(p))*int64(p.MemoryKiB)<<10 + memoryMargin
	debug.SetMemoryLimit(limit)
	log.Info("memory limit set for the Go runtime", "mib", limit>>20)
}

// hashSlots sizes the hashing semaphore: enough to keep every CPU busy,
// never more than the memory budget allows.
func hashSlots(p auth.Argon2Params) int {
	slots := 2 * runtime.GOMAXPROCS(0)
	if byMem := hashMemoryBudget / (int(p.MemoryKiB) << 10); byMem < slots {
		slots = byMem
	}
	return max(slots, 1)
}

func cmdServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if _, err := parseFlags("serve", "server [serve]", args, 0, stderr); err != nil {
		return err
	}
	cfg, log, pool, err := setup(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer pool.Close()
	log.Info("database connected", "url", redactURL(cfg.DatabaseURL), "max_conns", cfg.MaxConns,
		"statement_cache", cfg.StatementCache)
	setMemoryLimit(getenv, cfg.Argon2, log)

	if cfg.MigrateOnStart {
		if err := store.Migrate(pool); err != nil {
			return err
		}
	}
	st := store.New(pool)
	if cfg.ListenDatabaseURL != "" {
		st.ListenOn(cfg.ListenDatabaseURL)
	}
	warnUnsealedKeys(cfg, log)
	reg := metrics.New()
	opts := serviceOptions(cfg, log)
	opts.InMemoryRevocations, opts.Metrics = true, reg
	if !cfg.AccountPages && cfg.EmailLinkBase == strings.TrimRight(cfg.Issuer, "/")+"/account" {
		log.Warn("ACCOUNT_PAGES=false but EMAIL_LINK_BASE points to them: mail links will not be found; set EMAIL_LINK_BASE to the product's own pages",
			"links", cfg.EmailLinkBase)
	}
	if cfg.SMTPURL == "" {
		log.Warn("SMTP_URL is not set: no mail is sent (verification, password reset and email-change mails wait in the outbox for an instance that has it)")
	} else {
		m, err := mail.New(cfg.SMTPURL, cfg.MailFrom, mail.Options{})
		if err != nil {
			return err
		}
		opts.Mailer = m
		log.Info("mail", "via", m.String(), "from", cfg.MailFrom, "verification", cfg.EmailVerification.String(),
			"links", cfg.EmailLinkBase)
	}
	svc, err := auth.New(ctx, st, opts)
	if err != nil {
		return err
	}
	if err := reg.Watch(func() metrics.PoolStat { return st.PoolStats() }, svc); err != nil {
		return err
	}
	tlsOn := cfg.TLSCertFile != ""
	handler := httpapi.NewServer(httpapi.Deps{
		Log: log, Service: svc, Keys: svc.Keys(), Ready: st.Ping, TrustedProxies: cfg.TrustedProxies,
		CORSOrigins: cfg.CORSOrigins, HSTS: tlsOn, Metrics: reg, Issuer: cfg.Issuer,
		AccountPages: cfg.AccountPages, RequestTimeout: requestTimeout(cfg.StatementTimeout),
	})
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if tlsOn {
		certs, err := newCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile, time.Second, log)
		if err != nil {
			return err
		}
		srv.TLSConfig = tlsConfig(certs)
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on ADDR=%s: %w", cfg.Addr, err)
	}
	log.Info("listening", "addr", ln.Addr().String(), "tls", tlsOn, "alg", cfg.JWTAlg)

	bg, stopBG := context.WithCancel(ctx)
	var background sync.WaitGroup
	defer func() { stopBG(); background.Wait() }() // nothing outlives run
	background.Go(func() { purge(bg, log, st, cfg.AuditRetention) })
	background.Go(func() { svc.Run(bg, revocationResync, cfg.RevocationHeartbeat) })
	if cfg.DebugAddr != "" {
		stopDebug, err := serveDebug(cfg.DebugAddr, log)
		if err != nil {
			return err
		}
		defer stopDebug()
	}

	errc := make(chan error, 1)
	go func() {
		if tlsOn {
			errc <- srv.ServeTLS(ln, "", "") // certificates come from TLSConfig.GetCertificate
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight")
	stopBG()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopped")
	return nil
}

// requestTimeout is a request's deadline: its statements' timeout plus a
// margin for the rest of its work (hashing waits at most hashWait), so that
// a request that waits for a connection of a pool whose statements are all
// stuck answers 503 at about the time a stuck statement would. Without a
// statement timeout there is no deadline either.
func requestTimeout(statement time.Duration) time.Duration {
	if statement <= 0 {
		return 0
	}
	return statement + hashWait
}

// purge deletes expired rows and audit events past retention in bounded
// batches, every purgeInterval, until ctx ends.
func purge(ctx context.Context, log *slog.Logger, st *store.Store, retention time.Duration) {
	t := time.NewTicker(purgeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// One instance at a time purges (an advisory lock), batch by batch,
		// each batch its own short transaction.
		now := timeNow()
		for ctx.Err() == nil {
			n, ran, err := st.PurgeExclusive(ctx, now, now.Add(-retention), purgeBatch)
			if err != nil {
				if ctx.Err() == nil {
					log.Error("purge expired rows", "err", err)
				}
				break
			}
			if !ran || n < purgeBatch {
				break
			}
		}
	}
}
