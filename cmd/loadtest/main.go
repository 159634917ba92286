// Command loadtest drives the account service's HTTP API and reports
// throughput and latency.
//
//	loadtest -url http://127.0.0.1:8080 -scenario me -c 32 -d 10s
//
// Scenarios: me, refresh (each worker follows its own chain, always
// presenting the newest refresh token), login, signup, mixed (90 % me,
// 8 % refresh, 2 % login), healthz (the HTTP stack alone, as a ceiling).
// Users and tokens are made before the timed part. The service must run
// with IP_RATE_LIMIT=0: every request comes from one address.
//
// With -soak 1m it runs for -d and reports each minute (see soak.go):
//
//	loadtest -scenario mixed -c 16 -rate 300 -d 10m -soak 1m -pid PID -db DATABASE_URL
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// Result is one run's figures.
type Result struct {
	Scenario    string         `json:"scenario"`
	Label       string         `json:"label,omitempty"`
	Concurrency int            `json:"concurrency"`
	Seconds     float64        `json:"seconds"`
	Requests    int            `json:"requests"`
	ByStatus    map[string]int `json:"by_status"`
	Errors      int            `json:"errors"`
	RPS         float64        `json:"rps"`
	P50ms       float64        `json:"p50_ms"`
	P90ms       float64        `json:"p90_ms"`
	P99ms       float64        `json:"p99_ms"`
	MaxMs       float64        `json:"max_ms"`
}

// Markdown is the result as one table row.
func (r Result) Markdown() string {
	errs := "0"
	if r.Errors > 0 {
		errs = fmt.Sprint(r.ByStatus)
	}
	name := r.Scenario
	if r.Label != "" {
		name += " (" + r.Label + ")"
	}
	return fmt.Sprintf("| %s | %d | %d | %.0f | %.2f | %.2f | %.2f | %.2f | %s |",
		name, r.Concurrency, r.Requests, r.RPS, r.P50ms, r.P90ms, r.P99ms, r.MaxMs, errs)
}

// MarkdownHeader heads a table of Markdown rows.
const MarkdownHeader = "| scenario | concurrency | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | errors |\n|---|---|---|---|---|---|---|---|---|"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://127.0.0.1:8080", "service base URL")
	scenario := fs.String("scenario", "me", "me, refresh, login, signup, mixed or healthz")
	conc := fs.Int("c", 32, "concurrent workers")
	dur := fs.Duration("d", 10*time.Second, "timed duration")
	label := fs.String("label", "", "label for the report")
	password := fs.String("password", "load-test passphrase 42", "password for the users made")
	jsonOut := fs.Bool("json", false, "print the result as JSON (default: a Markdown row)")
	header := fs.Bool("header", false, "print the Markdown header first")
	users := fs.Int("users", 0, "distinct users the workers share (default: one per worker)")
	tsv := fs.String("tsv", "", "also append the result to this file as one tab-separated line")
	soakEvery := fs.Duration("soak", 0, "soak: run for -d and report every this interval (latency, errors, and the server's RSS, goroutines, fds, database connections) as a Markdown table")
	pid := fs.Int("pid", 0, "soak: the server's process id (for its RSS)")
	rate := fs.Float64("rate", 0, "soak: requests per second from all workers together (default: as fast as they can)")
	warmup := fs.Duration("warmup", 0, "soak: run this long first as fast as the workers can, unmeasured")
	dbURL := fs.String("db", "", "soak: the server's database URL (for its connections)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *conc < 1 || *dur <= 0 {
		return errors.New("-c must be at least 1 and -d positive")
	}
	c := &client{base: *base, pw: *password, run: strconv.FormatInt(time.Now().UnixNano(), 36),
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: *conc * 2, MaxIdleConnsPerHost: *conc * 2, IdleConnTimeout: time.Minute}}}
	workers, err := c.setup(ctx, *scenario, *conc, *users)
	if err != nil {
		return fmt.Errorf("set-up: %w", err)
	}
	if *soakEvery > 0 {
		samples, err := soak(ctx, c, workers, *dur, soakOptions{interval: *soakEvery, rate: *rate, warmup: *warmup, pid: *pid, dbURL: *dbURL})
		if err != nil {
			return err
		}
		if !soakReport(stdout, samples, *soakEvery) {
			return errors.New("soak: a criterion did not hold (see the report)")
		}
		return nil
	}
	res := measure(ctx, workers, *dur)
	res.Scenario, res.Label, res.Concurrency = *scenario, *label, *conc
	if *tsv != "" {
		f, err := os.OpenFile(*tsv, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		fmt.Fprintf(f, "%s\t%s\t%d\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%v\n", res.Label, res.Scenario, res.Concurrency,
			res.RPS, res.P50ms, res.P90ms, res.P99ms, res.MaxMs, res.Errors, res.ByStatus)
		if err := f.Close(); err != nil {
			return err
		}
	}
	if *jsonOut {
		return json.NewEncoder(stdout).Encode(res)
	}
	if *header {
		fmt.Fprintln(stdout, MarkdownHeader)
	}
	fmt.Fprintln(stdout, res.Markdown())
	return nil
}

type client struct {
	base, pw, run string
	http          *http.Client
	seq           int64
	mu            sync.Mutex
}

// call sends one request and returns the status (0 for a transport error)
// and the decoded JSON body when into is not nil. The generator shares the
// machine with the service, so it keeps its own work per request small.
func (c *client) call(method, path, token string, body any, into any) int {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(body)
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		return 0
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	_, _ = buf.ReadFrom(res.Body)
	if into != nil && res.StatusCode < 300 {
		_ = json.Unmarshal(buf.Bytes(), into)
	}
	bufPool.Put(buf)
	return res.StatusCode
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// refreshBody is {"refresh_token":"<t>"}; tokens are base64url, no escaping needed.
func refreshBody(t string) []byte {
	b := make([]byte, 0, len(t)+20)
	b = append(b, `{"refresh_token":"`...)
	b = append(b, t...)
	return append(b, `"}`...)
}

func (c *client) email() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return fmt.Sprintf("load-%s-%d@example.com", c.run, c.seq)
}

type tokens struct {
	Access  string `json:"access_token"`
	Refresh string `json:"refresh_token"`
}

// user signs up a new user and logs in.
func (c *client) user() (string, tokens, error) {
	email := c.email()
	if st := c.call("POST", "/v1/signup", "", map[string]string{"email": email, "password": c.pw}, nil); st != 201 {
		return "", tokens{}, fmt.Errorf("signup: status %d (is IP_RATE_LIMIT=0?)", st)
	}
	var t tokens
	if st := c.call("POST", "/v1/login", "", map[string]string{"email": email, "password": c.pw}, &t); st != 200 {
		return "", tokens{}, fmt.Errorf("login: status %d", st)
	}
	return email, t, nil
}

// worker sends one request of its scenario and returns its status.
type worker func() int

func (c *client) setup(ctx context.Context, scenario string, n, users int) ([]worker, error) {
	if users <= 0 || users > n {
		users = n
	}
	type account struct {
		email string
		t     tokens
	}
	accounts := make([]account, 0, users)
	if scenario != "healthz" && scenario != "signup" {
		for range users {
			email, t, err := c.user()
			if err != nil {
				return nil, err
			}
			accounts = append(accounts, account{email, t})
		}
	}
	ws := make([]worker, n)
	for i := range n {
		var email string
		var t tokens
		if len(accounts) > 0 {
			a := accounts[i%len(accounts)]
			email, t = a.email, a.t
			if i >= len(accounts) && scenario != "login" {
				// Shared users need a chain (session) of their own per worker.
				var next tokens
				if st := c.call("POST", "/v1/login", "", map[string]string{"email": email, "password": c.pw}, &next); st != 200 {
					return nil, fmt.Errorf("login: status %d", st)
				}
				t = next
			}
		}
		me := func() int { return c.call("GET", "/v1/me", t.Access, nil, nil) }
		refresh := func() int {
			var next tokens
			st := c.call("POST", "/v1/token/refresh", "", refreshBody(t.Refresh), &next)
			if st == 200 {
				t = next // always present the newest token
			}
			return st
		}
		loginBody, _ := json.Marshal(map[string]string{"email": email, "password": c.pw})
		login := func() int { return c.call("POST", "/v1/login", "", loginBody, nil) }
		switch scenario {
		case "me":
			ws[i] = me
		case "refresh":
			ws[i] = refresh
		case "login":
			ws[i] = login
		case "signup":
			ws[i] = func() int {
				return c.call("POST", "/v1/signup", "", map[string]string{"email": c.email(), "password": c.pw}, nil)
			}
		case "healthz":
			ws[i] = func() int { return c.call("GET", "/healthz", "", nil, nil) }
		case "mixed":
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			ws[i] = func() int {
				switch p := rng.IntN(100); {
				case p < 90:
					return me()
				case p < 98:
					return refresh()
				default:
					return login()
				}
			}
		default:
			return nil, fmt.Errorf("unknown scenario %q", scenario)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return ws, nil
}

// measure runs every worker in a loop for d and merges what they saw.
func measure(ctx context.Context, ws []worker, d time.Duration) Result {
	type tally struct {
		lat    []time.Duration
		status map[int]int
	}
	tallies := make([]tally, len(ws))
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := tally{lat: make([]time.Duration, 0, 1<<14), status: map[int]int{}}
			for ctx.Err() == nil {
				t0 := time.Now()
				st := w()
				t.lat = append(t.lat, time.Since(t0))
				t.status[st]++
			}
			tallies[i] = t
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	res := Result{ByStatus: map[string]int{}, Seconds: elapsed.Seconds()}
	var all []time.Duration
	for _, t := range tallies {
		all = append(all, t.lat...)
		for st, n := range t.status {
			key := strconv.Itoa(st)
			if st == 0 {
				key = "transport"
			}
			res.ByStatus[key] += n
			if st == 0 || st >= 400 {
				res.Errors += n
			}
		}
	}
	slices.Sort(all)
	res.Requests = len(all)
	res.RPS = float64(len(all)) / elapsed.Seconds()
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	res.P50ms, res.P90ms, res.P99ms = pct(0.50), pct(0.90), pct(0.99)
	if len(all) > 0 {
		res.MaxMs = float64(all[len(all)-1].Microseconds()) / 1000
	}
	return res
}
