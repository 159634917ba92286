package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/acme/accounts/internal/testdb"
)

// startPgBouncer runs a real PgBouncer in transaction pooling mode in
// front of the test server and returns target's URL pointed at it. It
// listens on a Unix socket in a directory of its own, not on a TCP port:
// a port found free and closed again can be taken by any other process
// before PgBouncer binds it. Without a pgbouncer
// binary the test fails when REQUIRE_PGBOUNCER is set (CI sets it), and
// is skipped otherwise: a skip is not a pass.
func startPgBouncer(t *testing.T, target *url.URL) *url.URL {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		bin = "/usr/sbin/pgbouncer"
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("REQUIRE_PGBOUNCER") != "" {
				t.Fatal("pgbouncer is not installed (apt-get install pgbouncer)")
			}
			t.Skip("pgbouncer is not installed; set REQUIRE_PGBOUNCER=1 to make this a failure")
		}
	}
	// Not t.TempDir: its parent is private, and PgBouncer may run as another user.
	dir, err := os.MkdirTemp("", "pgbouncer-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil { // PgBouncer makes its socket here
		t.Fatal(err)
	}
	const port = 6432 // names the socket file only: the directory is ours
	host, pgPort, _ := net.SplitHostPort(target.Host)
	user := target.User.Username()
	ini := fmt.Sprintf(`[databases]
* = host=%s port=%s

[pgbouncer]
listen_addr =
listen_port = %d
unix_socket_dir = %s
auth_type = trust
auth_file = %s
pool_mode = transaction
max_client_conn = 500
default_pool_size = 8
ignore_startup_parameters = extra_float_digits,statement_timeout,idle_in_transaction_session_timeout
logfile = %s
`, host, pgPort, port, dir, filepath.Join(dir, "users.txt"), filepath.Join(dir, "pgbouncer.log"))
	for name, body := range map[string]string{"pgbouncer.ini": ini, "users.txt": fmt.Sprintf("%q \"\"\n", user), "pgbouncer.log": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o666); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(filepath.Join(dir, name), 0o666)
	}
	args := []string{filepath.Join(dir, "pgbouncer.ini")}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "postgres"}, args...) // it refuses to run as root
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	sock := filepath.Join(dir, fmt.Sprintf(".s.PGSQL.%d", port))
	waitFor(t, func() bool {
		select {
		case <-exited:
			t.Fatal("pgbouncer exited at start (its log is above)")
		default:
		}
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	via := *target
	via.Host = ""
	q := via.Query()
	q.Set("host", dir)
	q.Set("port", fmt.Sprint(port))
	via.RawQuery = q.Encode()
	return &via
}

func TestThroughPgBouncer(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"describe", "off"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			direct := testdb.URL(t) // migrated from the template
			u, _ := url.Parse(direct)
			viaBouncer := startPgBouncer(t, u)
			mails := t.TempDir()
			base := startServer(t, map[string]string{
				"SMTP_URL":                 "file://" + mails, // the outbox's sender runs too
				"DATABASE_URL":             viaBouncer.String(),
				"LISTEN_DATABASE_URL":      direct, // LISTEN needs a session of its own
				"DATABASE_STATEMENT_CACHE": mode,
				"MIGRATE_ON_START":         "false", // migrations take a session lock: run them directly
				"ADDR":                     "127.0.0.1:0",
			})
			walkThrough(t, base)
			// Signup's verification, the reset, the email change's
			// confirmation and the password change's notice.
			waitFiles(t, mails, 4)
		})
	}
}

// walkThrough exercises every kind of statement the service sends.
func walkThrough(t *testing.T, base string) {
	t.Helper()
	creds := map[string]string{"email": "bounce@example.com", "password": "correct horse battery"}
	if st, _ := call(t, "POST", base+"/v1/signup", "", creds); st != 201 {
		t.Fatalf("signup %d", st)
	}
	if st, _ := call(t, "POST", base+"/v1/login", "", map[string]string{"email": "bounce@example.com", "password": "wrong password!"}); st != 401 {
		t.Fatalf("failed login %d", st)
	}
	st, tok := call(t, "POST", base+"/v1/login", "", creds)
	if st != 200 {
		t.Fatalf("login %d", st)
	}
	at, rt := tok["access_token"].(string), tok["refresh_token"].(string)
	if st, _ := call(t, "GET", base+"/v1/me", at, nil); st != 200 {
		t.Fatalf("me %d", st)
	}
	// Concurrent refreshes with one token: one successor for all.
	var wg sync.WaitGroup
	got := make([]string, 20)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st, r := call(t, "POST", base+"/v1/token/refresh", "", map[string]string{"refresh_token": rt}); st == 200 {
				got[i] = r["refresh_token"].(string)
			}
		}()
	}
	wg.Wait()
	for _, g := range got {
		if g == "" || g != got[0] {
			t.Fatalf("concurrent refreshes through PgBouncer: %v", got)
		}
	}
	_, tok = call(t, "POST", base+"/v1/token/refresh", "", map[string]string{"refresh_token": got[0]})
	at2, _ := tok["access_token"].(string)
	for _, path := range []string{"/v1/sessions", "/v1/me/events"} {
		if st, body := call(t, "GET", base+path, at2, nil); st != 200 {
			t.Fatalf("%s %d %v", path, st, body)
		}
	}
	if st, _ := call(t, "POST", base+"/v1/password/forgot", "", map[string]string{"email": "bounce@example.com"}); st != 202 {
		t.Fatalf("forgot %d", st)
	}
	if st, _ := call(t, "POST", base+"/v1/email/change", at2, map[string]string{"new_email": "bounced@example.com", "current_password": "correct horse battery"}); st != 202 {
		t.Fatalf("email change %d", st)
	}
	if st, _ := call(t, "POST", base+"/v1/email/verify", "", map[string]string{"email": "bounce@example.com", "code": "12345678"}); st != 401 {
		t.Fatalf("verify with a wrong code %d", st)
	}
	if st, _ := call(t, "POST", base+"/v1/password", at2, map[string]string{"current_password": "correct horse battery", "new_password": "another long passphrase"}); st != 204 {
		t.Fatalf("password %d", st)
	}
	if st, _ := call(t, "POST", base+"/v1/logout", at2, nil); st != 204 {
		t.Fatalf("logout %d", st)
	}
	if st, _ := call(t, "GET", base+"/v1/me", at2, nil); st != 401 {
		t.Fatalf("me after logout %d", st)
	}
	if st, _ := call(t, "GET", base+"/readyz", "", nil); st != 200 {
		t.Fatalf("readyz %d", st)
	}
}

// waitFiles waits until dir holds at least n .eml files.
func waitFiles(t *testing.T, dir string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
		if len(files) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d mails in %s after 30 s, want %d", len(files), dir, n)
		}
		time.Sleep(20 * time.Millisecond) // waiting on a state, not guessing a duration
	}
}
