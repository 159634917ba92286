package main

// A failed sign-out on the account pages (found by a hostile review).

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/accounts/internal/testdb"
)

// failedLogoutScript signs in on the account pages, then presses "Sign
// out" while POST /v1/browser/logout answers 503 (what the server answers
// when the database does not: browser.go keeps the cookie then, on
// purpose, "the session is still live, and a retry can end it"), and then
// opens the account page again. It prints one JSON line.
const failedLogoutScript = `
const { chromium } = require(process.env.E2E + '/node_modules/playwright-core');
(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const ctx = await browser.newContext({ baseURL: process.env.BASE_URL });
    ctx.setDefaultTimeout(30000);
    const p = await ctx.newPage();
    await p.goto('/account/signin');
    await p.fill('#signin-email', process.env.EMAIL);
    await p.fill('#signin-password', process.env.PASSWORD);
    await p.click('#signin-form button[type=submit]');
    await p.waitForURL(process.env.BASE_URL + '/account/me');
    await p.locator('#me-account').waitFor();

    await p.route('**/v1/browser/logout', (route) => route.fulfill({
      status: 503, contentType: 'application/json; charset=utf-8', headers: { 'Retry-After': '1' },
      body: JSON.stringify({ error: 'service_unavailable', error_description: 'the database is not answering' }),
    }));
    await p.click('#me-logout');
    // Either the page goes to the sign-in page (and says what it says
    // there), or it stays and warns that the sign-out failed.
    const outcome = await Promise.race([
      p.waitForURL((u) => u.pathname === '/account/signin').then(() => 'navigated'),
      p.locator('#me-logout-error', { hasText: 'still signed in' }).waitFor().then(() => 'warned'),
    ]);
    let told = '';
    if (outcome === 'navigated') {
      const notice = p.locator('#signin-notice');
      try {
        await notice.filter({ hasText: 'signed out' }).waitFor({ timeout: 10000 });
        told = (await notice.textContent()).trim();
      } catch { told = ''; }
    }
    await p.unroute('**/v1/browser/logout');

    // Whoever uses this browser next opens the account page.
    await p.goto('/account/me');
    const which = await Promise.race([
      p.locator('#me-account').waitFor().then(() => 'signed in', () => new Promise(() => {})),
      p.locator('#me-signed-out').waitFor().then(() => 'signed out', () => new Promise(() => {})),
    ]);
    const email = which === 'signed in' ? (await p.textContent('#me-email')) : '';
    console.log(JSON.stringify({ told, warned: outcome === 'warned', after: which, email }));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
`

// TestPagesSignOutThatFailedSaysSo: the account page's "Sign
// out" button (app.js, me-logout) ignores the answer of POST
// /v1/browser/logout and always goes to /account/signin#signed-out, which
// says "You are signed out." When the logout did not happen (503 while the
// database does not answer, which keeps the cookie and the session by
// design; or a network failure, status 0), the person is told they are
// signed out while the session and its HttpOnly cookie live on: on a
// shared computer the next person opens /account/me and is in the
// account (the session list, password and email change). The page must
// say the sign-out failed (and retry, or tell them to), not that it
// succeeded.
func TestPagesSignOutThatFailedSaysSo(t *testing.T) {
	t.Parallel()
	node, chromium := browserTools(t, "playwright-core")
	e2e, _ := filepath.Abs("../../e2e")
	base, addr := localhostBase(t)
	startServer(t, map[string]string{
		"DATABASE_URL": testdb.URL(t), "ADDR": addr, "JWT_ISSUER": base,
		"IP_RATE_LIMIT": "0",
	})
	const email, password = "shared-computer@example.com", "q8Zt-Uv2m-Lp9x-Rk4w-Hs7c"
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	res, err := http.Post(base+"/v1/signup", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("signup: %d", res.StatusCode)
	}

	script := filepath.Join(t.TempDir(), "logout.cjs")
	if err := os.WriteFile(script, []byte(failedLogoutScript), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Env = append(os.Environ(), "E2E="+e2e, "CHROMIUM="+chromium, "BASE_URL="+base, "EMAIL="+email, "PASSWORD="+password)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s\n%s", err, out, stderr.String())
	}
	var got struct {
		Told, After, Email string
		Warned             bool
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &got); err != nil {
		t.Fatalf("script output %q: %v", out, err)
	}
	t.Logf("after a failed sign-out the page said %q; the account page then: %s %s", got.Told, got.After, got.Email)
	if got.Told != "" && got.After == "signed in" {
		t.Errorf("the page told the user %q although the sign-out failed, and the account page opens signed in as %s", got.Told, got.Email)
	}
	if !got.Warned {
		t.Errorf("the page did not say that the sign-out failed (still signed in)")
	}
}
