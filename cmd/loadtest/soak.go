package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// A soak runs a scenario for a long time and, every interval, reports the
// interval's latency and errors beside the server's resources: RSS (from
// /proc/PID/status), goroutines and open file descriptors (its /metrics),
// and the database's connections (pg_stat_activity), so that a leak or a
// slow drift shows as a trend.

// soakOptions are the -soak flags.
type soakOptions struct {
	interval time.Duration
	rate     float64 // requests per second from all workers together; 0: as fast as they can
	warmup   time.Duration
	pid      int    // the server's process, for VmRSS
	dbURL    string // the server's database, for its connections
}

// interval is one interval's figures.
type interval struct {
	N          int
	Requests   int
	Errors     int
	ByStatus   map[string]int
	P50ms      float64
	P99ms      float64
	RSSMiB     float64 // the mean of the interval's samples
	RSSMaxMiB  float64
	Goroutines float64
	FDs        float64
	DBConns    int
}

// soak runs ws for d, sampling every o.interval.
func soak(ctx context.Context, c *client, ws []worker, d time.Duration, o soakOptions) ([]interval, error) {
	n := int(d / o.interval)
	if n < 1 {
		return nil, fmt.Errorf("-d %s is shorter than -interval %s", d, o.interval)
	}
	type bucket struct {
		lat    []time.Duration
		status map[int]int
	}
	if o.warmup > 0 {
		// As fast as the workers can, unmeasured: the pool and the heap
		// grow to their working size before the first interval.
		measure(ctx, ws, o.warmup)
	}
	// Each worker fills its own buckets (one per interval): no lock on the hot path.
	perWorker := make([][]bucket, len(ws))
	start := time.Now()
	ctx, cancel := context.WithDeadline(ctx, start.Add(time.Duration(n)*o.interval))
	defer cancel()
	var wg sync.WaitGroup
	for i, w := range ws {
		perWorker[i] = make([]bucket, n)
		for k := range perWorker[i] {
			perWorker[i][k].status = map[int]int{}
		}
		wg.Go(func() {
			// Paced, each worker sends one request every len(ws)/rate: a
			// steady load the server can hold, so that latency shows the
			// server, not a queue of a saturated machine.
			var every time.Duration
			if o.rate > 0 {
				every = time.Duration(float64(len(ws)) / o.rate * float64(time.Second))
			}
			next := start.Add(time.Duration(i) * every / time.Duration(len(ws)))
			for ctx.Err() == nil {
				if every > 0 {
					if wait := time.Until(next); wait > 0 {
						select {
						case <-ctx.Done():
							return
						case <-time.After(wait):
						}
					}
					next = next.Add(every)
					if behind := time.Now(); next.Before(behind) {
						next = behind // fallen behind: no burst to catch up
					}
				}
				t0 := time.Now()
				st := w()
				k := int(t0.Sub(start) / o.interval)
				if k >= n || ctx.Err() != nil {
					return // a request cut short by the end is not counted
				}
				b := &perWorker[i][k]
				b.lat = append(b.lat, time.Since(t0))
				b.status[st]++
			}
		})
	}
	// Resources: RSS and the database's connections 12 times per
	// interval (a garbage-collected heap's RSS is a sawtooth: the mean of
	// an interval is its level; connections: the most seen), goroutines and
	// fds at each interval's end.
	samples := make([]interval, n)
	var conn *pgx.Conn
	if o.dbURL != "" {
		var err error
		if conn, err = pgx.Connect(ctx, o.dbURL); err != nil {
			return nil, fmt.Errorf("connect to the server's database: %w", err)
		}
		defer conn.Close(context.Background())
	}
	var sampleErr error
	const perInterval = 12
	for k := range n {
		s := &samples[k]
		s.N = k + 1
		var rssSum float64
		for j := range perInterval {
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(start.Add(time.Duration(k)*o.interval + time.Duration(j+1)*o.interval/perInterval))):
			}
			if o.pid > 0 {
				rss := rssMiB(o.pid)
				rssSum += rss
				s.RSSMaxMiB = max(s.RSSMaxMiB, rss)
			}
			if conn != nil {
				var dbc int
				qctx, qcancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := conn.QueryRow(qctx, `SELECT count(*) FROM pg_stat_activity
					WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&dbc)
				qcancel()
				if err != nil && sampleErr == nil {
					sampleErr = fmt.Errorf("count the database's connections: %w", err)
				}
				s.DBConns = max(s.DBConns, dbc)
			}
		}
		s.RSSMiB = rssSum / perInterval
		// A request in flight holds goroutines (net/http reads the next
		// one in the background) and its answer a moment: the lowest of
		// 20 scrapes over a second is the level a leak would raise.
		for j := range 20 {
			if j > 0 {
				time.Sleep(50 * time.Millisecond)
			}
			m := scrapeMetrics(c.http, c.base)
			if g := m["go_goroutines"]; j == 0 || g < s.Goroutines {
				s.Goroutines = g
			}
			if f := m["process_open_fds"]; j == 0 || f < s.FDs {
				s.FDs = f
			}
		}
	}
	wg.Wait()
	for k := range samples {
		var lat []time.Duration
		by := map[string]int{}
		for _, bs := range perWorker {
			lat = append(lat, bs[k].lat...)
			for st, c := range bs[k].status {
				key := strconv.Itoa(st)
				if st == 0 {
					key = "transport"
				}
				by[key] += c
				if st == 0 || st >= 400 {
					samples[k].Errors += c
				}
			}
		}
		slices.Sort(lat)
		samples[k].Requests, samples[k].ByStatus = len(lat), by
		pct := func(p float64) float64 {
			if len(lat) == 0 {
				return 0
			}
			return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
		}
		samples[k].P50ms, samples[k].P99ms = pct(0.50), pct(0.99)
	}
	return samples, sampleErr
}

// rssMiB is VmRSS of pid, in MiB (0 if unreadable).
func rssMiB(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kib, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kib / 1024
		}
	}
	return 0
}

// scrapeMetrics reads the unlabelled series of the server's /metrics.
func scrapeMetrics(hc *http.Client, base string) map[string]float64 {
	out := map[string]float64{}
	res, err := hc.Get(base + "/metrics")
	if err != nil {
		return out
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			out[name] = f
		}
	}
	return out
}

// soakReport writes the intervals as a Markdown table and the verdict on
// the soak's criteria: at the last interval RSS, goroutines, open fds and
// database connections within 10 % of the second interval's; every
// interval's p99 (from the second on: the first is the warm-up) at most
// 1.5 times the second's; no errors. It returns whether all held.
func soakReport(w io.Writer, samples []interval, every time.Duration) bool {
	fmt.Fprintf(w, "| %s | requests | errors | p50 ms | p99 ms | p99 / 2nd | RSS MiB, mean | RSS MiB, max | goroutines | open fds | DB connections |\n", unitName(every))
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	if len(samples) < 2 {
		fmt.Fprintln(w, "\n(fewer than two intervals: nothing to compare)")
		return false
	}
	ref := samples[1]
	for _, s := range samples {
		errs := "0"
		if s.Errors > 0 {
			errs = fmt.Sprint(s.Errors, " ", s.ByStatus)
		}
		fmt.Fprintf(w, "| %d | %d | %s | %.2f | %.2f | %.2f | %.1f | %.1f | %.0f | %.0f | %d |\n", s.N, s.Requests, errs,
			s.P50ms, s.P99ms, s.P99ms/ref.P99ms, s.RSSMiB, s.RSSMaxMiB, s.Goroutines, s.FDs, s.DBConns)
	}
	last := samples[len(samples)-1]
	fmt.Fprintln(w)
	ok := true
	within := func(name string, a, b float64) {
		held := b == 0 && a == 0 || b != 0 && a <= b*1.1 && a >= b*0.9
		ok = ok && held
		fmt.Fprintf(w, "- %s: %s %d %.1f, %s 2 %.1f (%+.1f %%): %s\n", name, unitName(every), last.N, a, unitName(every), b,
			100*(a-b)/max(b, 1e-9), verdict(held))
	}
	within("RSS (MiB, the interval's mean)", last.RSSMiB, ref.RSSMiB)
	within("goroutines", last.Goroutines, ref.Goroutines)
	within("open file descriptors", last.FDs, ref.FDs)
	within("database connections", float64(last.DBConns), float64(ref.DBConns))
	worst, at := 0.0, 0
	errors := 0
	for _, s := range samples {
		errors += s.Errors
		if s.N >= 2 && s.P99ms/ref.P99ms > worst {
			worst, at = s.P99ms/ref.P99ms, s.N
		}
	}
	p99held := worst <= 1.5
	fmt.Fprintf(w, "- p99: the worst from %s 2 on is %.2f× %s 2's (%s %d; bound 1.5×): %s; %s 1 (warm-up): %.2f×\n",
		unitName(every), worst, unitName(every), unitName(every), at, verdict(p99held), unitName(every), samples[0].P99ms/ref.P99ms)
	fmt.Fprintf(w, "- errors: %d: %s\n", errors, verdict(errors == 0))
	return ok && p99held && errors == 0
}

func unitName(every time.Duration) string {
	if every == time.Minute {
		return "minute"
	}
	return "interval (" + every.String() + ")"
}

func verdict(held bool) string {
	if held {
		return "held"
	}
	return "**not held**"
}
