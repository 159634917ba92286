package http_test

import (
	"net/http"
	"testing"

	"net/http/httptest"

	httpapi "github.com/acme/accounts/internal/http"
	"github.com/acme/accounts/internal/testdb"
)

func TestCORS(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	preflight := func(srv *httptest.Server, origin string) *http.Response {
		req, _ := http.NewRequest("OPTIONS", srv.URL+"/v1/login", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		res, err := openAPI(t).Client(t, srv.Client().Transport).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	off := httptest.NewServer(httpapi.NewServer(httpapi.Deps{Log: k.Log, Service: k.Service, Keys: k.Keys, Ready: k.Store.Ping}))
	defer off.Close()
	if res := preflight(off, "https://app.example.com"); res.Header.Get("Access-Control-Allow-Origin") != "" || res.StatusCode != 405 {
		t.Fatalf("CORS off: %d, ACAO %q", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
	}
	on := httptest.NewServer(httpapi.NewServer(httpapi.Deps{Log: k.Log, Service: k.Service, Keys: k.Keys, Ready: k.Store.Ping,
		CORSOrigins: []string{"https://app.example.com"}}))
	defer on.Close()
	if res := preflight(on, "https://app.example.com"); res.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("listed origin: %d, ACAO %q", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
	}
	if res := preflight(on, "https://evil.example"); res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("unlisted origin allowed: %q", res.Header.Get("Access-Control-Allow-Origin"))
	}
	if res := preflight(on, "https://app.example.com"); res.Header.Get("Access-Control-Allow-Credentials") == "true" {
		t.Fatal("credentials mode must stay off")
	}
}
