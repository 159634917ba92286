package http_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	httpapi "github.com/acme/accounts/internal/http"
)

const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// pagesServer serves the account pages alone: they need no service, as
// the script talks to the API from the browser.
func pagesServer(t *testing.T) (*httptest.Server, *http.Client) {
	t.Helper()
	srv := httptest.NewServer(httpapi.NewServer(httpapi.Deps{Log: slog.New(slog.NewJSONHandler(io.Discard, nil)), AccountPages: true}))
	t.Cleanup(srv.Close)
	return srv, openAPI(t).Client(t, srv.Client().Transport)
}

func get(t *testing.T, c *http.Client, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func wantPageHeaders(t *testing.T, res *http.Response, cache string) {
	t.Helper()
	for k, v := range map[string]string{
		"Content-Security-Policy": pageCSP, "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
		"X-Content-Type-Options": "nosniff", "Cache-Control": cache,
	} {
		if got := res.Header.Get(k); got != v {
			t.Errorf("%s %s: %s = %q, want %q", res.Request.Method, res.Request.URL.Path, k, got, v)
		}
	}
}

var (
	formTag     = regexp.MustCompile(`<form[^>]*>`)
	inputTag    = regexp.MustCompile(`<input[^>]*>`)
	describedBy = regexp.MustCompile(`aria-describedby="([^"]+)"`)
	assetURL    = regexp.MustCompile(`(?:src|href)="(/account/assets/[a-z]+\.(?:js|css|svg)\?v=[0-9a-f]{12})"`)
	inlineCode  = regexp.MustCompile(`(?i)<script>|<script [^>]*>[^<]|\sstyle=|\son[a-z]+=|<style|javascript:`)
)

func TestAccountPages(t *testing.T) {
	t.Parallel()
	srv, c := pagesServer(t)
	assets := map[string]bool{}
	for _, path := range []string{"/account", "/account/signin", "/account/signup", "/account/forgot", "/account/reset",
		"/account/verify", "/account/email", "/account/deny", "/account/me"} {
		t.Run(path, func(t *testing.T) {
			res, body := get(t, c, "GET", srv.URL+path)
			if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
				t.Fatalf("%d %q", res.StatusCode, res.Header.Get("Content-Type"))
			}
			wantPageHeaders(t, res, "no-store")
			if !strings.HasPrefix(body, "<!doctype html>") || !strings.Contains(body, `<html lang="en">`) {
				t.Fatalf("not a whole page: %.80q", body)
			}
			// The CSP forbids inline script and style: the page must not need them.
			if m := inlineCode.FindString(body); m != "" {
				t.Errorf("inline code %q", m)
			}
			// Without the script a form may still be submitted: by POST to
			// the page itself (a 405, the body unread), never as a GET query.
			for _, f := range formTag.FindAllString(body, -1) {
				if !strings.Contains(f, `method="post"`) || strings.Contains(f, "action=") {
					t.Errorf("form %s: want method=post and no action", f)
				}
			}
			for _, in := range inputTag.FindAllString(body, -1) {
				if !strings.Contains(in, `autocomplete="`) || !strings.Contains(in, `id="`) {
					t.Errorf("input without autocomplete or id: %s", in)
				}
				id := regexp.MustCompile(`id="([^"]+)"`).FindStringSubmatch(in)[1]
				if !strings.Contains(body, `<label for="`+id+`"`) {
					t.Errorf("input %s has no label", id)
				}
				if strings.Contains(in, `type="password"`) && !strings.Contains(in, `autocomplete="current-password"`) &&
					!strings.Contains(in, `autocomplete="new-password"`) {
					t.Errorf("password input without current-password or new-password: %s", in)
				}
			}
			for _, m := range describedBy.FindAllStringSubmatch(body, -1) {
				for _, id := range strings.Fields(m[1]) {
					if !strings.Contains(body, `id="`+id+`"`) {
						t.Errorf("aria-describedby names %q, which is not on the page", id)
					}
				}
			}
			for _, m := range assetURL.FindAllStringSubmatch(body, -1) {
				assets[m[1]] = true
			}
		})
	}
	if len(assets) != 3 {
		t.Fatalf("the pages link %v, want app.js, app.css and icon.svg, versioned", assets)
	}

	t.Run("the slash", func(t *testing.T) {
		// /account/ is the sign-in page too; the document names it /account.
		res, body := get(t, srv.Client(), "GET", srv.URL+"/account/")
		if res.StatusCode != 200 || !strings.Contains(body, `data-page="signin"`) {
			t.Fatalf("%d %.200q", res.StatusCode, body)
		}
		wantPageHeaders(t, res, "no-store")
	})

	t.Run("HEAD", func(t *testing.T) {
		res, body := get(t, c, "HEAD", srv.URL+"/account/signup")
		if res.StatusCode != 200 || body != "" {
			t.Fatalf("%d %q", res.StatusCode, body)
		}
		wantPageHeaders(t, res, "no-store")
	})

	t.Run("unknown page", func(t *testing.T) {
		res, body := get(t, c, "GET", srv.URL+"/account/nope")
		if res.StatusCode != 404 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("%d %q", res.StatusCode, res.Header.Get("Content-Type"))
		}
		wantPageHeaders(t, res, "no-store")
		if !strings.Contains(body, "<code>/account/nope</code>") {
			t.Fatalf("body %q", body)
		}
	})

	t.Run("templates escape", func(t *testing.T) {
		res, body := get(t, srv.Client(), "GET", srv.URL+"/account/%3Cscript%3Ealert(1)%3C%2Fscript%3E%22%27")
		if res.StatusCode != 404 {
			t.Fatalf("%d", res.StatusCode)
		}
		if strings.Contains(body, "<script>alert") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;") {
			t.Fatalf("not escaped: %q", body)
		}
	})

	t.Run("deeper paths are the API's 404", func(t *testing.T) {
		res, _ := get(t, c, "GET", srv.URL+"/account/signin/more")
		if res.StatusCode != 404 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("%d %q", res.StatusCode, res.Header.Get("Content-Type"))
		}
		if got := res.Header.Get("Content-Security-Policy"); got != pageCSP {
			t.Fatalf("CSP %q", got)
		}
	})

	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		t.Run(m+" is 405", func(t *testing.T) {
			for _, path := range []string{"/account/signin", "/account", "/account/assets/app.js"} {
				res, _ := get(t, c, m, srv.URL+path)
				if res.StatusCode != 405 || !strings.Contains(res.Header.Get("Allow"), "GET") {
					t.Fatalf("%s %s: %d, Allow %q", m, path, res.StatusCode, res.Header.Get("Allow"))
				}
			}
		})
	}

	t.Run("assets", func(t *testing.T) {
		types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
		for u := range assets {
			name, _, _ := strings.Cut(u, "?")
			want := types[name[strings.LastIndex(name, "."):]]
			res, body := get(t, c, "GET", srv.URL+u)
			if res.StatusCode != 200 || res.Header.Get("Content-Type") != want || len(body) < 100 {
				t.Fatalf("%s: %d %q %d bytes", u, res.StatusCode, res.Header.Get("Content-Type"), len(body))
			}
			wantPageHeaders(t, res, "public, max-age=31536000, immutable")
			// Unversioned or of another version: revalidated each time.
			for _, other := range []string{name, name + "?v=000000000000"} {
				res, body2 := get(t, c, "GET", srv.URL+other)
				if res.StatusCode != 200 || body2 != body {
					t.Fatalf("%s: %d", other, res.StatusCode)
				}
				wantPageHeaders(t, res, "no-cache")
			}
		}
		res, _ := get(t, c, "GET", srv.URL+"/account/assets/secret.go")
		if res.StatusCode != 404 {
			t.Fatalf("unknown asset: %d", res.StatusCode)
		}
		wantPageHeaders(t, res, "no-store")
	})
}

// TestAccountPagesOff: with ACCOUNT_PAGES=false nothing is served there.
func TestAccountPagesOff(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(httpapi.NewServer(httpapi.Deps{Log: slog.New(slog.NewJSONHandler(io.Discard, nil))}))
	t.Cleanup(srv.Close)
	res, _ := get(t, openAPI(t).Client(t, srv.Client().Transport), "GET", srv.URL+"/account/signin")
	if res.StatusCode != 404 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
}
