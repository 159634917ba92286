package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/testdb"
)

var enc = base64.RawURLEncoding

func craft(t *testing.T, header, claims map[string]any, sign func([]byte) []byte) string {
	return testdb.CraftJWT(t, header, claims, sign)
}

func TestVerifyRefusesForgedAndMalformedTokens(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{Leeway: 5 * time.Second})
	kid, priv := k.SigningKey(t)
	pub := priv.Public().(ed25519.PublicKey)
	now := k.Clock.Now()

	ours := func(b []byte) []byte { return ed25519.Sign(priv, b) }
	_, attacker, _ := ed25519.GenerateKey(rand.Reader)
	theirs := func(b []byte) []byte { return ed25519.Sign(attacker, b) }
	hs := func(secret []byte) func([]byte) []byte {
		return func(b []byte) []byte { m := hmac.New(sha256.New, secret); m.Write(b); return m.Sum(nil) }
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rs := func(b []byte) []byte {
		d := sha256.Sum256(b)
		s, _ := rsa.SignPKCS1v15(rand.Reader, rsaKey, 5, d[:]) // 5 = crypto.SHA256
		return s
	}

	header := func(mod map[string]any) map[string]any { return testdb.Header(kid, mod) }
	claims := func(mod map[string]any) map[string]any {
		return testdb.Claims(uuid.NewString(), uuid.NewString(), now, mod)
	}
	valid := craft(t, header(nil), claims(nil), ours)
	parts := strings.Split(valid, ".")
	tampered := func() string {
		c := claims(map[string]any{"role": "admin"})
		b, _ := json.Marshal(c)
		return parts[0] + "." + enc.EncodeToString(b) + "." + parts[2]
	}()
	// Change only the unused low bits of the last signature character.
	sig := []byte(parts[2])
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", sig[len(sig)-1])
	sig[len(sig)-1] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last^1]
	malleated := parts[0] + "." + parts[1] + "." + string(sig)

	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"valid token (control)", valid, true},
		{"typ AT+JWT", craft(t, header(map[string]any{"typ": "AT+JWT"}), claims(nil), ours), true},
		{"typ application/at+jwt", craft(t, header(map[string]any{"typ": "application/at+jwt"}), claims(nil), ours), true},
		{"expired within leeway", craft(t, header(nil), claims(map[string]any{"exp": now.Add(-2 * time.Second).Unix()}), ours), true},
		{"aud as a plain string", craft(t, header(nil), claims(map[string]any{"aud": testdb.Audience}), ours), true},
		{"aud array holding ours", craft(t, header(nil), claims(map[string]any{"aud": []string{"other", testdb.Audience}}), ours), true},

		{"alg none", craft(t, header(map[string]any{"alg": "none"}), claims(nil), nil), false},
		{"alg NONE", craft(t, header(map[string]any{"alg": "NONE"}), claims(nil), nil), false},
		{"HS256 keyed with the raw public key", craft(t, header(map[string]any{"alg": "HS256"}), claims(nil), hs(pub)), false},
		{"HS256 keyed with the public key PEM", craft(t, header(map[string]any{"alg": "HS256"}), claims(nil), hs(pubPEM)), false},
		{"HS256 keyed with the public key DER", craft(t, header(map[string]any{"alg": "HS256"}), claims(nil), hs(pubDER)), false},
		{"RS256 with our kid and an attacker key", craft(t, header(map[string]any{"alg": "RS256"}), claims(nil), rs), false},
		{"EdDSA by an attacker key with our kid", craft(t, header(nil), claims(nil), theirs), false},
		{"stripped signature", parts[0] + "." + parts[1] + ".", false},
		{"two segments", parts[0] + "." + parts[1], false},
		{"tampered payload", tampered, false},
		{"malleated signature bits", malleated, false},
		{"wrong iss", craft(t, header(nil), claims(map[string]any{"iss": "http://evil.example"}), ours), false},
		{"iss with a trailing slash", craft(t, header(nil), claims(map[string]any{"iss": testdb.Issuer + "/"}), ours), false},
		{"missing iss", craft(t, header(nil), claims(map[string]any{"iss": nil}), ours), false},
		{"wrong aud", craft(t, header(nil), claims(map[string]any{"aud": []string{"other"}}), ours), false},
		{"missing aud", craft(t, header(nil), claims(map[string]any{"aud": nil}), ours), false},
		{"upper-cased aud", craft(t, header(nil), claims(map[string]any{"aud": strings.ToUpper(testdb.Audience)}), ours), false},
		{"typ missing", craft(t, header(map[string]any{"typ": nil}), claims(nil), ours), false},
		{"typ JWT", craft(t, header(map[string]any{"typ": "JWT"}), claims(nil), ours), false},
		{"typ refresh+jwt", craft(t, header(map[string]any{"typ": "refresh+jwt"}), claims(nil), ours), false},
		{"unknown kid", craft(t, header(map[string]any{"kid": "nope"}), claims(nil), theirs), false},
		{"path-like kid", craft(t, header(map[string]any{"kid": "../../../../dev/null"}), claims(nil), ours), false},
		{"SQL-like kid", craft(t, header(map[string]any{"kid": "x' UNION SELECT 'k'--"}), claims(nil), ours), false},
		{"numeric kid", craft(t, header(map[string]any{"kid": 7}), claims(nil), ours), false},
		{"missing kid", craft(t, header(map[string]any{"kid": nil}), claims(nil), ours), false},
		{"missing exp", craft(t, header(nil), claims(map[string]any{"exp": nil}), ours), false},
		{"exp as a string", craft(t, header(nil), claims(map[string]any{"exp": "9999999999"}), ours), false},
		{"expired beyond leeway", craft(t, header(nil), claims(map[string]any{"exp": now.Add(-10 * time.Second).Unix()}), ours), false},
		{"nbf in the future", craft(t, header(nil), claims(map[string]any{"nbf": now.Add(time.Hour).Unix()}), ours), false},
		{"iat in the future", craft(t, header(nil), claims(map[string]any{"iat": now.Add(time.Hour).Unix()}), ours), false},
		{"missing iat", craft(t, header(nil), claims(map[string]any{"iat": nil}), ours), false},
		{"missing jti", craft(t, header(nil), claims(map[string]any{"jti": nil}), ours), false},
		{"sub not a user id", craft(t, header(nil), claims(map[string]any{"sub": "admin"}), ours), false},
		{"sid missing", craft(t, header(nil), claims(map[string]any{"sid": nil}), ours), false},
		{"unknown role", craft(t, header(nil), claims(map[string]any{"role": "root"}), ours), false},
		{"crit header", craft(t, header(map[string]any{"crit": []string{"x-foo"}}), claims(nil), ours), false},
		{"jku header", craft(t, header(map[string]any{"jku": "http://127.0.0.1:1/jwks.json"}), claims(nil), ours), false},
		{"embedded jwk header", craft(t, header(map[string]any{"jwk": map[string]string{"kty": "OKP"}}), claims(nil), ours), false},
		{"oversized token", valid + strings.Repeat("A", auth.MaxTokenBytes), false},
		{"garbage", "not-a-token", false},
		{"empty", "", false},
		{"JSON serialization", `{"payload":"x","signatures":[]}`, false},
		{"five segments (JWE)", "a.b.c.d.e", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := k.Service.Tokens().Verify(context.Background(), tc.token)
			if tc.ok {
				if err != nil {
					t.Fatalf("Verify: %v, want success", err)
				}
				if p.JTI == "" || p.SessionID == "" || p.UserID == "" {
					t.Fatalf("principal incomplete: %+v", p)
				}
				return
			}
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("Verify: %v, want ErrInvalidToken", err)
			}
		})
	}
}

func TestIssuedTokenShape(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	uid, sid := uuid.NewString(), uuid.NewString()
	tokIssued, err := k.Service.Tokens().Issue(uid, sid, auth.RoleAdmin, time.Time{})
	tok := tokIssued.Token
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	var h map[string]any
	var c map[string]any
	hb, _ := enc.DecodeString(parts[0])
	cb, _ := enc.DecodeString(parts[1])
	if err := json.Unmarshal(hb, &h); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(cb, &c); err != nil {
		t.Fatal(err)
	}
	if h["typ"] != "at+jwt" || h["alg"] != "EdDSA" || h["kid"] == "" {
		t.Errorf("header = %v", h)
	}
	for _, claim := range []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "role"} {
		if _, ok := c[claim]; !ok {
			t.Errorf("claim %s missing from %v", claim, c)
		}
	}
	if c["sub"] != uid || c["sid"] != sid || c["role"] != "admin" || c["iss"] != testdb.Issuer {
		t.Errorf("claims = %v", c)
	}
	if exp, iat := c["exp"].(float64), c["iat"].(float64); exp-iat != (15 * time.Minute).Seconds() {
		t.Errorf("exp - iat = %v, want 900", exp-iat)
	}
	// Every token gets its own jti.
	seen := map[string]bool{}
	for range 200 {
		tokIssued, _ := k.Service.Tokens().Issue(uid, sid, auth.RoleUser, time.Time{})
		tok := tokIssued.Token
		p, err := k.Service.Tokens().Verify(context.Background(), tok)
		if err != nil {
			t.Fatal(err)
		}
		if seen[p.JTI] {
			t.Fatalf("jti %s issued twice", p.JTI)
		}
		seen[p.JTI] = true
	}
}

func TestOtherAlgorithms(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{auth.AlgES256, auth.AlgRS256, auth.AlgHS256} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			k := testdb.NewKit(t, testdb.KitOptions{Keys: func(c *auth.KeyConfig) {
				c.Alg = alg
				c.HMACSecret = []byte(strings.Repeat("s", 32))
			}})
			tokIssued, err := k.Service.Tokens().Issue(uuid.NewString(), uuid.NewString(), auth.RoleUser, time.Time{})
			tok := tokIssued.Token
			if err != nil {
				t.Fatal(err)
			}
			if _, err := k.Service.Tokens().Verify(context.Background(), tok); err != nil {
				t.Fatalf("Verify own %s token: %v", alg, err)
			}
			jwks := k.Keys.JWKS()
			if alg == auth.AlgHS256 {
				if len(jwks) != 0 {
					t.Fatalf("HS256 JWKS = %v, want empty", jwks)
				}
				return
			}
			if len(jwks) != 1 || jwks[0].Alg != alg || jwks[0].Use != "sig" {
				t.Fatalf("JWKS = %+v", jwks)
			}
		})
	}
	t.Run("short HS256 secret refused", func(t *testing.T) {
		_, err := auth.NewKeyRing(context.Background(), auth.KeyConfig{Alg: auth.AlgHS256, HMACSecret: []byte("short")}, nil, time.Now)
		if err == nil {
			t.Fatal("NewKeyRing accepted a 5-byte secret")
		}
	})
	t.Run("ES256 token refused by an EdDSA verifier", func(t *testing.T) {
		k := testdb.NewKit(t, testdb.KitOptions{})
		kid, _ := k.SigningKey(t)
		ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tok := craft(t, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": kid}, map[string]any{"sub": uuid.NewString()},
			func(b []byte) []byte { d := sha256.Sum256(b); s, _ := ecdsa.SignASN1(rand.Reader, ec, d[:]); return s })
		if _, err := k.Service.Tokens().Verify(context.Background(), tok); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("Verify: %v, want ErrInvalidToken", err)
		}
	})
}

func TestKeysSealedAtRest(t *testing.T) {
	t.Parallel()
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	k := testdb.NewKit(t, testdb.KitOptions{Keys: func(c *auth.KeyConfig) { c.KEK = kek }})
	var der []byte
	var sealed bool
	if err := k.Pool.QueryRow(context.Background(), `SELECT private_key, sealed FROM signing_keys`).Scan(&der, &sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := x509.ParsePKCS8PrivateKey(der); err == nil || !sealed {
		t.Fatal("the private key is stored in the clear")
	}
	tokIssued, err := k.Service.Tokens().Issue(uuid.NewString(), uuid.NewString(), auth.RoleUser, time.Time{})
	tok := tokIssued.Token
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Service.Tokens().Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	// The kid is bound as associated data: a sealed key moved to another kid does not open.
	var kid string
	_ = k.Pool.QueryRow(context.Background(), `SELECT kid FROM signing_keys`).Scan(&kid)
	if _, err := auth.OpenKey(kek, kid+"x", der); err == nil {
		t.Fatal("a sealed key opened under another kid")
	}
	if _, err := auth.OpenKey(kek, kid, der); err != nil {
		t.Fatalf("OpenKey: %v", err)
	}
}

// TestExpiredTokensLeaveTheCache: verified tokens are cached until they
// expire, and the sweep (every minute in Run) drops them then, so that the
// cache holds the live tokens, not every token seen until it is full.
func TestExpiredTokensLeaveTheCache(t *testing.T) {
	t.Parallel()
	k := testdb.NewKit(t, testdb.KitOptions{})
	tokens := k.Service.Tokens()
	verify := func(n int) {
		for range n {
			it, err := tokens.Issue(uuid.NewString(), uuid.NewString(), auth.RoleUser, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tokens.Verify(context.Background(), it.Token); err != nil {
				t.Fatal(err)
			}
		}
	}
	verify(50)
	if n := tokens.CachedTokens(); n != 50 {
		t.Fatalf("%d cached, want 50", n)
	}
	k.Clock.Advance(10 * time.Minute)
	verify(20)
	tokens.SweepCache()
	if n := tokens.CachedTokens(); n != 70 {
		t.Fatalf("%d cached after a sweep with none expired, want 70", n)
	}
	k.Clock.Advance(6 * time.Minute) // the first 50 (15 min) are past their exp, the 20 not
	tokens.SweepCache()
	if n := tokens.CachedTokens(); n != 20 {
		t.Fatalf("%d cached after the first 50 expired, want 20", n)
	}
}
