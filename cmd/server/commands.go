package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/store"
)

// setup loads the configuration, the logger and the database pool that
// every command needs.
func setup(ctx context.Context, getenv func(string) string, stderr io.Writer) (Config, *slog.Logger, *pgxpool.Pool, error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return cfg, nil, nil, fmt.Errorf("configuration:\n%w", err)
	}
	if err := cfg.requireDatabase(); err != nil {
		return cfg, nil, nil, fmt.Errorf("configuration:\n%w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	pool, err := store.Open(ctx, cfg.DatabaseURL, store.PoolOptions{MaxConns: int32(cfg.MaxConns),
		StatementCache: cfg.StatementCache, StatementTimeout: cfg.StatementTimeout})
	if err != nil {
		return cfg, log, nil, fmt.Errorf("%w (DATABASE_URL=%s)", err, redactURL(cfg.DatabaseURL))
	}
	return cfg, log, pool, nil
}

func cmdMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const synopsis = "server migrate up|down|version|force VERSION"
	want := 1
	if len(args) > 0 && args[0] == "force" {
		want = 2
	}
	rest, err := parseFlags("migrate", synopsis, args, want, stderr)
	if err != nil {
		return err
	}
	action := rest[0]
	var force int
	switch action {
	case "up", "down", "version":
	case "force":
		v, err := strconv.Atoi(rest[1])
		if err != nil || v < -1 {
			return usageError(stderr, synopsis, "VERSION must be a migration number (or -1 for none), not %q", rest[1])
		}
		force = v
	default:
		return usageError(stderr, synopsis, "migrate takes up, down, version or force VERSION, not %q", action)
	}
	_, _, pool, err := setup(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := store.Migrator(pool)
	if err != nil {
		return err
	}
	defer m.Close()
	switch action {
	case "up":
		err = store.Up(m)
	case "down":
		err = m.Down()
	case "force":
		err = m.Force(force)
	}
	if err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate %s: %w", action, err)
	}
	v, dirty, err := m.Version()
	switch {
	case errors.Is(err, migrate.ErrNilVersion):
		fmt.Fprintln(stdout, "version: none (no migration applied)")
	case err != nil:
		return fmt.Errorf("migrate version: %w", err)
	default:
		fmt.Fprintf(stdout, "version: %d%s\n", v, map[bool]string{true: " (dirty)"}[dirty])
	}
	return nil
}

func cmdKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const synopsis = "server keys rotate|reseal"
	rest, err := parseFlags("keys", synopsis, args, 1, stderr)
	if err != nil {
		return err
	}
	if rest[0] != "rotate" && rest[0] != "reseal" {
		return usageError(stderr, synopsis, "keys takes rotate or reseal, not %q", rest[0])
	}
	cfg, log, pool, err := setup(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool)
	if rest[0] == "reseal" {
		if cfg.KEK == nil {
			return errors.New("keys reseal: set KEY_ENCRYPTION_KEY to the key to seal with (and OLD_KEY_ENCRYPTION_KEY to the one the keys are sealed with now, if any)")
		}
		n, secrets := 0, 0
		err := st.ResealKeys(ctx, func(keys []auth.StoredKey) ([]auth.StoredKey, error) {
			for _, k := range keys {
				if k.Alg == auth.AlgSecret {
					secrets++
				} else {
					n++
				}
			}
			return auth.Reseal(keys, cfg.OldKEK, cfg.KEK)
		})
		if err != nil {
			return err
		}
		_ = st.RecordEvent(ctx, auth.Event{Type: auth.EventKeysResealed, At: timeNow(), Detail: map[string]any{"keys": n, "secrets": secrets}})
		fmt.Fprintf(stdout, "%d signing key(s) and %d secret(s) (the email key) now sealed with KEY_ENCRYPTION_KEY\n", n, secrets)
		return nil
	}
	warnUnsealedKeys(cfg, log)
	ring, err := auth.NewKeyRing(ctx, serviceOptions(cfg, log).KeyConfig(), st, timeNow)
	if err != nil {
		return err
	}
	kid, err := ring.Rotate(ctx)
	if err != nil {
		return err
	}
	_ = st.RecordEvent(ctx, auth.Event{Type: auth.EventKeyRotated, At: timeNow(), Detail: map[string]any{"kid": kid, "alg": cfg.JWTAlg}})
	fmt.Fprintf(stdout, "new signing key %s (%s) signs from now on; older keys verify until their tokens expire\n", kid, cfg.JWTAlg)
	return nil
}

func cmdUsers(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	rest, err := parseFlags("users", "server users set-role EMAIL ROLE", args, 3, stderr)
	if err != nil {
		return err
	}
	if rest[0] != "set-role" {
		return usageError(stderr, "server users set-role EMAIL ROLE", "users takes set-role, not %q", rest[0])
	}
	email, role := rest[1], rest[2]
	if !auth.ValidRole(role) {
		return usageError(stderr, "server users set-role EMAIL ROLE", "ROLE must be user or admin, not %q", role)
	}
	svc, done, err := openService(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer done()
	u, err := svc.SetRole(ctx, email, role, auth.Client{})
	if errors.Is(err, auth.ErrNotFound) {
		return fmt.Errorf("no user with email %q", email)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s is now %s (admin routes see it at once; the role claim at their next login or refresh)\n", u.Email, u.Role)
	return nil
}

// serviceOptions is the one translation of the configuration into the
// service's options, for every command.
func serviceOptions(cfg Config, log *slog.Logger) auth.Options {
	return auth.Options{
		Config: auth.Config{
			AccessTTL: cfg.AccessTTL, RefreshTTL: cfg.RefreshTTL, SessionMaxAge: cfg.SessionMaxAge,
			ReuseGrace: cfg.ReuseGrace, PasswordMinLength: cfg.PasswordMinLength, Argon2: cfg.Argon2,
			HashSlots: hashSlots(cfg.Argon2), HashWait: hashWait,
			LoginLimit: cfg.LoginRateLimit, IPLimit: cfg.IPRateLimit, GlobalLimit: cfg.GlobalRateLimit,
			MaxSessions: cfg.MaxSessions, LegacyRefreshTokens: cfg.LegacyRefreshTokens,
			Email: auth.EmailConfig{Verification: cfg.EmailVerification, LinkBase: cfg.EmailLinkBase, From: cfg.MailFrom},
		},
		Keys:   auth.KeyConfig{Alg: cfg.JWTAlg, HMACSecret: cfg.JWTSecret, KEK: cfg.KEK},
		Issuer: cfg.Issuer, Audience: cfg.Audience, Leeway: cfg.Leeway,
		Log: log, Now: timeNow,
	}
}

func warnUnsealedKeys(cfg Config, log *slog.Logger) {
	if cfg.JWTAlg != auth.AlgHS256 && cfg.KEK == nil {
		log.Warn("KEY_ENCRYPTION_KEY is not set: private signing keys are stored unencrypted in the database")
	}
}

const clientsSynopsis = "server clients add ID --public|--confidential | server clients list | server clients remove ID"

// cmdClients manages the OAuth clients. The flags of add may come before
// or after the id.
func cmdClients(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var pos []string
	kind := ""
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			fmt.Fprintf(stderr, "Usage: %s\n", clientsSynopsis)
			return flag.ErrHelp
		case "--public", "-public", "--confidential", "-confidential":
			if kind != "" {
				return usageError(stderr, clientsSynopsis, "give one of --public and --confidential")
			}
			kind = strings.TrimLeft(a, "-")
		default:
			if strings.HasPrefix(a, "-") {
				return usageError(stderr, clientsSynopsis, "unknown flag %q", a)
			}
			pos = append(pos, a)
		}
	}
	if len(pos) == 0 {
		return usageError(stderr, clientsSynopsis, "clients takes add, list or remove")
	}
	switch {
	case pos[0] == "add" && (len(pos) != 2 || kind == ""):
		return usageError(stderr, clientsSynopsis, "clients add takes an ID and --public or --confidential")
	case pos[0] == "remove" && (len(pos) != 2 || kind != ""):
		return usageError(stderr, clientsSynopsis, "clients remove takes an ID")
	case pos[0] == "list" && (len(pos) != 1 || kind != ""):
		return usageError(stderr, clientsSynopsis, "clients list takes no argument")
	case pos[0] != "add" && pos[0] != "remove" && pos[0] != "list":
		return usageError(stderr, clientsSynopsis, "clients takes add, list or remove, not %q", pos[0])
	}
	if pos[0] == "add" && !auth.ValidClientID(pos[1]) {
		return usageError(stderr, clientsSynopsis, "ID must be 1-64 letters, digits, '.', '_', '~' or '-', starting with a letter or digit")
	}
	svc, done, err := openService(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer done()
	switch pos[0] {
	case "add":
		cl, secret, err := svc.AddClient(ctx, pos[1], kind == "confidential")
		if errors.Is(err, auth.ErrClientExists) {
			return fmt.Errorf("a client %q exists already", pos[1])
		}
		if err != nil {
			return err
		}
		if !cl.Confidential {
			fmt.Fprintf(stdout, "public client %s added (it identifies itself with client_id=%s)\n", cl.ID, cl.ID)
			return nil
		}
		fmt.Fprintf(stdout, "confidential client %s added; its secret, shown this once (only its hash is kept):\n%s\n", cl.ID, secret)
	case "remove":
		err := svc.RemoveClient(ctx, pos[1])
		switch {
		case errors.Is(err, auth.ErrForbidden):
			return fmt.Errorf("the built-in client %q cannot be removed", auth.ClientAccounts)
		case errors.Is(err, auth.ErrNotFound):
			return fmt.Errorf("no client %q", pos[1])
		case err != nil:
			return err
		}
		fmt.Fprintf(stdout, "client %s removed; its sessions ended\n", pos[1])
	case "list":
		cls, err := svc.ListClients(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTYPE\tCREATED")
		for _, c := range cls {
			typ := "public"
			if c.Confidential {
				typ = "confidential"
			}
			if c.ID == auth.ClientAccounts {
				typ += " (built in)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", c.ID, typ, c.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	}
	return nil
}

// openService connects and builds the service for a one-shot command;
// done closes the connections.
func openService(ctx context.Context, getenv func(string) string, stderr io.Writer) (*auth.Service, func(), error) {
	cfg, log, pool, err := setup(ctx, getenv, stderr)
	if err != nil {
		return nil, nil, err
	}
	svc, err := auth.New(ctx, store.New(pool), serviceOptions(cfg, log))
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return svc, pool.Close, nil
}
