package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acme/accounts/internal/testdb"
	"github.com/acme/accounts/migrations"
)

// The fault tests (issue 13): the real server against a database that
// restarts, stalls, refuses writes or loses a connection. Each bound on
// time comes from an interval the test sets (statement timeout, grace) or
// from the server's own (a 1 s heartbeat), with generous margins; nothing
// waits on a guess. With FAULT_REPORT set to a directory, each test writes
// what it observed there as Markdown (make chaos collects it in RELIABILITY.md).

// answer is one HTTP exchange as a client saw it.
type answer struct {
	status int
	header http.Header
	body   map[string]any
	err    error // a transport error: no answer at all
	took   time.Duration
}

func (a answer) key() string {
	if a.err != nil {
		return "no answer"
	}
	return fmt.Sprint(a.status)
}

func send(c *http.Client, method, url, token string, body any) answer {
	req := jsonRequest(method, url, token, body)
	start := time.Now()
	res, err := c.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return answer{status: res.StatusCode, header: res.Header, body: out, took: time.Since(start)}
}

// faultClient checks every answer against api/openapi.yaml and gives up
// after 20 s: far past any request deadline the tests set, so that a hang
// is seen as one.
func faultClient(t *testing.T, base string) *http.Client {
	c := *checkedClient(t, base)
	c.Timeout = 20 * time.Second
	return &c
}

// tally counts answers by status, and the slowest.
type tally struct {
	mu      sync.Mutex
	counts  map[string]int
	slowest time.Duration
}

func (t *tally) add(a answer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.counts == nil {
		t.counts = map[string]int{}
	}
	t.counts[a.key()]++
	t.slowest = max(t.slowest, a.took)
}

func (t *tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([]string, 0, len(t.counts))
	for k := range t.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, t.counts[k]))
	}
	return strings.Join(parts, ", ")
}

func (t *tally) count(k string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts[k]
}

// want503 checks that a is the contract's 503: Retry-After, the error code
// and a description.
func want503(t *testing.T, what string, a answer) {
	t.Helper()
	if a.err != nil || a.status != 503 || a.header.Get("Retry-After") == "" || a.body["error"] != "service_unavailable" ||
		a.body["error_description"] == "" {
		t.Errorf("%s: %d %v %v (Retry-After %q), want 503 service_unavailable with Retry-After", what, a.status, a.body,
			a.err, a.header.Get("Retry-After"))
	}
}

// report writes a section to a file in the directory FAULT_REPORT when
// the test ends (held or not, as the test's verdict says), named so that
// the sections sort by title, then by time.
func report(t *testing.T, title string, lines func() []string) {
	dir := os.Getenv("FAULT_REPORT")
	if dir == "" {
		return
	}
	path := filepath.Join(dir, fmt.Sprintf("%s %d.md", strings.NewReplacer("/", " ", "`", "").Replace(title), time.Now().UnixNano()))
	t.Cleanup(func() {
		verdict := "held"
		if t.Failed() {
			verdict = "**FAILED**"
		}
		var b strings.Builder
		fmt.Fprintf(&b, "### %s: %s\n\n`%s`\n\n", title, verdict, t.Name())
		for _, l := range lines() {
			fmt.Fprintf(&b, "- %s\n", l)
		}
		b.WriteString("\n")
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Errorf("FAULT_REPORT: %v", err)
		}
	})
}

// chain is one client's refresh chain: it always presents its newest
// token, and after a 5xx or no answer presents the same one again (the
// client's retry). Every successor seen per token is kept: a token that
// ever got two different successors is a forked chain.
type chain struct {
	at, rt     string
	successors map[string]string
	forks      []string
	lost       []string // answers that ended the chain
}

func newChain(at, rt string) *chain { return &chain{at: at, rt: rt, successors: map[string]string{}} }

func (c *chain) refresh(cl *http.Client, base string) answer {
	presented := c.rt
	a := send(cl, "POST", base+"/v1/token/refresh", "", map[string]string{"refresh_token": presented})
	switch {
	case a.err == nil && a.status == 200:
		next, _ := a.body["refresh_token"].(string)
		if prev, ok := c.successors[presented]; ok && prev != next {
			c.forks = append(c.forks, "a token got two successors")
		}
		c.successors[presented] = next
		c.rt, c.at = next, a.body["access_token"].(string)
	case a.err == nil && a.status < 500:
		c.lost = append(c.lost, fmt.Sprintf("%d %v", a.status, a.body))
	}
	return a
}

func loginChain(t *testing.T, base, email string) *chain {
	t.Helper()
	creds := map[string]string{"email": email, "password": "correct horse battery"}
	if st, body := call(t, "POST", base+"/v1/signup", "", creds); st != 201 {
		t.Fatalf("signup %s: %d %v", email, st, body)
	}
	st, tok := call(t, "POST", base+"/v1/login", "", creds)
	if st != 200 {
		t.Fatalf("login %s: %d %v", email, st, tok)
	}
	return newChain(tok["access_token"].(string), tok["refresh_token"].(string))
}

// pollStatus polls path until it answers want (within limit); it returns
// how long that took.
func pollStatus(t *testing.T, base, path string, want int, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		res, err := http.Get(base + path)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == want {
				return time.Since(start)
			}
		}
		if time.Since(start) > limit {
			t.Fatalf("%s did not answer %d within %s", path, want, limit)
		}
		time.Sleep(10 * time.Millisecond) // polling a state
	}
}

// TestFaultRestart: PostgreSQL stopped and started, then restarted with
// `pg_ctl restart -m fast`, under mixed load (refresh chains, token checks,
// logins) on a private cluster. Points 1 and 2 of issue 13.
func TestFaultRestart(t *testing.T) {
	t.Parallel()
	cl := testdb.NewCluster(t)
	dbURL := cl.CreateDatabase(t, "accounts")
	vars := map[string]string{"DATABASE_URL": dbURL, "ADDR": "127.0.0.1:0", "IP_RATE_LIMIT": "0",
		"DATABASE_STATEMENT_TIMEOUT": "2s"}
	const requestDeadline = 3 * time.Second // the statement timeout plus hashWait
	base := startServer(t, vars)
	shortVars := map[string]string{}
	for k, v := range vars {
		shortVars[k] = v
	}
	shortVars["REFRESH_REUSE_GRACE"] = "1s"
	short := startServer(t, shortVars) // the same database, a grace window shorter than the outage
	c := faultClient(t, base)

	const workers = 6
	chains := make([]*chain, workers)
	for i := range chains {
		chains[i] = loginChain(t, base, fmt.Sprintf("load%d@example.com", i))
	}
	var all, outage tally
	var inOutage atomic.Bool
	var rounds [workers]atomic.Int64
	var bad []string
	var badMu sync.Mutex
	quit := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { // before the servers stop, however the test ends
		select {
		case <-quit:
		default:
			close(quit)
		}
		wg.Wait()
	})
	for i, ch := range chains {
		wg.Go(func() {
			email := fmt.Sprintf("load%d@example.com", i)
			for n := 0; ; n++ {
				select {
				case <-quit:
					return
				default:
				}
				var a answer
				switch {
				case n%3 == 0:
					a = ch.refresh(c, base)
					if a.err == nil && a.status == 200 {
						rounds[i].Add(1)
					}
				case n%10 == 1:
					a = send(c, "POST", base+"/v1/login", "", map[string]string{"email": email, "password": "correct horse battery"})
				default:
					a = send(c, "GET", base+"/v1/me", ch.at, nil)
				}
				all.add(a)
				if inOutage.Load() {
					outage.add(a)
				}
				if a.err != nil || a.status == 500 || a.took > requestDeadline+3*time.Second ||
					(a.status == 503 && a.header.Get("Retry-After") == "") || (a.status != 200 && a.status != 503) {
					badMu.Lock()
					bad = append(bad, fmt.Sprintf("%s after %s: %v %v", a.key(), a.took, a.body, a.err))
					badMu.Unlock()
				}
				if a.status == 503 {
					time.Sleep(20 * time.Millisecond) // a client's back-off, not a synchronisation
				}
			}
		})
	}
	warm := func(min int64) {
		waitFor(t, func() bool {
			for i := range rounds {
				if rounds[i].Load() < min {
					return false
				}
			}
			return true
		})
	}
	warm(3)

	// Two clients whose last refresh's answer was lost (a dropped
	// connection): they hold only the token they spent.
	lostA := loginChain(t, base, "lost-a@example.com")
	spentA := lostA.rt
	if a := lostA.refresh(c, base); a.status != 200 {
		t.Fatalf("refresh before the outage: %d", a.status)
	}
	rotatedA, successorA := time.Now(), lostA.rt
	lostB := loginChain(t, short, "lost-b@example.com")
	spentB := lostB.rt
	if a := lostB.refresh(c, short); a.status != 200 {
		t.Fatalf("refresh before the outage: %d", a.status)
	}
	rotatedB, successorB := time.Now(), lostB.rt

	// Phase 1: the database is stopped (an outage we can look at), then started.
	inOutage.Store(true)
	stopAt := time.Now()
	cl.Stop(t)
	readyDown := pollStatus(t, base, "/readyz", 503, 10*time.Second)
	waitFor(t, func() bool { return metric(t, base, "accounts_revocations_synced") == 0 })
	refreshDown := send(c, "POST", base+"/v1/token/refresh", "", map[string]string{"refresh_token": spentA})
	want503(t, "refresh while the database is down", refreshDown)
	meDown := send(c, "GET", base+"/v1/me", chains[0].at, nil)
	want503(t, "a token check while the database is down (checked against the database, which is down)", meDown)
	readyz := send(c, "GET", base+"/readyz", "", nil)
	want503(t, "/readyz while the database is down", readyz)
	for _, a := range []answer{refreshDown, meDown, readyz} {
		if a.took > requestDeadline+2*time.Second {
			t.Errorf("an answer during the outage took %s, past the request deadline %s", a.took, requestDeadline)
		}
	}
	// The shorter grace window (1 s) passes during the outage.
	for time.Since(rotatedB) < 1500*time.Millisecond {
		time.Sleep(10 * time.Millisecond) // waiting for a clock to pass a point, not for an event
	}
	cl.Start(t)
	startedAt := time.Now()
	recovery := pollStatus(t, base, "/readyz", 200, 30*time.Second)
	outageLen := time.Since(stopAt)
	waitFor(t, func() bool { return metric(t, base, "accounts_revocations_synced") == 1 })
	resynced := time.Since(startedAt)
	inOutage.Store(false)

	// Within the grace window the client that lost its answer retries the
	// token it spent and gets the same successor: its session lives on.
	var lostAResult, lostBResult string
	if since := time.Since(rotatedA); since < 9*time.Second {
		a := send(c, "POST", base+"/v1/token/refresh", "", map[string]string{"refresh_token": spentA})
		if a.status != 200 || a.body["refresh_token"] != successorA {
			t.Errorf("retry of the spent token %s after the rotation (grace 10 s): %d %v, want 200 and the same successor", since, a.status, a.body)
		}
		lostAResult = fmt.Sprintf("retried %s after its rotation: %d, the same successor", since.Round(100*time.Millisecond), a.status)
	} else {
		lostAResult = fmt.Sprintf("not checked: the outage lasted %s, past the 10 s grace window", since)
		t.Log(lostAResult)
	}
	// Past the grace window, the spent token is a reuse: the session ends
	// (both tokens refused) and the client logs in again.
	a := send(c, "POST", short+"/v1/token/refresh", "", map[string]string{"refresh_token": spentB})
	b := send(c, "POST", short+"/v1/token/refresh", "", map[string]string{"refresh_token": successorB})
	if a.status != 401 || a.body["error"] != "invalid_grant" || b.status != 401 {
		t.Errorf("spent token past the grace window: %d %v, its successor %d %v; want 401 invalid_grant for both", a.status, a.body, b.status, b.body)
	}
	lostBResult = fmt.Sprintf("retried %s after its rotation (grace 1 s): %d %v; the successor it never received: %d",
		time.Since(rotatedB).Round(100*time.Millisecond), a.status, a.body["error"], b.status)

	// Phase 2: pg_ctl restart -m fast under the load.
	before := make([]int64, workers)
	for i := range rounds {
		before[i] = rounds[i].Load()
	}
	restartAt := time.Now()
	cl.Restart(t)
	restartTook := time.Since(restartAt)
	recovery2 := pollStatus(t, base, "/readyz", 200, 30*time.Second)
	waitFor(t, func() bool { return metric(t, base, "accounts_revocations_synced") == 1 })
	waitFor(t, func() bool {
		for i := range rounds {
			if rounds[i].Load() < before[i]+3 {
				return false
			}
		}
		return true
	})
	close(quit)
	wg.Wait()

	for _, ch := range chains {
		if len(ch.forks) > 0 || len(ch.lost) > 0 {
			t.Errorf("a chain forked (%v) or ended (%v)", ch.forks, ch.lost)
		}
		if a := ch.refresh(c, base); a.status != 200 {
			t.Errorf("a chain does not refresh after the outages: %d %v", a.status, a.body)
		}
	}
	for _, s := range bad {
		t.Errorf("answer out of contract: %s", s)
	}
	if all.count("500") > 0 || all.count("no answer") > 0 {
		t.Errorf("answers: %s", &all)
	}
	if outage.count("503") == 0 {
		t.Errorf("no 503 seen during the outage: %s", &outage)
	}
	report(t, "1–2. PostgreSQL stopped, started and restarted under mixed load", func() []string {
		return []string{
			fmt.Sprintf("load: %d clients, each a refresh chain, token checks (`/v1/me`) and logins; statement timeout 2 s (request deadline 3 s)", workers),
			fmt.Sprintf("all answers: %s; slowest %s", &all, all.slowest.Round(time.Millisecond)),
			fmt.Sprintf("answers during the stopped outage (%s from stop to ready): %s; slowest %s", outageLen.Round(10*time.Millisecond), &outage, outage.slowest.Round(time.Millisecond)),
			fmt.Sprintf("`/readyz` 503 within %s of the stop; 200 %s after the start; listener resynced %s after the start", readyDown.Round(time.Millisecond), recovery.Round(time.Millisecond), resynced.Round(time.Millisecond)),
			fmt.Sprintf("during the outage: refresh %d (%v) in %s, token check %d in %s (tokens checked against the database while the listener is down)", refreshDown.status, refreshDown.body["error_description"], refreshDown.took.Round(time.Millisecond), meDown.status, meDown.took.Round(time.Millisecond)),
			fmt.Sprintf("`pg_ctl restart -m fast` took %s; `/readyz` 200 %s after it returned", restartTook.Round(time.Millisecond), recovery2.Round(time.Millisecond)),
			"chains: none forked (no token got two successors), none ended; each refreshes after the outages",
			"client whose answer was lost, default grace (10 s): " + lostAResult,
			"client whose answer was lost, outage longer than its grace (1 s): " + lostBResult + ": it must log in again",
		}
	})
}

// TestFaultKilledRotation kills the rotating backend at the worst moment:
// inside the rotation function, blocked on the session's row lock held from
// another connection. Point 3.
func TestFaultKilledRotation(t *testing.T) {
	t.Parallel()
	dbURL := testdb.URL(t)
	// A long statement timeout: the rotation must still be waiting when it is killed.
	base := startServer(t, map[string]string{"DATABASE_URL": dbURL, "ADDR": "127.0.0.1:0", "IP_RATE_LIMIT": "0",
		"DATABASE_STATEMENT_TIMEOUT": "60s"})
	c := faultClient(t, base)
	ch := loginChain(t, base, "killed@example.com")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	watch := watcher(t, dbURL) // pg_stat_activity is read once per transaction: watch from outside it
	var sid string
	var hashBefore []byte
	if err := conn.QueryRow(ctx, `SELECT id::text, rt_hash FROM sessions`).Scan(&sid, &hashBefore); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE`, sid); err != nil {
		t.Fatal(err)
	}
	spent := ch.rt
	done := make(chan answer, 1)
	go func() {
		done <- send(c, "POST", base+"/v1/token/refresh", "", map[string]string{"refresh_token": spent})
	}()
	var pid int
	waitFor(t, func() bool {
		err := watch.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%rotate_session_token%'`).Scan(&pid)
		return err == nil
	})
	var killed bool
	if err := watch.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend: %v %v", killed, err)
	}
	a := <-done
	want503(t, "the refresh whose backend was killed", a)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	var hashAfter []byte
	if err := conn.QueryRow(ctx, `SELECT rt_hash FROM sessions WHERE id = $1`, sid).Scan(&hashAfter); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hashBefore, hashAfter) {
		t.Fatal("the killed rotation changed the session's token: the new one was never delivered")
	}
	// The old token is still live (the transaction rolled back), the new
	// one never existed: the client's retry works.
	retry := ch.refresh(c, base)
	if retry.status != 200 {
		t.Fatalf("retry of the old token after the killed rotation: %d %v", retry.status, retry.body)
	}
	again := send(c, "POST", base+"/v1/token/refresh", "", map[string]string{"refresh_token": spent})
	if again.status != 200 || again.body["refresh_token"] != ch.rt {
		t.Fatalf("the old token within grace: %d, want the same successor (one live token)", again.status)
	}
	next := ch.refresh(c, base)
	if next.status != 200 || len(ch.forks) > 0 {
		t.Fatalf("the successor does not refresh: %d %v", next.status, ch.forks)
	}
	report(t, "3. A connection killed in the middle of a rotation", func() []string {
		return []string{
			"the rotation blocked inside `rotate_session_token` on the session's row lock (held from another connection); its backend was ended with `pg_terminate_backend`",
			fmt.Sprintf("the client got %d `%v` (%v) in %s", a.status, a.body["error"], a.body["error_description"], a.took.Round(time.Millisecond)),
			"the session's token hash was unchanged (rolled back): the old token live, the new one never stored",
			fmt.Sprintf("the client's retry of the old token: %d; the old one again within grace: the same successor; the successor refreshes: %d", retry.status, next.status),
		}
	})
}

// TestFaultLockedTable holds an ACCESS EXCLUSIVE lock on sessions for
// longer than the statement timeout while 16 refreshes run on a pool of
// 4. Point 4.
func TestFaultLockedTable(t *testing.T) {
	t.Parallel()
	dbURL := testdb.URL(t)
	const stmt = time.Second
	base := startServer(t, map[string]string{"DATABASE_URL": dbURL, "ADDR": "127.0.0.1:0", "IP_RATE_LIMIT": "0",
		"DATABASE_STATEMENT_TIMEOUT": stmt.String(), "DATABASE_MAX_CONNS": "4"})
	c := faultClient(t, base)
	const n = 16
	chains := make([]*chain, n)
	for i := range chains {
		chains[i] = loginChain(t, base, fmt.Sprintf("locked%d@example.com", i))
	}
	if st, _ := call(t, "GET", base+"/v1/me", chains[0].at, nil); st != 200 { // the user is cached now
		t.Fatalf("me %d", st)
	}
	waitFor(t, func() bool { return metric(t, base, "accounts_revocations_synced") == 1 })
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	watch := watcher(t, dbURL)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i, ch := range chains {
		wg.Go(func() { answers[i] = ch.refresh(c, base) })
	}
	// While the pool's connections wait on the lock, token checks from
	// memory go on.
	waitFor(t, func() bool {
		var waiting int
		err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		return err == nil && waiting >= 4
	})
	var me tally
	for range 10 {
		a := send(c, "GET", base+"/v1/me", chains[0].at, nil)
		me.add(a)
		if a.status != 200 {
			t.Errorf("a token check while sessions is locked: %d %v", a.status, a.body)
		}
	}
	wg.Wait()
	var locked tally
	for i, a := range answers {
		locked.add(a)
		want503(t, fmt.Sprintf("refresh %d while sessions is locked", i), a)
		if a.took > stmt+time.Second+2*time.Second {
			t.Errorf("refresh %d answered after %s: past the statement timeout %s plus the margin", i, a.took, stmt)
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	var after tally
	for i, ch := range chains {
		a := ch.refresh(c, base)
		after.add(a)
		if a.status != 200 {
			t.Errorf("refresh %d after the lock is gone: %d %v", i, a.status, a.body)
		}
	}
	report(t, "4. A slow database: `LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE` held past the statement timeout", func() []string {
		return []string{
			fmt.Sprintf("statement timeout %s, pool of 4, %d concurrent refreshes while the lock is held", stmt, n),
			fmt.Sprintf("refreshes: %s; slowest %s (bound: the statement timeout plus 1 s of request margin)", &locked, locked.slowest.Round(time.Millisecond)),
			fmt.Sprintf("token checks from memory meanwhile: %s; slowest %s", &me, me.slowest.Round(time.Millisecond)),
			fmt.Sprintf("after the lock is gone, the same chains: %s", &after),
		}
	})
}

// TestFaultReadOnly makes the database refuse writes
// (default_transaction_read_only, on new connections: the server's are
// ended), then accept them again. Point 5.
func TestFaultReadOnly(t *testing.T) {
	t.Parallel()
	dbURL := testdb.URL(t)
	base := startServer(t, map[string]string{"DATABASE_URL": dbURL, "ADDR": "127.0.0.1:0", "IP_RATE_LIMIT": "0"})
	c := faultClient(t, base)
	ch := loginChain(t, base, "readonly@example.com")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	setReadOnly := func(on bool) {
		t.Helper()
		stmt := `ALTER DATABASE ` + pgx.Identifier{conn.Config().Database}.Sanitize() + ` SET default_transaction_read_only = on`
		if !on {
			stmt = `ALTER DATABASE ` + pgx.Identifier{conn.Config().Database}.Sanitize() + ` RESET default_transaction_read_only`
		}
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
			t.Fatal(err)
		}
	}
	count := func() (users, sessions int) {
		t.Helper()
		if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM sessions)`).Scan(&users, &sessions); err != nil {
			t.Fatal(err)
		}
		return
	}
	setReadOnly(true)
	t.Cleanup(func() {
		_, _ = conn.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{conn.Config().Database}.Sanitize()+` RESET default_transaction_read_only`)
	})
	usersBefore, sessionsBefore := count()
	creds := map[string]string{"email": "readonly@example.com", "password": "correct horse battery"}
	// The pool's ended connections answer once each (503, a lost
	// connection) until it has new, read-only ones.
	var signup answer
	deadline := time.Now().Add(10 * time.Second)
	for {
		signup = send(c, "POST", base+"/v1/signup", "", map[string]string{"email": "new@example.com", "password": "correct horse battery"})
		if signup.body["error_description"] == "the database is read-only" || time.Now().After(deadline) {
			break
		}
	}
	want503(t, "signup", signup)
	login := send(c, "POST", base+"/v1/login", "", creds)
	want503(t, "login", login)
	refresh := send(c, "POST", base+"/v1/token/refresh", "", map[string]string{"refresh_token": ch.rt})
	want503(t, "refresh", refresh)
	logout := send(c, "POST", base+"/v1/logout", ch.at, nil)
	want503(t, "logout", logout)
	for _, a := range []answer{signup, login, refresh, logout} {
		if a.body["error_description"] != "the database is read-only" {
			t.Errorf("error_description %q, want \"the database is read-only\"", a.body["error_description"])
		}
	}
	me := send(c, "GET", base+"/v1/me", ch.at, nil)
	if me.status != 200 {
		t.Errorf("a token check on a read-only database: %d %v", me.status, me.body)
	}
	if u, s := count(); u != usersBefore || s != sessionsBefore {
		t.Errorf("the read-only database changed: users %d -> %d, sessions %d -> %d", usersBefore, u, sessionsBefore, s)
	}
	setReadOnly(false)
	var back answer
	deadline = time.Now().Add(10 * time.Second)
	for {
		back = ch.refresh(c, base)
		if back.status == 200 || time.Now().After(deadline) {
			break
		}
	}
	if back.status != 200 {
		t.Fatalf("refresh once writes are accepted again: %d %v", back.status, back.body)
	}
	if st, body := call(t, "POST", base+"/v1/signup", "", map[string]string{"email": "new@example.com", "password": "correct horse battery"}); st != 201 {
		t.Errorf("signup once writes are accepted again: %d %v", st, body)
	}
	if st, _ := call(t, "POST", base+"/v1/logout", ch.at, nil); st != 204 {
		t.Errorf("logout once writes are accepted again: %d", st)
	}
	report(t, "5. A read-only database (`default_transaction_read_only`)", func() []string {
		return []string{
			fmt.Sprintf("signup %d, login %d, refresh %d, logout %d, each `%v`", signup.status, login.status, refresh.status, logout.status, signup.body["error_description"]),
			fmt.Sprintf("token check (`/v1/me`): %d; users and sessions unchanged (%d, %d)", me.status, usersBefore, sessionsBefore),
			"writes accepted again: the same refresh token refreshes (200), signup 201, logout 204",
		}
	})
}

// TestFaultSilentListener stalls the revocation listener's connection of
// one instance (a forwarder that stops moving bytes, the connection left
// open) and revokes a token on another: the stalled instance must refuse
// it within 5 s (silent after 3 heartbeats). Point 6.
func TestFaultSilentListener(t *testing.T) {
	t.Parallel()
	dbURL := testdb.URL(t)
	fwd := testdb.NewForwarder(t, hostPort(t, dbURL))
	a := startServer(t, map[string]string{"DATABASE_URL": dbURL, "ADDR": "127.0.0.1:0", "IP_RATE_LIMIT": "0"})
	// A short heartbeat (the bound comes from it); make chaos runs this
	// again with the default (FAULT_HEARTBEAT=1s).
	heartbeat := cmp.Or(os.Getenv("FAULT_HEARTBEAT"), "250ms")
	b := startServer(t, map[string]string{"DATABASE_URL": dbURL, "ADDR": "127.0.0.1:0", "IP_RATE_LIMIT": "0",
		"LISTEN_DATABASE_URL": fwd.Via(t, dbURL), "REVOCATION_HEARTBEAT": heartbeat})
	ch := loginChain(t, a, "silent@example.com")
	waitFor(t, func() bool { return metric(t, b, "accounts_revocations_synced") == 1 })
	if st, _ := call(t, "GET", b+"/v1/me", ch.at, nil); st != 200 {
		t.Fatalf("B does not accept the token: %d", st)
	}
	fwd.Stall()
	if st, _ := call(t, "POST", a+"/v1/logout", ch.at, nil); st != 204 {
		t.Fatalf("logout on A: %d", st)
	}
	revoked := time.Now()
	var accepted int
	for {
		st, _ := call(t, "GET", b+"/v1/me", ch.at, nil)
		if st == 401 {
			break
		}
		accepted++
		if time.Since(revoked) > 10*time.Second {
			t.Fatal("B still accepts the revoked token 10 s after the revocation")
		}
		time.Sleep(20 * time.Millisecond) // polling B
	}
	refusedAfter := time.Since(revoked)
	if refusedAfter > 5*time.Second {
		t.Errorf("B refused the revoked token only %s after the revocation, want within 5 s", refusedAfter)
	}
	waitFor(t, func() bool { return metric(t, b, "accounts_revocations_synced") == 1 }) // reconnected through the forwarder
	if st, _ := call(t, "GET", b+"/v1/me", ch.at, nil); st != 401 {
		t.Errorf("B after its listener reconnected: %d, want 401", st)
	}
	report(t, "6. A silent listener (its connection stalled, not closed), REVOCATION_HEARTBEAT="+heartbeat, func() []string {
		return []string{
			"instance B listens through a TCP forwarder that stops moving bytes; a token is revoked (logout) on instance A",
			fmt.Sprintf("B refused the revoked token %s after the revocation (bound 5 s; `REVOCATION_HEARTBEAT=%s`, silent after 3); %d checks accepted it before", refusedAfter.Round(time.Millisecond), heartbeat, accepted),
			"B's listener reconnected and resynced; the token stays refused",
		}
	})
}

// TestFaultInstancesStartTogether starts several instances at once on an
// empty database. Point 7.
func TestFaultInstancesStartTogether(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewEmpty(t)
	const n = 4
	vars := map[string]string{"DATABASE_URL": dbURL, "ADDR": "127.0.0.1:0"}
	type started struct {
		addr string
		err  error
	}
	results := make(chan started, n)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, n)
	var release sync.WaitGroup
	for range n {
		pr, pw := io.Pipe()
		release.Go(func() { done <- run(ctx, []string{"server"}, envFrom(vars), io.Discard, pw); pw.Close() })
		go func() {
			defer io.Copy(io.Discard, pr)
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				var line struct{ Msg, Addr string }
				if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
					results <- started{addr: line.Addr}
					return
				}
			}
			results <- started{err: fmt.Errorf("stopped before listening")}
		}()
	}
	t.Cleanup(func() { cancel(); release.Wait() })
	var bases []string
	for range n {
		select {
		case r := <-results:
			if r.err != nil {
				t.Fatalf("an instance failed to start: %v (run: %v)", r.err, <-done)
			}
			bases = append(bases, "http://"+r.addr)
		case <-time.After(60 * time.Second):
			t.Fatal("instances did not all start within 60 s")
		}
	}
	var kids []string
	for _, base := range bases {
		waitForReady(t, base)
		st, jwks := call(t, "GET", base+"/.well-known/jwks.json", "", nil)
		keys, _ := jwks["keys"].([]any)
		if st != 200 || len(keys) != 1 {
			t.Fatalf("jwks of %s: %d %v, want one key", base, st, jwks)
		}
		kids = append(kids, keys[0].(map[string]any)["kid"].(string))
	}
	slices.Sort(kids)
	if kids[0] != kids[len(kids)-1] {
		t.Errorf("instances sign with different keys: %v", kids)
	}
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var version, keys int
	var dirty bool
	if err := conn.QueryRow(context.Background(), `SELECT version, dirty, (SELECT count(*) FROM signing_keys) FROM schema_migrations`).Scan(&version, &dirty, &keys); err != nil {
		t.Fatal(err)
	}
	ups, _ := fs.Glob(migrations.FS, "*.up.sql")
	if version != len(ups) || dirty || keys != 1 {
		t.Errorf("after %d instances started together: version %d (dirty %v), %d signing keys; want %d, clean, 1", n, version, dirty, keys, len(ups))
	}
	// One instance's login works on another.
	ch := loginChain(t, bases[0], "together@example.com")
	if st, _ := call(t, "GET", bases[n-1]+"/v1/me", ch.at, nil); st != 200 {
		t.Errorf("a token of one instance on another: %d", st)
	}
	cancel()
	for range n {
		if err := <-done; err != nil {
			t.Errorf("run returned %v after cancel", err)
		}
	}
	report(t, "7. Instances started at once on an empty database", func() []string {
		return []string{
			fmt.Sprintf("%d instances started concurrently: all listening and ready; schema at version %d, clean; %d signing key (kid shared by all)", n, version, keys),
		}
	})
}

// watcher is a connection of the test's own to databaseURL.
func watcher(t *testing.T, databaseURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// hostPort is a database URL's host:port.
func hostPort(t *testing.T, databaseURL string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
}
