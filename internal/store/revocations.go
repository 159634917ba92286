package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acme/accounts/internal/auth"
)

// revocationChannel is the NOTIFY channel of announce_revocation
// (migrations/000006).
const revocationChannel = "accounts_revocations"

const revocationSnapshot = `SELECT kind::text, id, at FROM revocation_snapshot($1, $2)`

// RevocationSnapshot returns every revocation that can still matter at now
// for access tokens that live at most window.
func (s *Store) RevocationSnapshot(ctx context.Context, now time.Time, window time.Duration) (auth.Snapshot, error) {
	rows, _ := s.pool.Query(ctx, revocationSnapshot, now, window)
	var snap auth.Snapshot
	var kind, id string
	var at time.Time
	_, err := pgx.ForEachRow(rows, []any{&kind, &id, &at}, func() error {
		k, ok := revocationKinds[kind]
		if !ok {
			return fmt.Errorf("unknown revocation kind %q", kind)
		}
		snap = append(snap, auth.Revocation{Kind: k, ID: id, At: at})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: revocation snapshot: %w", err)
	}
	return snap, nil
}

// ListenOn makes ListenRevocations connect to url (LISTEN_DATABASE_URL)
// instead of the pool's database URL, for example to bypass PgBouncer.
func (s *Store) ListenOn(url string) { s.listenURL = url }

// ListenRevocations holds one connection of its own (LISTEN needs session
// state, which a transaction-pooling PgBouncer does not keep), listens, and
// passes every revocation to on until ctx ends or the connection fails.
func (s *Store) ListenRevocations(ctx context.Context, ready func(), on func(auth.Revocation)) error {
	return s.listen(ctx, "accounts-listener", revocationChannel, ready, func(payload string) {
		if v, ok := parseRevocation(payload); ok {
			on(v)
		}
	})
}

// listen connects on its own (to LISTEN_DATABASE_URL when set), listens on
// channel, calls ready, and passes every payload to on until ctx ends or
// the connection fails.
func (s *Store) listen(ctx context.Context, application, channel string, ready func(), on func(payload string)) error {
	var cfg *pgx.ConnConfig
	if s.listenURL != "" {
		c, err := pgx.ParseConfig(s.listenURL)
		if err != nil {
			return fmt.Errorf("store: LISTEN_DATABASE_URL: %w", redactErr(err))
		}
		cfg = c
	} else {
		cfg = s.pool.Config().ConnConfig.Copy()
	}
	cfg.RuntimeParams["application_name"] = application
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("store: listen: %w", err)
	}
	defer func() {
		// A stalled connection must not hold the listener up: Close
		// tries to say goodbye to the server, so it gets a deadline.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return fmt.Errorf("store: listen: %w", err)
	}
	ready()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("store: listen: %w", err)
		}
		on(n.Payload)
	}
}

const sendHeartbeat = `SELECT announce_revocation('h', $1, NULL)`

// SendHeartbeat announces a heartbeat with nonce on the revocation channel,
// through the pool: it comes back on every instance's listener.
func (s *Store) SendHeartbeat(ctx context.Context, nonce string) error {
	if _, err := s.pool.Exec(ctx, sendHeartbeat, nonce); err != nil {
		return fmt.Errorf("store: send heartbeat: %w", err)
	}
	return nil
}

// parseRevocation reads a NOTIFY payload: "kind|id|unix seconds", or
// "kind|id" for the kinds that carry no time (r, h).
func parseRevocation(p string) (auth.Revocation, bool) {
	label, rest, ok := strings.Cut(p, "|")
	kind, known := revocationKinds[label]
	if !ok || !known || rest == "" {
		return auth.Revocation{}, false
	}
	v := auth.Revocation{Kind: kind, ID: rest}
	if kind == auth.UserChanged || kind == auth.Heartbeat {
		return v, true
	}
	i := strings.LastIndexByte(rest, '|')
	if i < 0 {
		return auth.Revocation{}, false
	}
	sec, err := strconv.ParseInt(rest[i+1:], 10, 64)
	if err != nil {
		return auth.Revocation{}, false
	}
	v.ID, v.At = rest[:i], time.Unix(sec, 0)
	return v, true
}
