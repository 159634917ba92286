package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/accounts/internal/testdb"
)

// TestRollingRestartLosesNoRequest runs two instances on one database and
// a load against the first; stops the first mid-load (as SIGTERM does) and
// moves the load to the second, as a load balancer would. Every request
// the first instance handled (its own request log says which) must have
// reached the client as a complete, successful response.
func TestRollingRestartLosesNoRequest(t *testing.T) {
	t.Parallel()
	url := testdb.URL(t)
	var handledByA atomic.Int64
	a, stopA := startServerWatched(t, map[string]string{"DATABASE_URL": url, "ADDR": "127.0.0.1:0", "IP_RATE_LIMIT": "0"}, func(m map[string]any) {
		if m["msg"] == "request" && (m["route"] == "/v1/me" || m["route"] == "/v1/token/refresh") {
			handledByA.Add(1)
		}
	})
	b := startServer(t, map[string]string{"DATABASE_URL": url, "ADDR": "127.0.0.1:0", "IP_RATE_LIMIT": "0"})

	// One connection per request: a request that reached A is one A accepted.
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	type user struct{ at, rt string }
	const workers, perWorker = 12, 60
	users := make([]user, workers)
	for i := range users {
		email := "roll" + string(rune('a'+i)) + "@example.com"
		creds := map[string]string{"email": email, "password": "correct horse battery"}
		call(t, "POST", a+"/v1/signup", "", creds)
		_, tok := call(t, "POST", a+"/v1/login", "", creds)
		users[i] = user{tok["access_token"].(string), tok["refresh_token"].(string)}
	}

	var (
		answeredByA atomic.Int64
		failures    = make(chan string, 2*workers*perWorker) // at most two per request
		done        atomic.Int64
		wg          sync.WaitGroup
		third       = make(chan struct{}) // closed when a third of the load is through
		quit        = make(chan struct{}) // closed when the test ends, however it ends
	)
	// Registered after both servers' cleanups, so it runs before them: the
	// workers stop before the servers do, even when the test fails early.
	t.Cleanup(func() { close(quit); wg.Wait() })
	var target atomic.Value
	target.Store(a)
	do := func(base string, u *user, i int) (int, bool) {
		var req *http.Request
		if i%2 == 0 {
			req, _ = http.NewRequest("GET", base+"/v1/me", nil)
			req.Header.Set("Authorization", "Bearer "+u.at)
		} else {
			req, _ = http.NewRequest("POST", base+"/v1/token/refresh", bytes.NewReader([]byte(`{"refresh_token":"`+u.rt+`"}`)))
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := client.Do(req)
		if err != nil {
			return 0, false // not answered: it never reached a server, or was lost (the counts tell)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			failures <- "truncated response from " + base
			return res.StatusCode, true
		}
		if res.StatusCode == 200 && i%2 == 1 {
			var tok map[string]string
			_ = json.Unmarshal(body, &tok)
			u.at, u.rt = tok["access_token"], tok["refresh_token"]
		}
		return res.StatusCode, true
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := &users[w]
			for i := 0; i < perWorker; {
				select {
				case <-quit:
					return
				default:
				}
				base := target.Load().(string)
				st, answered := do(base, u, i)
				switch {
				case !answered && base == a:
					target.Store(b) // the balancer takes A out; retry on B
					continue
				case !answered:
					failures <- "no answer from " + base // B stays up: never retry it in a loop
				default:
					if base == a {
						answeredByA.Add(1)
					}
					if st != 200 {
						failures <- "status " + http.StatusText(st) + " from " + base
					}
				}
				i++
				if done.Add(1) == workers*perWorker/3 {
					close(third) // exactly one Add returns the threshold
				}
			}
		}()
	}
	// Restart A once a third of the load is through: wait for that event,
	// not for it to happen within a guess of the machine's speed. Every
	// request ends (answer, error or the client's 30 s timeout), so the
	// wait is bounded by the load itself; go test -timeout backs it up.
	<-third
	if err := stopA(); err != nil {
		t.Fatalf("A did not stop cleanly: %v", err)
	}
	target.Store(b)
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	// stopA returned: A's log is complete.
	if got, want := answeredByA.Load(), handledByA.Load(); got != want || want == 0 {
		t.Fatalf("A handled %d requests but %d answers reached the client", want, got)
	}
	if done.Load() != workers*perWorker {
		t.Fatalf("%d of %d requests completed", done.Load(), workers*perWorker)
	}
}
