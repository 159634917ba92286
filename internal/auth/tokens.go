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
	// ClientID is the OAuth client the session belongs to (RFC 9068 §2.2);
	// absent from tokens of releases before it (the built-in client's).
	ClientID string `json:"client_id,omitempty"`
}

type numericDate struct{ jwt.NumericDate }

func newDate(t time.Time) *numericDate { return &numericDate{*jwt.NewNumericDate(t)} }

// UnmarshalJSON takes a JSON number only, never a quoted one.
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

// DefaultMaxAccessTTL is the longest access-token lifetime a deployment
// gets without asking for more (RFC 6750 §5.3: one hour or less).
const DefaultMaxAccessTTL = time.Hour

// MaxTokenLife is the longest lifetime (exp − iat) of an access token that
// an instance whose own lifetime is ttl accepts: ttl, or DefaultMaxAccessTTL
// when that is longer. Instances of one deployment may run with different
// TTLs (a rolling deploy, a TTL lowered during an incident); each accepts
// the others' tokens up to this bound and remembers revocations and retired
// keys at least that long (RevocationWindow adds the leeway twice, key
// retention one reload more), so no token it accepts can outlive what it
// remembers. A token that lives longer than the bound is refused.
func MaxTokenLife(ttl time.Duration) time.Duration { return max(ttl, DefaultMaxAccessTTL) }

// RevocationWindow is how long an instance with access-token lifetime ttl
// and clock leeway must remember a revocation: the longest a token it
// accepts can live, plus the leeway on both its iat and its exp.
func RevocationWindow(ttl, leeway time.Duration) time.Duration { return MaxTokenLife(ttl) + 2*leeway }

// Tokens issues and verifies access tokens.
type Tokens struct {
	keys     *KeyRing
	issuer   string
	audience string
	ttl      time.Duration
	maxLife  time.Duration
	leeway   time.Duration
	now      func() time.Time
	parser   *jwt.Parser
	// verified caches tokens whose signature and claims passed, by their
	// exact bytes, until they expire: a repeat costs a map look-up instead
	// of a signature check. Revocation is checked apart, every time.
	verified *boundedMap[verifiedToken]
}

// NewTokens returns a token issuer and verifier. Verification accepts only
// ring.Alg(), requires exp, iat, iss, aud and typ at+jwt, checks exp, nbf
// and iat with leeway, and refuses tokens living longer than MaxTokenLife(ttl).
func NewTokens(ring *KeyRing, issuer, audience string, ttl, leeway time.Duration, now func() time.Time) *Tokens {
	return &Tokens{
		keys: ring, issuer: issuer, audience: audience, ttl: ttl, maxLife: MaxTokenLife(ttl), leeway: leeway, now: now,
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

// IssuedToken is a signed access token and the claims that time it.
type IssuedToken struct {
	Token     string
	IssuedAt  time.Time // iat, whole seconds
	ExpiresAt time.Time // exp, whole seconds
}

// ExpiresIn is the token's lifetime in whole seconds: exp − iat.
func (it IssuedToken) ExpiresIn() int { return int(it.ExpiresAt.Unix() - it.IssuedAt.Unix()) }

// errNoTimeLeft is a token that would expire the second it is issued: its
// session ends within that second.
var errNoTimeLeft = errors.New("issue token: the session ends within the second")

// Issue is IssueFor the built-in client.
func (t *Tokens) Issue(userID, sessionID, role string, notAfter time.Time) (IssuedToken, error) {
	return t.IssueFor(ClientAccounts, userID, sessionID, role, notAfter)
}

// IssueFor signs an access token for a user's session of a client,
// expiring after the TTL or at notAfter (when not zero), whichever comes
// first. It refuses claims that are not valid (a sub or sid that is not a
// UUID, an unknown role, a client id that cannot be one) and a token that
// would have no whole second to live.
func (t *Tokens) IssueFor(clientID, userID, sessionID, role string, notAfter time.Time) (IssuedToken, error) {
	switch {
	case !ValidClientID(clientID):
		return IssuedToken{}, errors.New("issue token: client_id is not a client id")
	case uuid.Validate(userID) != nil:
		return IssuedToken{}, errors.New("issue token: sub is not a user id")
	case uuid.Validate(sessionID) != nil:
		return IssuedToken{}, errors.New("issue token: sid is not a session id")
	case !ValidRole(role):
		return IssuedToken{}, fmt.Errorf("issue token: unknown role %q", role)
	}
	k := t.keys.signingKey()
	now := t.now()
	exp := now.Add(t.ttl)
	if !notAfter.IsZero() && notAfter.Before(exp) {
		exp = notAfter
	}
	iatDate, expDate := newDate(now), newDate(exp)
	if !expDate.After(iatDate.Time) {
		return IssuedToken{}, errNoTimeLeft
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return IssuedToken{}, fmt.Errorf("issue token: %w", err)
	}
	claims := &accessClaims{
		Issuer:    t.issuer,
		Subject:   userID,
		Audience:  jwt.ClaimStrings{t.audience},
		ExpiresAt: expDate,
		IssuedAt:  iatDate,
		NotBefore: iatDate,
		ID:        base64.RawURLEncoding.EncodeToString(jti),
		SID:       sessionID,
		Role:      role,
		ClientID:  clientID,
	}
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.alg), claims)
	tok.Header["kid"] = k.kid
	tok.Header["typ"] = "at+jwt"
	s, err := tok.SignedString(k.signer)
	if err != nil {
		return IssuedToken{}, fmt.Errorf("issue token: %w", err)
	}
	return IssuedToken{Token: s, IssuedAt: iatDate.Time, ExpiresAt: expDate.Time}, nil
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
	if claims.ExpiresAt.Sub(claims.IssuedAt.Time) > t.maxLife {
		// Issued by an instance with a longer TTL than this one remembers
		// revocations for: refused rather than trusted too long.
		return Principal{}, ErrInvalidToken
	}
	return Principal{
		UserID:    claims.Subject,
		SessionID: claims.SID,
		JTI:       claims.ID,
		Role:      claims.Role,
		IssuedAt:  claims.IssuedAt.Time,
		ExpiresAt: claims.ExpiresAt.Time,
		ClientID:  claims.ClientID,
	}, nil
}
