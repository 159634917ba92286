package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	jwxjwt "github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/time/rate"

	"github.com/acme/accounts/internal/testdb"
)

// Standard OAuth clients and resource-server verifiers nobody here wrote,
// against a running server: golang.org/x/oauth2, keyfunc with golang-jwt,
// jwx; openid-client, oauth4webapi and jose in TestNodeClients.

// fixedPortServer starts a server whose JWT_ISSUER is its own base URL
// (clients compare the issuer exactly), on a port picked beforehand.
func fixedPortServer(t *testing.T, vars map[string]string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	vars["ADDR"] = addr
	if vars["JWT_ISSUER"] == "" {
		vars["JWT_ISSUER"] = "http://" + addr
	}
	base := startServer(t, vars)
	if base != "http://"+addr {
		t.Fatalf("server on %s, want %s", base, addr)
	}
	return base
}

func loginTokens(t *testing.T, base, email string) (access, refresh string) {
	t.Helper()
	creds := map[string]string{"email": email, "password": "correct horse battery"}
	if st, _ := call(t, "POST", base+"/v1/signup", "", creds); st != 201 && st != 409 {
		t.Fatalf("signup %d", st)
	}
	st, body := call(t, "POST", base+"/v1/login", "", creds)
	if st != 200 {
		t.Fatalf("login %d %v", st, body)
	}
	return body["access_token"].(string), body["refresh_token"].(string)
}

func addClientCLI(t *testing.T, vars map[string]string, id, kind string) string {
	t.Helper()
	out, errOut, err := cli(t, vars, "clients", "add", id, "--"+kind)
	if err != nil {
		t.Fatalf("clients add: %v %s", err, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

func TestClientsCommand(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"DATABASE_URL": testdb.URL(t)}
	secret := addClientCLI(t, vars, "billing-api", "confidential")
	if len(secret) != 43 {
		t.Fatalf("secret %q", secret)
	}
	if out, _, err := cli(t, vars, "clients", "add", "--public", "spa"); err != nil || !strings.Contains(out, "public client spa") {
		t.Fatalf("add public: %q %v", out, err)
	}
	out, _, err := cli(t, vars, "clients", "list")
	if err != nil || !strings.Contains(out, "accounts") || !strings.Contains(out, "billing-api") ||
		!strings.Contains(out, "confidential") || strings.Contains(out, secret) {
		t.Fatalf("list: %q %v", out, err)
	}
	for _, args := range [][]string{
		{"clients"}, {"clients", "add", "x"}, {"clients", "add", "x", "--public", "--confidential"},
		{"clients", "add", "../x", "--public"}, {"clients", "remove"}, {"clients", "frobnicate"}, {"clients", "list", "x"},
	} {
		if _, _, err := cli(t, vars, args...); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	if _, _, err := cli(t, vars, "clients", "add", "spa", "--public"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("a second add: %v", err)
	}
	if _, _, err := cli(t, vars, "clients", "remove", "accounts"); err == nil || !strings.Contains(err.Error(), "built-in") {
		t.Fatalf("remove accounts: %v", err)
	}
	if _, _, err := cli(t, vars, "clients", "remove", "nobody"); err == nil {
		t.Fatal("removed an unknown client")
	}
	if out, _, err := cli(t, vars, "clients", "remove", "billing-api"); err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("remove: %q %v", out, err)
	}
}

// lossyTransport forwards every request, and loses the answer of the
// first one whose Authorization is Basic (the server acted on it; the
// client never hears): x/oauth2's AuthStyleAutoDetect then retries the
// same refresh token with the credentials in the form.
type lossyTransport struct {
	next http.RoundTripper
	lost atomic.Bool
	sent atomic.Int32
}

func (l *lossyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	l.sent.Add(1)
	res, err := l.next.RoundTrip(r)
	if err == nil && strings.HasPrefix(r.Header.Get("Authorization"), "Basic ") && l.lost.CompareAndSwap(false, true) {
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return nil, errors.New("connection reset (the test lost the answer)")
	}
	return res, err
}

func TestGoOAuthClientAndVerifiers(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"DATABASE_URL": testdb.URL(t), "ACCESS_TOKEN_TTL": "2s", "IP_RATE_LIMIT": "0"}
	base := fixedPortServer(t, vars)
	ctx := context.Background()

	t.Run("TokenSource with AuthStyleInParams", func(t *testing.T) {
		_, rt := loginTokens(t, base, "params@example.com")
		conf := &oauth2.Config{ClientID: "accounts",
			Endpoint: oauth2.Endpoint{TokenURL: base + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
		cctx := context.WithValue(ctx, oauth2.HTTPClient, checkedClient(t, base))
		ts := conf.TokenSource(cctx, &oauth2.Token{RefreshToken: rt, Expiry: time.Now().Add(-time.Minute)})
		var seen []string
		for range 3 { // a 2 s token is within x/oauth2's 10 s expiry margin: each call refreshes
			tok, err := ts.Token()
			if err != nil {
				t.Fatal(err)
			}
			if st, _ := call(t, "GET", base+"/v1/me", tok.AccessToken, nil); st != 200 {
				t.Fatalf("me with a refreshed token: %d", st)
			}
			seen = append(seen, tok.RefreshToken)
		}
		if seen[0] == rt || seen[0] == seen[1] || seen[1] == seen[2] {
			t.Fatalf("the chain did not rotate: %v", seen)
		}
	})

	t.Run("AuthStyleAutoDetect retrying after a lost answer", func(t *testing.T) {
		_, rt := loginTokens(t, base, "autodetect@example.com")
		lossy := &lossyTransport{next: checkedClient(t, base).Transport}
		conf := &oauth2.Config{ClientID: "accounts", Endpoint: oauth2.Endpoint{TokenURL: base + "/oauth/token"}}
		cctx := context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: lossy})
		ts := conf.TokenSource(cctx, &oauth2.Token{RefreshToken: rt, Expiry: time.Now().Add(-time.Minute)})
		tok, err := ts.Token()
		if err != nil {
			t.Fatal(err)
		}
		if !lossy.lost.Load() || lossy.sent.Load() != 2 {
			t.Fatalf("lost %v after %d requests: the retry did not happen", lossy.lost.Load(), lossy.sent.Load())
		}
		// The retry presented the token the lost answer had spent: within the
		// grace window it got the same successor, and the session lives.
		if st, _ := call(t, "GET", base+"/v1/me", tok.AccessToken, nil); st != 200 {
			t.Fatalf("me: %d", st)
		}
		next, err := ts.Token()
		if err != nil {
			t.Fatalf("the chain broke after the retry: %v", err)
		}
		if st, _ := call(t, "GET", base+"/v1/me", next.AccessToken, nil); st != 200 {
			t.Fatalf("me after the next refresh: %d", st)
		}
	})

	t.Run("keyfunc and golang-jwt", func(t *testing.T) {
		at, _ := loginTokens(t, base, "keyfunc@example.com")
		c, err := verifyWithKeyfunc(ctx, base, "accounts", at)
		if err != nil {
			t.Fatal(err)
		}
		if c.ClientID != "accounts" || c.SessionID == "" || c.Subject == "" {
			t.Fatalf("claims %+v", c)
		}
		if _, err := verifyWithKeyfunc(ctx, base, "another-audience", at); err == nil {
			t.Fatal("a token for another audience verified")
		}
	})

	t.Run("jwx", func(t *testing.T) {
		at, _ := loginTokens(t, base, "jwx@example.com")
		sub, clientID, err := verifyWithJWX(ctx, base, "accounts", at)
		if err != nil {
			t.Fatal(err)
		}
		if sub == "" || clientID != "accounts" {
			t.Fatalf("sub %q client_id %q", sub, clientID)
		}
		if _, _, err := verifyWithJWX(ctx, base, "another-audience", at); err == nil {
			t.Fatal("a token for another audience verified")
		}
	})
}

// recipe: keyfunc
// AccessClaims are the claims of the service's access tokens (RFC 9068).
type AccessClaims struct {
	jwt.RegisteredClaims
	SessionID string `json:"sid"`
	Role      string `json:"role"`
	ClientID  string `json:"client_id"`
}

// verifyWithKeyfunc checks an access token with golang-jwt and keyfunc.
// In a real resource server, make the keyfunc.Keyfunc once (it fetches the
// JWKS at start, refreshes it hourly and on an unknown kid) and reuse it.
func verifyWithKeyfunc(ctx context.Context, issuer, audience, token string) (*AccessClaims, error) {
	k, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{issuer + "/.well-known/jwks.json"}, keyfunc.Override{
		// An unknown kid (a key rotated in) refetches at most once a
		// minute; the default waits five.
		RefreshUnknownKID: rate.NewLimiter(rate.Every(time.Minute), 1),
	})
	if err != nil {
		return nil, err
	}
	claims := &AccessClaims{}
	tok, err := jwt.ParseWithClaims(token, claims, k.Keyfunc,
		jwt.WithValidMethods([]string{"EdDSA"}), // JWT_ALG: never the token's own choice
		jwt.WithIssuer(issuer),                  // exact: JWT_ISSUER
		jwt.WithAudience(audience),              // JWT_AUDIENCE
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithLeeway(5*time.Second))
	if err != nil {
		return nil, err
	}
	// golang-jwt does not look at typ: RFC 9068 access tokens are at+jwt.
	if typ, _ := tok.Header["typ"].(string); !strings.EqualFold(typ, "at+jwt") {
		return nil, fmt.Errorf("typ %q is not at+jwt", typ)
	}
	if claims.ClientID == "" || claims.ID == "" || claims.Subject == "" {
		return nil, errors.New("client_id, jti or sub missing")
	}
	return claims, nil
}

// end recipe

// recipe: jwx
// verifyWithJWX checks an access token with lestrrat-go/jwx. In a real
// resource server, make the cache once; it refreshes in the background
// but not on an unknown kid: on that error, cache.Refresh and try again.
func verifyWithJWX(ctx context.Context, issuer, audience, token string) (sub, clientID string, err error) {
	jwksURL := issuer + "/.well-known/jwks.json"
	cache, err := jwk.NewCache(ctx, httprc.NewClient())
	if err != nil {
		return "", "", err
	}
	if err := cache.Register(ctx, jwksURL); err != nil { // fetches once, now
		return "", "", err
	}
	set, err := cache.CachedSet(jwksURL)
	if err != nil {
		return "", "", err
	}
	// jwx does not look at typ either.
	msg, err := jws.Parse([]byte(token))
	if err != nil {
		return "", "", err
	}
	if typ, _ := msg.Signatures()[0].ProtectedHeaders().Type(); !strings.EqualFold(typ, "at+jwt") {
		return "", "", fmt.Errorf("typ %q is not at+jwt", typ)
	}
	tok, err := jwxjwt.Parse([]byte(token), jwxjwt.WithKeySet(set), // keys by kid, each with its alg
		jwxjwt.WithValidate(true), jwxjwt.WithIssuer(issuer), jwxjwt.WithAudience(audience),
		jwxjwt.WithRequiredClaim("exp"), jwxjwt.WithRequiredClaim("iat"), jwxjwt.WithRequiredClaim("sub"),
		jwxjwt.WithRequiredClaim("jti"), jwxjwt.WithRequiredClaim("client_id"),
		jwxjwt.WithAcceptableSkew(5*time.Second))
	if err != nil {
		return "", "", err
	}
	sub, _ = tok.Subject()
	if err := tok.Get("client_id", &clientID); err != nil {
		return "", "", err
	}
	return sub, clientID, nil
}

// end recipe

// TestResourceServerRecipesAreTheTestedOnes holds docs/resource-servers.md
// to the code the tests run: every recipe block of this file and of
// e2e/resource-server.mjs appears there verbatim.
func TestResourceServerRecipesAreTheTestedOnes(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/resource-servers.md")
	if err != nil {
		t.Fatal(err)
	}
	for file, names := range map[string][]string{"oauth_clients_test.go": {"keyfunc", "jwx"},
		"../../e2e/resource-server.mjs": {"jose", "oauth4webapi"}} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			_, rest, ok := strings.Cut(string(src), "// recipe: "+name+"\n")
			block, _, ok2 := strings.Cut(rest, "// end recipe")
			if !ok || !ok2 {
				t.Fatalf("%s: no recipe %s", file, name)
			}
			if !strings.Contains(string(doc), strings.TrimSpace(block)) {
				t.Errorf("docs/resource-servers.md does not hold the %s recipe of %s as tested", name, filepath.Base(file))
			}
		}
	}
}

// TestNodeClients runs e2e/oauth-clients.mjs (openid-client, oauth4webapi,
// jose) against a running server, rotating the signing key halfway. It
// needs node and `npm ci --prefix e2e`; without them it is skipped, unless
// REQUIRE_NODE=1 (as .ci/run sets), which makes their absence a failure.
func TestNodeClients(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	_, modErr := os.Stat("../../e2e/node_modules/openid-client")
	if err != nil || modErr != nil {
		if os.Getenv("REQUIRE_NODE") == "1" {
			t.Fatalf("REQUIRE_NODE=1 but node (%v) or e2e/node_modules (%v) is missing: npm ci --prefix e2e", err, modErr)
		}
		t.Skip("SKIPPED: the Node OAuth clients need node and `npm ci --prefix e2e`")
	}
	db := testdb.URL(t)
	vars := map[string]string{"DATABASE_URL": db, "IP_RATE_LIMIT": "0"}
	base := fixedPortServer(t, vars)
	secret := addClientCLI(t, vars, "resource-api", "confidential")
	_, rt := loginTokens(t, base, "node@example.com")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "oauth-clients.mjs")
	cmd.Dir = "../../e2e"
	cmd.Env = append(os.Environ(), "ISSUER="+base, "AUDIENCE=accounts", "REFRESH_TOKEN="+rt,
		"CLIENT_ID=resource-api", "CLIENT_SECRET="+secret)
	stdin, _ := cmd.StdinPipe()
	runNode(t, cmd, func(line string) {
		if line != "ROTATE" {
			return
		}
		// A new signing key, used by an instance started after it; the
		// first instance learns it from the first token it meets, and its
		// JWKS (which the Node key set fetched before) then shows it.
		if _, errOut, err := cli(t, map[string]string{"DATABASE_URL": db}, "keys", "rotate"); err != nil {
			t.Fatalf("keys rotate: %v %s", err, errOut)
		}
		second := fixedPortServer(t, map[string]string{"DATABASE_URL": db, "JWT_ISSUER": base, "IP_RATE_LIMIT": "0"})
		at, _ := loginTokens(t, second, "node@example.com")
		if st, _ := call(t, "GET", base+"/v1/me", at, nil); st != 200 {
			t.Fatalf("the first instance refused a token of the new key: %d", st)
		}
		fmt.Fprintln(stdin, at)
	})
}

// runNode runs a script of e2e/ (cmd, its pipes not yet taken but stdin),
// handing each line it prints to onLine, and fails the test unless it
// exits cleanly having printed "all ok".
func runNode(t *testing.T, cmd *exec.Cmd, onLine func(string)) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		onLine(sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), stderr.String())
	}
	if !strings.Contains(out.String(), "all ok") {
		t.Fatalf("node did not finish:\n%s\n%s", out.String(), stderr.String())
	}
}
