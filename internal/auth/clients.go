package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"regexp"
	"strings"
	"time"
)

// OAuth 2.0 clients (RFC 6749 §2) and what the OAuth endpoints do with
// them: refresh through /oauth/token, revocation (RFC 7009) and
// introspection (RFC 7662). The sessions, rotation, grace, reuse detection
// and revocation are the JSON API's own, underneath.

// ClientAccounts is the built-in public client: every session opened by
// /v1/login (and /v1/browser/login) belongs to it, and /v1/token/refresh
// refreshes as it. It always exists and cannot be removed.
const ClientAccounts = "accounts"

// ErrInvalidClient is a client that failed to authenticate: unknown, a
// wrong or missing secret, a secret sent for a public client, or a public
// client where only a confidential one may call.
var ErrInvalidClient = errors.New("invalid client")

// ErrClientExists is an AddClient for an id that is taken.
var ErrClientExists = errors.New("client exists")

// OAuthClient is a registered client.
type OAuthClient struct {
	ID           string
	Confidential bool
	// SecretHash is the SHA-256 of a confidential client's secret.
	SecretHash []byte
	CreatedAt  time.Time
}

// ClientCredentials is what a request presented to identify its client:
// an id and, for a confidential client, its secret (HTTP Basic or the
// form, already form-decoded).
type ClientCredentials struct {
	ID     string
	Secret string
}

var clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._~-]{0,63}$`)

// ValidClientID reports whether id may name a client: 1–64 of letters,
// digits, '.', '_', '~' and '-', starting with a letter or digit.
func ValidClientID(id string) bool { return clientIDPattern.MatchString(id) }

// Client events.
const (
	EventClientAdded   = "client_added"
	EventClientRemoved = "client_removed"
	EventTokenRevoked  = "token_revoked"
)

func hashClientSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// AddClient registers a client. A confidential one gets a secret, returned
// here and never again (only its hash is kept).
// Returns *ValidationError or ErrClientExists.
func (s *Service) AddClient(ctx context.Context, id string, confidential bool) (OAuthClient, string, error) {
	if !ValidClientID(id) {
		return OAuthClient{}, "", Invalid("id", "must be 1-64 letters, digits, '.', '_', '~' or '-', starting with a letter or digit")
	}
	cl := OAuthClient{ID: id, Confidential: confidential, CreatedAt: s.now()}
	var secret string
	if confidential {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return OAuthClient{}, "", err
		}
		secret = b64url.EncodeToString(raw)
		cl.SecretHash = hashClientSecret(secret)
	}
	if err := s.store.AddClient(ctx, cl); err != nil {
		return OAuthClient{}, "", err
	}
	s.record(ctx, Event{Type: EventClientAdded, Detail: map[string]any{"client_id": id, "confidential": confidential}})
	return cl, secret, nil
}

// ListClients lists the registered clients, the built-in one included.
func (s *Service) ListClients(ctx context.Context) ([]OAuthClient, error) {
	return s.store.ListClients(ctx)
}

// RemoveClient removes a client and ends its sessions (their refresh
// tokens and access tokens stop working at once).
// Returns ErrForbidden for the built-in client, or ErrNotFound.
func (s *Service) RemoveClient(ctx context.Context, id string) error {
	if id == ClientAccounts {
		return ErrForbidden
	}
	now := s.now()
	ended, err := s.store.RemoveClient(ctx, id, now)
	if err != nil {
		return err
	}
	for _, sid := range ended {
		s.revoke(Revocation{Kind: EndedSession, ID: sid, At: now})
	}
	s.record(ctx, Event{Type: EventClientRemoved, Detail: map[string]any{"client_id": id, "sessions_ended": len(ended)}})
	return nil
}

// AuthenticateClient checks a request's client credentials: the built-in
// client and any public one by id alone (an empty secret, as HTTP Basic
// with an empty password sends, is no secret), a confidential one by its
// secret too. Returns ErrInvalidClient.
func (s *Service) AuthenticateClient(ctx context.Context, cred ClientCredentials) (OAuthClient, error) {
	if !ValidClientID(cred.ID) {
		return OAuthClient{}, ErrInvalidClient
	}
	if cred.ID == ClientAccounts { // built in: no look-up on the first-party app's path
		if cred.Secret != "" {
			return OAuthClient{}, ErrInvalidClient
		}
		return OAuthClient{ID: ClientAccounts}, nil
	}
	cl, err := s.store.ClientByID(ctx, cred.ID)
	if errors.Is(err, ErrNotFound) {
		return OAuthClient{}, ErrInvalidClient
	}
	if err != nil {
		return OAuthClient{}, err
	}
	switch {
	case cl.Confidential && (cred.Secret == "" ||
		subtle.ConstantTimeCompare(hashClientSecret(cred.Secret), cl.SecretHash) != 1):
		return OAuthClient{}, ErrInvalidClient
	case !cl.Confidential && cred.Secret != "":
		return OAuthClient{}, ErrInvalidClient
	}
	return cl, nil
}

// RefreshAs is Refresh for a client: a refresh token presented by any
// client but the one its session belongs to is ErrInvalidGrant, and
// nothing changes (the check comes before the rotation).
// Returns *ValidationError or ErrInvalidGrant.
func (s *Service) RefreshAs(ctx context.Context, cl OAuthClient, token string, c Client) (TokenPair, error) {
	return s.refresh(ctx, cl.ID, token, c)
}

// sessionClient is the client a session belongs to (it never changes).
// Returns ErrNotFound.
func (s *Service) sessionClient(ctx context.Context, sid string) (string, error) {
	if id, ok := s.sessionClients.get(sid); ok {
		return id, nil
	}
	id, err := s.store.SessionClient(ctx, sid)
	if err != nil {
		return "", err
	}
	s.sessionClients.put(sid, id)
	return id, nil
}

// Introspection is what RFC 7662 introspection says of a token.
type Introspection struct {
	Active    bool
	Subject   string
	ClientID  string
	SessionID string
	IssuedAt  time.Time
	ExpiresAt time.Time
	Issuer    string
	Audience  string
}

// Introspect tells a confidential client whether an access token of this
// issuer is live (signature, claims and the revocation check, as every
// request): anything else, refresh tokens included, is inactive.
// Returns ErrInvalidClient for a public client.
func (s *Service) Introspect(ctx context.Context, cl OAuthClient, token string) (Introspection, error) {
	if !cl.Confidential {
		return Introspection{}, ErrInvalidClient
	}
	if strings.Count(token, ".") != 2 {
		return Introspection{}, nil // never a refresh token
	}
	p, err := s.Authenticate(ctx, token)
	if errors.Is(err, ErrInvalidToken) {
		return Introspection{}, nil
	}
	if err != nil {
		return Introspection{}, err
	}
	return Introspection{Active: true, Subject: p.UserID, ClientID: clientOf(p), SessionID: p.SessionID,
		IssuedAt: p.IssuedAt, ExpiresAt: p.ExpiresAt, Issuer: s.tokens.issuer, Audience: s.tokens.audience}, nil
}

// clientOf is the client an access token was issued to; tokens of
// releases before client_id were all the built-in client's.
func clientOf(p Principal) string {
	if p.ClientID == "" {
		return ClientAccounts
	}
	return p.ClientID
}

// RevokeToken is RFC 7009 revocation by a client: a refresh token of the
// calling client ends its session; an access token of the calling client
// stops working. Anything else (unknown, already dead, another client's)
// is left alone, and the answer is the same.
// Returns *ValidationError.
func (s *Service) RevokeToken(ctx context.Context, cl OAuthClient, token string, c Client) error {
	if token == "" {
		return Invalid("token", "is required")
	}
	if strings.Count(token, ".") == 2 {
		p, err := s.tokens.Verify(ctx, token)
		if err != nil || clientOf(p) != cl.ID {
			return nil
		}
		if err := s.store.RevokeAccessToken(ctx, p.JTI, p.ExpiresAt); err != nil {
			return err
		}
		s.revoke(Revocation{Kind: RevokedJTI, ID: p.JTI, At: p.ExpiresAt})
		s.record(ctx, Event{Type: EventTokenRevoked, UserID: p.UserID, SessionID: p.SessionID, Client: c,
			Detail: map[string]any{"client_id": cl.ID, "token_type": "access_token"}})
		return nil
	}
	owner, ended, err := s.endSessionOf(ctx, cl.ID, token)
	if err != nil || !ended {
		return err
	}
	s.record(ctx, Event{Type: EventTokenRevoked, UserID: owner.UserID, SessionID: owner.SessionID, Client: c,
		Detail: map[string]any{"client_id": cl.ID, "token_type": "refresh_token"}})
	return nil
}

// SessionOwner is the session a live refresh token belongs to.
type SessionOwner struct {
	SessionID string
	UserID    string
	ClientID  string
}
