package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/accounts/internal/store"
	"github.com/acme/accounts/internal/testdb"
)

// previousRelease is the last landed commit before refresh-token format 2:
// the binary a rolling upgrade starts from.
const previousRelease = "c0b79fb"

// buildRelease builds cmd/server of a commit of this repository's history
// (git archive, so the checkout itself is left alone) and returns the binary.
func buildRelease(t *testing.T, commit string) string {
	t.Helper()
	dir := t.TempDir()
	archive := exec.Command("git", "archive", "--format=tar", commit)
	archive.Dir = "../.."
	untar := exec.Command("tar", "-x", "-C", dir)
	in, err := untar.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	archive.Stdout = in
	var gitErr strings.Builder
	archive.Stderr = &gitErr
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	err = archive.Run()
	in.Close()
	if err != nil {
		t.Fatalf("git archive %s (the test needs the repository's history): %v %s", commit, err, gitErr.String())
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("untar: %v", err)
	}
	bin := filepath.Join(dir, "server")
	build := exec.Command("go", "build", "-o", bin, "./cmd/server")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", commit, err, out)
	}
	return bin
}

// startBinary runs a server binary with vars as its whole environment and
// returns its base URL; it is stopped (SIGTERM) when the test ends or on stop.
func startBinary(t *testing.T, bin string, vars map[string]string) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 20 * time.Second
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "PATH="+os.Getenv("PATH"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	var mu sync.Mutex
	var last []string // the log's last lines, for a failure message
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				addr <- line.Addr
			}
			mu.Lock()
			last = append(last[max(0, len(last)-19):], sc.Text())
			mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(stop)
	select {
	case a := <-addr:
		base := "http://" + a
		unchecked.Store(base, true) // another release: another document
		waitForReady(t, base)
		return base, stop
	case <-time.After(60 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%s did not log its address within 60 s; its log:\n%s", bin, strings.Join(last, "\n"))
	}
	return "", stop
}

// TestRollingUpgradeAcrossTokenFormats upgrades a deployment from the
// previous release to this one the way the README says, with old and new
// binaries side by side on one database at each step, and a client whose
// refresh chain bounces between them (with grace retries on the other
// instance): no refresh is ever refused and no session ends.
func TestRollingUpgradeAcrossTokenFormats(t *testing.T) {
	t.Parallel()
	oldBin := buildRelease(t, previousRelease)
	url := testdb.NewEmpty(t) // the previous release makes its own schema
	env := func(extra ...string) map[string]string {
		m := map[string]string{"DATABASE_URL": url, "ADDR": "127.0.0.1:0", "IP_RATE_LIMIT": "0"}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	type chain struct {
		email, access, refresh string
	}
	creds := func(email string) map[string]string {
		return map[string]string{"email": email, "password": "correct horse battery"}
	}
	login := func(base, email string) chain {
		t.Helper()
		st, tok := call(t, "POST", base+"/v1/login", "", creds(email))
		if st != 200 {
			t.Fatalf("login at %s: %d %v", base, st, tok)
		}
		return chain{email, tok["access_token"].(string), tok["refresh_token"].(string)}
	}
	// bounce refreshes c at each base in turn, and retries each spent token
	// at the next base (a lost response): the retry must get the very same
	// successor. Then the access token must work everywhere.
	bounce := func(c *chain, wantLen int, bases ...string) {
		t.Helper()
		for i := range 2 * len(bases) {
			at, retry := bases[i%len(bases)], bases[(i+1)%len(bases)]
			st, tok := call(t, "POST", at+"/v1/token/refresh", "", map[string]string{"refresh_token": c.refresh})
			if st != 200 {
				t.Fatalf("refresh of %s at %s: %d %v", c.email, at, st, tok)
			}
			st, again := call(t, "POST", retry+"/v1/token/refresh", "", map[string]string{"refresh_token": c.refresh})
			if st != 200 || again["refresh_token"] != tok["refresh_token"] {
				t.Fatalf("grace retry of %s at %s: %d %v, want the successor %v", c.email, retry, st, again, tok["refresh_token"])
			}
			c.access, c.refresh = tok["access_token"].(string), tok["refresh_token"].(string)
			if wantLen != 0 && len(c.refresh) != wantLen {
				t.Fatalf("refresh token of %d characters at %s, want %d", len(c.refresh), at, wantLen)
			}
		}
		for _, b := range bases {
			if st, me := call(t, "GET", b+"/v1/me", c.access, nil); st != 200 {
				t.Fatalf("me of %s at %s: %d %v", c.email, b, st, me)
			}
		}
	}

	// The deployment before the upgrade: the previous release.
	old, stopOld := startBinary(t, oldBin, env())
	for _, e := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		if st, _ := call(t, "POST", old+"/v1/signup", "", creds(e)); st != 201 {
			t.Fatalf("signup %s: %d", e, st)
		}
	}
	a := login(old, "a@example.com")

	// Step 1: new instances with REFRESH_TOKEN_FORMAT=1 join (the first
	// applies the migrations); the old ones keep serving.
	v1 := startServer(t, env("REFRESH_TOKEN_FORMAT", "1"))
	b := login(v1, "b@example.com")
	bounce(&a, 43, old, v1)
	bounce(&b, 43, v1, old)
	// Revocations cross the versions both ways.
	c := login(old, "c@example.com")
	if st, _ := call(t, "POST", v1+"/v1/logout", c.access, nil); st != 204 {
		t.Fatal("logout at the new instance")
	}
	waitFor(t, func() bool { st, _ := call(t, "GET", old+"/v1/me", c.access, nil); return st == 401 })
	c = login(v1, "c@example.com")
	if st, _ := call(t, "POST", old+"/v1/logout", c.access, nil); st != 204 {
		t.Fatal("logout at the old instance")
	}
	waitFor(t, func() bool { st, _ := call(t, "GET", v1+"/v1/me", c.access, nil); return st == 401 })

	// Step 2: no old instance is left; instances restart without the
	// setting (format 2), side by side with the format-1 ones.
	stopOld()
	v2 := startServer(t, env())
	bounce(&a, 0, v2, v1) // converted at v2, then format 2 everywhere
	if len(a.refresh) != 64 {
		t.Fatalf("a's token after the upgrade has %d characters, want 64", len(a.refresh))
	}
	bounce(&b, 0, v1, v2) // format 1 at v1 until v2 converts it
	if len(b.refresh) != 64 {
		t.Fatalf("b's token after the upgrade has %d characters, want 64", len(b.refresh))
	}
	bounce(&b, 64, v1, v2)
	d := login(v2, "c@example.com")
	bounce(&d, 64, v1, v2)

	// A misordered upgrade (an old instance meeting a format-2 token) is
	// refused there, but ends no session: a new instance still refreshes it.
	late, _ := startBinary(t, oldBin, env("MIGRATE_ON_START", "false"))
	if st, _ := call(t, "POST", late+"/v1/token/refresh", "", map[string]string{"refresh_token": d.refresh}); st != 401 {
		t.Fatalf("an old binary answered %d to a format-2 token, want 401", st)
	}
	bounce(&d, 64, v2)
	var ended int
	pool, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL`).Scan(&ended); err != nil || ended != 2 {
		t.Fatalf("%d ended sessions, want the 2 that logged out (%v)", ended, err)
	}
}
