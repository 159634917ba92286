package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/acme/accounts/api"
	"github.com/acme/accounts/internal/auth"
	httpapi "github.com/acme/accounts/internal/http"
	"github.com/acme/accounts/internal/metrics"
	"github.com/acme/accounts/internal/oascheck"
	"github.com/acme/accounts/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

const pw = "correct horse battery"

type env struct {
	*testdb.Kit
	srv *httptest.Server
	// client checks every exchange against api/openapi.yaml.
	client *http.Client
}

var (
	checkerOnce sync.Once
	checker     *oascheck.Checker
	checkerErr  error
)

// openAPI is the checker of every request and response the tests see: an
// undocumented status, header or field fails the test that saw it.
func openAPI(t *testing.T) *oascheck.Checker {
	t.Helper()
	checkerOnce.Do(func() {
		checker, checkerErr = oascheck.Load(api.OpenAPI, oascheck.Options{
			CloseObjects: true, CheckRequests: true,
			Unrouted: map[int]string{404: "NotFound", 405: "MethodNotAllowed", 200: "Preflight"},
			Shared:   map[int]string{500: "InternalError", 503: "ServiceUnavailable"},
		})
	})
	if checkerErr != nil {
		t.Fatalf("api/openapi.yaml: %v", checkerErr)
	}
	return checker
}

type envOptions struct {
	kit     testdb.KitOptions
	ready   func(context.Context) error
	proxies []string
	cors    []string
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	k := testdb.NewKit(t, o.kit)
	ready := o.ready
	if ready == nil {
		ready = k.Store.Ping
	}
	reg := metrics.New()
	if err := reg.Watch(nil, k.Service); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.NewServer(httpapi.Deps{Log: k.Log, Service: k.Service, Keys: k.Keys, Ready: ready,
		TrustedProxies: o.proxies, CORSOrigins: o.cors, Metrics: reg, Issuer: testdb.Issuer}))
	t.Cleanup(srv.Close)
	return &env{Kit: k, srv: srv, client: openAPI(t).Client(t, srv.Client().Transport)}
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// req sends a request; body is JSON-encoded unless it is a string (sent as is).
// hdr are header pairs; "Content-Type" defaults to application/json when there is a body.
func (e *env) req(t *testing.T, method, path string, body any, hdr ...string) response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	hr, err := http.NewRequest(method, e.srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			hr.Header.Del(hdr[i])
		} else {
			hr.Header.Add(hdr[i], hdr[i+1])
		}
	}
	if len(hr.Header.Values("Content-Type")) > 1 {
		hr.Header.Set("Content-Type", hr.Header.Values("Content-Type")[1])
	}
	res, err := e.client.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if len(raw) > 0 && strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", method, path, raw)
		}
	}
	return out
}

func bearer(at string) []string { return []string{"Authorization", "Bearer " + at} }

// want checks a status and, for errors, the contract's error body.
func (r response) want(t *testing.T, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.raw)
	}
	if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("X-Request-Id") == "" {
		t.Fatalf("missing nosniff or X-Request-Id: %v", r.header)
	}
	if code == "" {
		return
	}
	if r.body["error"] != code {
		t.Fatalf("error = %v, want %s; body %s", r.body["error"], code, r.raw)
	}
	if d, _ := r.body["error_description"].(string); d == "" {
		t.Fatalf("error_description missing: %s", r.raw)
	}
}

func (r response) field(t *testing.T, name string) {
	t.Helper()
	f, _ := r.body["fields"].(map[string]any)
	if s, _ := f[name].(string); s == "" {
		t.Fatalf("fields.%s missing: %s", name, r.raw)
	}
}

func (r response) str(key string) string { s, _ := r.body[key].(string); return s }

func (e *env) signup(t *testing.T, email string) string {
	t.Helper()
	r := e.req(t, "POST", "/v1/signup", map[string]string{"email": email, "password": pw})
	r.want(t, 201, "")
	return r.str("id")
}

type tokens struct{ access, refresh string }

func (e *env) login(t *testing.T, email string) tokens {
	t.Helper()
	r := e.req(t, "POST", "/v1/login", map[string]string{"email": email, "password": pw})
	r.want(t, 200, "")
	return tokens{r.str("access_token"), r.str("refresh_token")}
}

func (e *env) makeAdmin(t *testing.T, email string) tokens {
	t.Helper()
	if _, err := e.Service.SetRole(context.Background(), email, auth.RoleAdmin, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	return e.login(t, email)
}

var errClosed = errors.New("database closed")
