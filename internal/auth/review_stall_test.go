package auth_test

import (
	"bytes"
	"context"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/store"
	"github.com/acme/accounts/internal/testdb"
)

// partition forwards TCP to a PostgreSQL server and, on the connection
// whose client sends a message containing marker, lets that message (up to
// its Sync) and the server's answer through, then drops everything the
// client sends afterwards without closing anything: a network partition
// that starts right after one statement of a transaction.
type partition struct {
	ln     net.Listener
	target string
	marker []byte
	mu     sync.Mutex
	conns  []net.Conn
}

func newPartition(t *testing.T, databaseURL, marker string) (*partition, string) {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &partition{ln: ln, target: u.Host, marker: []byte(marker)}
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	u.Host = ln.Addr().String()
	return p, u.String()
}

func (p *partition) accept() {
	for {
		a, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			a.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, a, b)
		p.mu.Unlock()
		go func() { // server to client: always flows
			buf := make([]byte, 32<<10)
			for {
				n, err := b.Read(buf)
				if n > 0 {
					if _, werr := a.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		go func() { // client to server: cut after the marked statement
			buf := make([]byte, 32<<10)
			seen, cut := false, false
			for {
				n, err := a.Read(buf)
				if err != nil {
					return // partitioned: the server never hears of the close either
				}
				if cut {
					continue
				}
				chunk := buf[:n]
				if bytes.Contains(chunk, p.marker) {
					seen = true
				}
				if _, werr := b.Write(chunk); werr != nil {
					return
				}
				if seen && bytes.HasSuffix(chunk, []byte{'S', 0, 0, 0, 4}) {
					cut = true
				}
			}
		}()
	}
}

// R9. CreateSession, ChangePassword and LogoutUser are multi-statement
// transactions that hold the user's row lock (and, for the last two, the
// rows of every session) across round trips. The pool sets
// statement_timeout but not idle_in_transaction_session_timeout, so an
// instance partitioned from the database right after CreateSession's
// lockUser leaves a backend "idle in transaction" holding the user's lock
// until TCP keepalive notices (hours by default): every login, password
// change and logout-all of that user on every other instance fails with a
// statement timeout meanwhile.
func TestPartitionMidTransactionReleasesTheUser(t *testing.T) {
	t.Parallel()
	dbURL := testdb.URL(t)
	clock := testdb.NewClock()
	// The healthy instance waits longer than the cut one's timeouts (1 s):
	// its requests queue behind the stuck lock until that is released.
	healthyPool, err := store.Open(ctx, dbURL, store.PoolOptions{StatementTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(healthyPool.Close)
	healthy := testdb.NewKit(t, testdb.KitOptions{Pool: healthyPool, Clock: clock, NoRevocations: true})
	_, a := signupLogin(t, healthy, "partitioned@example.com")
	pa := wantTokenLive(t, healthy, a.AccessToken)

	_, viaURL := newPartition(t, dbURL, "FOR NO KEY UPDATE")
	// DATABASE_STATEMENT_CACHE=off (one message batch per statement), as
	// documented for PgBouncer; a 1 s statement_timeout stands in for 5 s.
	cutPool, err := store.Open(ctx, viaURL, store.PoolOptions{StatementCache: "off", StatementTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cutPool.Close)
	cut := testdb.NewKit(t, testdb.KitOptions{Pool: cutPool, Clock: clock, NoRevocations: true})
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _, _ = cut.Service.Login(lctx, "partitioned@example.com", pw, auth.Client{}) }()

	// The cut instance's backend holds the user's row, idle in transaction.
	var pid int
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := healthyPool.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()
			AND state = 'idle in transaction' AND query LIKE '%FOR NO KEY UPDATE%'`).Scan(&pid)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the partitioned login never reached its lock")
		}
		time.Sleep(time.Millisecond) // polling the server's state
	}
	t.Cleanup(func() { _, _ = healthyPool.Exec(context.Background(), `SELECT pg_terminate_backend($1)`, pid) })
	cancel() // the cut instance gives up on its side; the server never hears of it

	// Three statement timeouts later, the user is still locked out everywhere.
	var failures []string
	if err := healthy.Service.LogoutAll(ctx, pa, auth.Client{}); err != nil {
		failures = append(failures, "logout-all: "+err.Error())
	}
	if _, err := healthy.Service.Login(ctx, "partitioned@example.com", pw, auth.Client{}); err != nil {
		failures = append(failures, "login: "+err.Error())
	}
	if err := healthy.Service.ChangePassword(ctx, pa, pw, "a brand new passphrase", auth.Client{}); err != nil {
		failures = append(failures, "password change: "+err.Error())
	}
	var state string
	var idle float64
	_ = healthyPool.QueryRow(ctx, `SELECT state, extract(epoch FROM now() - state_change) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&state, &idle)
	for _, f := range failures {
		t.Errorf("%s", f)
	}
	if len(failures) > 0 {
		t.Logf("the partitioned backend is still %q after %.1f s, holding the user's row", state, idle)
	}
}

// stalledKeys answers SigningKeys normally until stall is set, then hangs
// until the caller's context ends: a database that stopped answering.
type stalledKeys struct {
	auth.KeyStore
	mu    sync.Mutex
	stall bool
	calls int
}

func (s *stalledKeys) SigningKeys(ctx context.Context, alg string, after time.Time) ([]auth.StoredKey, error) {
	s.mu.Lock()
	stall := s.stall
	s.calls++
	s.mu.Unlock()
	if stall {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.KeyStore.SigningKeys(ctx, alg, after)
}

// R10. The unknown-kid reload runs on a detached context (5 s timeout)
// while holding reloadMu, and every request with an unknown kid waits for
// reloadMu without looking at its own context. With the database stalled,
// each waiter then runs its own 5 s reload (lastTry is > 100 ms old): junk
// kids form a convoy in which the n-th request is held about n × 5 s, even
// when its client left at once, and the goroutines pile up.
func TestKeyReloadWhileTheDatabaseStallsFormsNoConvoy(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{NoRevocations: true})
	ks := &stalledKeys{KeyStore: k.Store}
	ring, err := auth.NewKeyRing(ctx, auth.KeyConfig{Alg: auth.AlgEdDSA, Retention: time.Hour}, ks, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	verifier := auth.NewTokens(ring, testdb.Issuer, testdb.Audience, 15*time.Minute, 0, time.Now)
	junk := testdb.CraftJWT(t, testdb.Header("junk-kid", nil), testdb.Claims(
		"7c1f7a0e-8f0e-4d53-9a57-3f4f5c0d2b11", "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed", time.Now(), nil), nil)
	ks.mu.Lock()
	ks.stall = true
	ks.mu.Unlock()
	first := make(chan struct{})
	go func() { _, _ = verifier.Verify(ctx, junk); close(first) }()
	for { // the first request's reload is in the stalled database
		ks.mu.Lock()
		n := ks.calls
		ks.mu.Unlock()
		if n >= 2 {
			break
		}
		time.Sleep(time.Millisecond) // polling the fake's state
	}
	gone, cancel := context.WithCancel(ctx)
	cancel() // this client has already hung up
	start := time.Now()
	_, _ = verifier.Verify(gone, junk)
	held := time.Since(start)
	<-first
	if held > time.Second {
		t.Errorf("a request whose client had left was held %.1f s behind the stalled reloads", held.Seconds())
	}
}
