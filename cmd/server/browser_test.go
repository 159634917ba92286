package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/accounts/internal/testdb"
)

// TestBrowser runs e2e/browser.mjs: the account pages in Debian's Chromium
// (playwright-core), against the real server, with the mails it writes
// (SMTP_URL=file://). It needs /usr/bin/chromium (or CHROMIUM), node and
// `npm ci --prefix e2e`; without them it is skipped, unless
// REQUIRE_BROWSER=1 (as .ci/run sets), which makes their absence a failure.
// UPDATE_SCREENSHOTS=1 writes the pages' screenshots to docs/screenshots/.
func TestBrowser(t *testing.T) {
	t.Parallel()
	node, chromium := browserTools(t, "playwright-core", "axe-core")
	// The service is http://localhost:PORT (the cookie's site is localhost),
	// so that the script's second server, on 127.0.0.1, is another site.
	base, addr := localhostBase(t)
	mailDir := t.TempDir()
	passwords := []string{rand.Text(), rand.Text(), rand.Text()}
	vars := map[string]string{
		"DATABASE_URL": testdb.URL(t), "ADDR": addr, "JWT_ISSUER": base,
		"SMTP_URL": "file://" + mailDir, "ACCESS_TOKEN_TTL": "3s", "JWT_LEEWAY": "0s", "IP_RATE_LIMIT": "0",
	}
	var mu sync.Mutex
	var logged []string
	_, stop := startServerWatched(t, vars, func(m map[string]any) {
		b, _ := json.Marshal(m)
		mu.Lock()
		logged = append(logged, string(b))
		mu.Unlock()
	})

	shots := ""
	if os.Getenv("UPDATE_SCREENSHOTS") == "1" {
		var err error
		if shots, err = filepath.Abs("../../docs/screenshots"); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "browser.mjs")
	cmd.Dir = "../../e2e"
	cmd.Env = append(os.Environ(), "BASE_URL="+base, "MAIL_DIR="+mailDir, "CHROMIUM="+chromium,
		"SCREENSHOT_DIR="+shots, "PASSWORDS="+strings.Join(passwords, ","))
	runNode(t, cmd, func(line string) { t.Log(line) })

	// Every log line is in once run has returned: none holds a password
	// or an access token.
	if err := stop(); err != nil {
		t.Errorf("run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(logged) < 20 {
		t.Fatalf("only %d log lines", len(logged))
	}
	for _, l := range logged {
		for _, p := range passwords {
			if strings.Contains(l, p) {
				t.Fatalf("a log line holds a password: %s", l)
			}
		}
		if strings.Contains(l, "eyJ") {
			t.Fatalf("a log line holds a JWT: %s", l)
		}
	}
}

// browserTools finds node and Chromium (CHROMIUM, else /usr/bin/chromium)
// and checks that npm ci --prefix e2e installed modules. Without them the
// test is skipped, unless REQUIRE_BROWSER=1 (as .ci/run sets), which makes
// their absence a failure.
func browserTools(t *testing.T, modules ...string) (node, chromium string) {
	t.Helper()
	chromium = cmp.Or(os.Getenv("CHROMIUM"), "/usr/bin/chromium")
	var missing []string
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, chromium)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node")
	}
	for _, m := range modules {
		if _, err := os.Stat("../../e2e/node_modules/" + m); err != nil {
			missing = append(missing, "e2e/node_modules/"+m+" (npm ci --prefix e2e)")
		}
	}
	if len(missing) > 0 {
		if os.Getenv("REQUIRE_BROWSER") == "1" {
			t.Fatalf("REQUIRE_BROWSER=1 but these are missing: %s", strings.Join(missing, ", "))
		}
		t.Skipf("SKIPPED: the browser tests need %s", strings.Join(missing, ", "))
	}
	return node, chromium
}

// localhostBase picks a free port for a server at http://localhost:PORT
// (listening on 127.0.0.1:PORT, addr).
func localhostBase(t *testing.T) (base, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return fmt.Sprintf("http://localhost:%d", port), fmt.Sprintf("127.0.0.1:%d", port)
}
