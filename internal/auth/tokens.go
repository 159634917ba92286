package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// MaxTokenBytes is the longest bearer token looked at; longer ones are refused unparsed.
const MaxTokenBytes = 8 << 10

// accessClaims are the claims of an access token (RFC 9068). Dates are
// numericDate so that only JSON numbers are taken (golang-jwt's own type
// also takes a quoted number).
type accessClaims struct {
	Issuer    string           `json:"iss,omitempty"`
	Subject   string           `json:"sub,omitempty"`
	Audience  jwt.ClaimStrings `json:"aud,omitempty"`
	ExpiresAt *numericDate     `json:"exp,omitempty"`
	NotBefore *numericDate     `json:"nbf,omitempty"`
	IssuedAt  *numericDate     `json:"iat,omitempty"`
	ID        string           `json:"jti,omitempty"`
	SID       string           `json:"sid"`
	Role      string           `json:"role"`
}

type numericDate struct{ jwt.NumericDate }

func newDate(t time.Time) *numericDate { return &numericDate{*jwt.NewNumericDate(t)} }

func (d *numericDate) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return errors.New("date is not a number")
	}
	return d.NumericDate.UnmarshalJSON(b)
}

func (d *numericDate) get() (*jwt.NumericDate, error) {
	if d == nil {
		return nil, nil
	}
	return &d.NumericDate, nil
}

func (c *accessClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt.get() }
func (c *accessClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.IssuedAt.get() }
func (c *accessClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.NotBefore.get() }
func (c *accessClaims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *accessClaims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *accessClaims) GetAudience() (jwt.ClaimStrings, error)       { return c.Audience, nil }

// Validate runs after the registered claims were checked (jwt.ClaimsValidator).
func (c *accessClaims) Validate() error {
	switch {
	case c.ID == "" || len(c.ID) > 64:
		return errors.New("jti missing")
	case c.IssuedAt == nil:
		return errors.New("iat missing")
	case uuid.Validate(c.Subject) != nil:
		return errors.New("sub is not a user id")
	case uuid.Validate(c.SID) != nil:
		return errors.New("sid is not a session id")
	case !ValidRole(c.Role):
		return errors.New("role unknown")
	}
	return nil
}

// Tokens issues and verifies access tokens.
type Tokens struct {
	keys     *KeyRing
	issuer   string
	audience string
	ttl      time.Duration
	leeway   time.Duration
	now      func() time.Time
	parser   *jwt.Parser
	// verified caches tokens whose signature and claims passed, by their
	// exact bytes, until they expire: a repeat costs a map look-up instead
	// of a signature check. Revocation is checked apart, every time.
	verified *boundedMap[verifiedToken]
}

// NewTokens returns a token issuer and verifier. Verification accepts only
// ring.Alg(), requires exp, iat, iss, aud and typ at+jwt, and checks exp, nbf
// and iat with leeway.
func NewTokens(ring *KeyRing, issuer, audience string, ttl, leeway time.Duration, now func() time.Time) *Tokens {
	return &Tokens{
		keys: ring, issuer: issuer, audience: audience, ttl: ttl, leeway: leeway, now: now,
		verified: newBoundedMap(maxCachedTokens, func(v verifiedToken) bool { return now().After(v.validTo) }),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{ring.Alg()}),
			jwt.WithIssuer(issuer),
			jwt.WithAudience(audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(leeway),
			jwt.WithStrictDecoding(),
			jwt.WithTimeFunc(now),
		),
	}
}

// TTL is the lifetime of an access token.
func (t *Tokens) TTL() time.Duration { return t.ttl }

// Issue signs an access token for a user's session, expiring after the
// TTL or at notAfter (when not zero), whichever comes first.
func (t *Tokens) Issue(userID, sessionID, role string, notAfter time.Time) (string, time.Time, error) {
	k := t.keys.signingKey()
	now := t.now()
	exp := now.Add(t.ttl)
	if !notAfter.IsZero() && notAfter.Before(exp) {
		exp = notAfter
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", time.Time{}, fmt.Errorf("issue token: %w", err)
	}
	claims := &accessClaims{
		Issuer:    t.issuer,
		Subject:   userID,
		Audience:  jwt.ClaimStrings{t.audience},
		ExpiresAt: newDate(exp),
		IssuedAt:  newDate(now),
		NotBefore: newDate(now),
		ID:        base64.RawURLEncoding.EncodeToString(jti),
		SID:       sessionID,
		Role:      role,
	}
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.alg), claims)
	tok.Header["kid"] = k.kid
	tok.Header["typ"] = "at+jwt"
	s, err := tok.SignedString(k.signer)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issue token: %w", err)
	}
	return s, claims.ExpiresAt.Time, nil
}

// forbiddenHeaders name key material or extensions we never act on (RFC 8725 §3.10, RFC 7515 §4.1.11).
var forbiddenHeaders = []string{"crit", "jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256"}

// Verify checks an access token's signature and claims, without the
// revocation check. Every failure is ErrInvalidToken.
func (t *Tokens) Verify(ctx context.Context, raw string) (Principal, error) {
	if raw == "" || len(raw) > MaxTokenBytes || strings.Count(raw, ".") != 2 {
		return Principal{}, ErrInvalidToken
	}
	if v, ok := t.verified.get(raw); ok {
		if t.now().After(v.validTo) {
			return Principal{}, ErrInvalidToken
		}
		return v.p, nil
	}
	p, err := t.parse(ctx, raw)
	if err != nil {
		return Principal{}, err
	}
	t.verified.put(raw, verifiedToken{p: p, validTo: p.ExpiresAt.Add(t.leeway)})
	return p, nil
}

// parse checks a token's signature and claims.
func (t *Tokens) parse(ctx context.Context, raw string) (Principal, error) {
	var claims accessClaims
	_, err := t.parser.ParseWithClaims(raw, &claims, func(tok *jwt.Token) (any, error) {
		typ, _ := tok.Header["typ"].(string)
		if !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
			return nil, errors.New("typ is not at+jwt")
		}
		for _, h := range forbiddenHeaders {
			if _, ok := tok.Header[h]; ok {
				return nil, fmt.Errorf("header %s not accepted", h)
			}
		}
		kid, ok := tok.Header["kid"].(string)
		if !ok || kid == "" || len(kid) > 128 {
			return nil, errors.New("kid missing")
		}
		k := t.keys.lookup(ctx, kid)
		if k == nil {
			return nil, errors.New("kid unknown")
		}
		// One algorithm per key; WithValidMethods already pinned it to the ring's.
		if tok.Method == nil || tok.Method.Alg() != k.alg {
			return nil, errors.New("alg does not match the key")
		}
		return k.public, nil
	})
	if err != nil {
		return Principal{}, ErrInvalidToken
	}
	return Principal{
		UserID:    claims.Subject,
		SessionID: claims.SID,
		JTI:       claims.ID,
		Role:      claims.Role,
		IssuedAt:  claims.IssuedAt.Time,
		ExpiresAt: claims.ExpiresAt.Time,
	}, nil
}
