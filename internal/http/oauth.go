package http

import (
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/acme/accounts/internal/auth"
)

// The OAuth 2.0 endpoints for standard clients: RFC 8414 metadata, the
// token endpoint (refresh_token grant only, RFC 6749 §5), revocation
// (RFC 7009) and introspection (RFC 7662). Requests are forms; answers and
// errors are RFC 6749 §5.2 JSON. The JSON API's sessions are underneath.

// oauthError is an RFC 6749 §5.2 error answer.
type oauthError struct {
	status int
	code   string
	msg    string
}

func (e *oauthError) Error() string { return e.msg }

func oauthBad(code, msg string) error { return &oauthError{http.StatusBadRequest, code, msg} }

var errInvalidClient = &oauthError{http.StatusUnauthorized, "invalid_client", "client authentication failed"}

// writeOAuthError answers an OAuth endpoint's error: its own codes in RFC
// 6749 §5.2 form, the service's other errors (429, 503, 413, 500) as
// everywhere else.
func writeOAuthError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var oe *oauthError
	var ve *auth.ValidationError
	switch {
	case errors.As(err, &oe):
	case errors.Is(err, auth.ErrInvalidClient):
		oe = errInvalidClient
	case errors.Is(err, auth.ErrInvalidGrant):
		oe = &oauthError{http.StatusBadRequest, "invalid_grant", "the refresh token is not valid for this client"}
	case errors.As(err, &ve):
		oe = &oauthError{http.StatusBadRequest, "invalid_request", ve.Error()}
	default:
		writeError(w, r, log, err)
		return
	}
	if oe.status == http.StatusUnauthorized {
		// RFC 6749 §5.2: a 401 names the scheme the client may use.
		w.Header().Set("WWW-Authenticate", `Basic realm="accounts"`)
	}
	writeJSON(w, oe.status, errorBody{Error: oe.code, Description: oe.msg})
}

// readForm reads an application/x-www-form-urlencoded body strictly: the
// media type (a charset is allowed), at most MaxBodyBytes, well-formed,
// and no parameter twice (RFC 6749 §3.2). The query string is ignored.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, oauthBad("invalid_request", "the body must be application/x-www-form-urlencoded")
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return nil, oauthBad("invalid_request", "the body must be application/x-www-form-urlencoded (UTF-8)")
		}
	}
	var form url.Values
	err = readBody(w, r, oauthBad("invalid_request", "the body could not be read"), func(b []byte) (err error) {
		form, err = url.ParseQuery(string(b))
		return err
	})
	var oe *oauthError
	if errors.As(err, &oe) || errors.Is(err, errTooLarge) {
		return nil, err
	}
	if err != nil {
		return nil, oauthBad("invalid_request", "the body is not a well-formed form")
	}
	for k, vs := range form {
		if len(vs) > 1 {
			return nil, oauthBad("invalid_request", "parameter "+describeKey(k)+" is given more than once")
		}
	}
	return form, nil
}

// clientCredentials reads how a request identifies its client: HTTP Basic
// (each half form-encoded before base64, RFC 6749 §2.3.1) or client_id
// (and client_secret) in the form, never both.
func clientCredentials(r *http.Request, form url.Values) (auth.ClientCredentials, error) {
	formID, hasFormID := form["client_id"]
	_, hasSecret := form["client_secret"]
	if h := r.Header.Values("Authorization"); len(h) > 0 {
		id, secret, ok := r.BasicAuth()
		if !ok || len(h) > 1 {
			return auth.ClientCredentials{}, errInvalidClient
		}
		uid, err1 := url.QueryUnescape(id)
		usecret, err2 := url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return auth.ClientCredentials{}, errInvalidClient
		}
		// RFC 6749 §2.3: one authentication method per request (a client_id
		// in the form that repeats Basic's is no second method).
		if hasSecret || hasFormID && formID[0] != uid {
			return auth.ClientCredentials{}, oauthBad("invalid_request", "the client is identified twice (HTTP Basic and the form)")
		}
		return auth.ClientCredentials{ID: uid, Secret: usecret}, nil
	}
	if !hasFormID {
		return auth.ClientCredentials{}, errInvalidClient
	}
	return auth.ClientCredentials{ID: formID[0], Secret: form.Get("client_secret")}, nil
}

// authenticateClient reads the form and the client, and authenticates it:
// before anything else of the request is looked at.
func authenticateClient(w http.ResponseWriter, r *http.Request, svc *auth.Service) (url.Values, auth.OAuthClient, error) {
	form, err := readForm(w, r)
	if err != nil {
		return nil, auth.OAuthClient{}, err
	}
	cred, err := clientCredentials(r, form)
	if err != nil {
		return nil, auth.OAuthClient{}, err
	}
	cl, err := svc.AuthenticateClient(r.Context(), cred)
	return form, cl, err
}

func handleOAuthMetadata(issuer string) http.HandlerFunc {
	base := strings.TrimRight(issuer, "/")
	methods := []string{"none", "client_secret_basic", "client_secret_post"}
	body := map[string]any{
		"issuer":                                        issuer,
		"token_endpoint":                                base + "/oauth/token",
		"revocation_endpoint":                           base + "/oauth/revoke",
		"introspection_endpoint":                        base + "/oauth/introspect",
		"jwks_uri":                                      base + "/.well-known/jwks.json",
		"grant_types_supported":                         []string{"refresh_token"},
		"response_types_supported":                      []string{},
		"token_endpoint_auth_methods_supported":         methods,
		"revocation_endpoint_auth_methods_supported":    methods,
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
	}
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		writeJSON(w, http.StatusOK, body)
	}
}

func handleOAuthToken(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		form, cl, err := authenticateClient(w, r, svc)
		if err != nil {
			writeOAuthError(w, r, log, err)
			return
		}
		switch gt := form.Get("grant_type"); gt {
		case "refresh_token":
		case "":
			writeOAuthError(w, r, log, oauthBad("invalid_request", "grant_type is required"))
			return
		default:
			writeOAuthError(w, r, log, oauthBad("unsupported_grant_type", "only the refresh_token grant is supported"))
			return
		}
		rt := form.Get("refresh_token")
		if rt == "" {
			writeOAuthError(w, r, log, oauthBad("invalid_request", "refresh_token is required"))
			return
		}
		pair, err := svc.RefreshAs(r.Context(), cl, rt, client(r))
		if err != nil {
			writeOAuthError(w, r, log, err)
			return
		}
		writeTokens(w, pair)
	}
}

func handleOAuthRevoke(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		form, cl, err := authenticateClient(w, r, svc)
		if err != nil {
			writeOAuthError(w, r, log, err)
			return
		}
		if err := svc.RevokeToken(r.Context(), cl, form.Get("token"), client(r)); err != nil {
			writeOAuthError(w, r, log, err)
			return
		}
		w.WriteHeader(http.StatusOK) // RFC 7009 §2.2: 200, whatever the token was
	}
}

func handleOAuthIntrospect(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	type active struct {
		Active    bool   `json:"active"`
		Subject   string `json:"sub"`
		ClientID  string `json:"client_id"`
		ExpiresAt int64  `json:"exp"`
		IssuedAt  int64  `json:"iat"`
		SessionID string `json:"sid"`
		Issuer    string `json:"iss"`
		Audience  string `json:"aud"`
		TokenType string `json:"token_type"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		form, cl, err := authenticateClient(w, r, svc)
		if err != nil {
			writeOAuthError(w, r, log, err)
			return
		}
		tok := form.Get("token")
		if tok == "" {
			writeOAuthError(w, r, log, oauthBad("invalid_request", "token is required"))
			return
		}
		in, err := svc.Introspect(r.Context(), cl, tok)
		if err != nil {
			writeOAuthError(w, r, log, err)
			return
		}
		if !in.Active {
			writeJSON(w, http.StatusOK, map[string]bool{"active": false})
			return
		}
		writeJSON(w, http.StatusOK, active{Active: true, Subject: in.Subject, ClientID: in.ClientID,
			ExpiresAt: in.ExpiresAt.Unix(), IssuedAt: in.IssuedAt.Unix(), SessionID: in.SessionID,
			Issuer: in.Issuer, Audience: in.Audience, TokenType: "Bearer"})
	}
}
