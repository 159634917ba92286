package http

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/cors"

	"github.com/acme/accounts/internal/auth"
)

// Cookie mode (/v1/browser/*): the refresh token lives only in this
// cookie, out of JavaScript's reach. __Host- makes the browser refuse it
// unless it is Secure, has Path=/ and no Domain.
const refreshCookie = "__Host-accounts_rt"

// browserHeader is the custom header every cookie-mode request carries: a
// cross-origin page cannot send it without a CORS preflight, which only
// listed origins pass.
const browserHeader, browserHeaderValue = "X-Requested-With", "accounts"

// browserGuard refuses, before the body is read, a cookie-mode request
// that lacks the custom header or fails the cross-origin check (Go's
// CrossOriginProtection: Sec-Fetch-Site same-origin or none, else an
// Origin that is the service's own or listed). Preflights never get here:
// the CORS layer answers them.
func browserGuard(origins []string) func(http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	for _, o := range origins {
		// NewServer made each canonical; config checked each is an origin.
		if err := cop.AddTrustedOrigin(o); err != nil {
			panic(err)
		}
	}
	forbid := func(w http.ResponseWriter, why string) {
		writeJSON(w, http.StatusForbidden, errorBody{Error: "forbidden", Description: why})
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := cop.Check(r); err != nil {
				forbid(w, "cross-origin request refused: this origin may not use cookie mode")
				return
			}
			if r.Header.Get(browserHeader) != browserHeaderValue {
				forbid(w, "cookie mode requires the header X-Requested-With: accounts")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// canonicalOrigin is an origin as a browser sends it (RFC 6454 §6.1):
// scheme and host in lower case, no default port. CrossOriginProtection
// compares trusted origins exactly.
func canonicalOrigin(o string) string {
	u, err := url.Parse(o)
	if err != nil {
		return o
	}
	host := strings.ToLower(u.Host)
	switch scheme := strings.ToLower(u.Scheme); {
	case scheme == "https" && strings.HasSuffix(host, ":443"), scheme == "http" && strings.HasSuffix(host, ":80"):
		host = host[:strings.LastIndexByte(host, ':')]
	}
	return strings.ToLower(u.Scheme) + "://" + host
}

// browserCORS is CORS with credentials for the listed origins, on the
// cookie-mode endpoints only (the bearer API's CORS has no credentials).
func browserCORS(origins []string) func(http.Handler) http.Handler {
	return cors.Handler(cors.Options{
		AllowedOrigins:   origins,
		AllowedMethods:   []string{http.MethodPost},
		AllowedHeaders:   []string{"Content-Type", browserHeader, "X-Request-Id"},
		ExposedHeaders:   []string{"X-Request-Id", "Retry-After"},
		AllowCredentials: true,
		MaxAge:           600,
	})
}

// exceptBrowser applies mw to every path but the cookie-mode endpoints'.
func exceptBrowser(mw func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		wrapped := mw(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/v1/browser/") {
				next.ServeHTTP(w, r)
				return
			}
			wrapped.ServeHTTP(w, r)
		})
	}
}

type browserTokenView struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
}

// writeBrowserTokens answers a cookie-mode login or refresh: the access
// token in the body, the refresh token in the cookie only.
func writeBrowserTokens(w http.ResponseWriter, p auth.TokenPair) {
	http.SetCookie(w, &http.Cookie{Name: refreshCookie, Value: p.RefreshToken, Path: "/",
		MaxAge: max(p.RefreshExpiresIn, 1), HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	writeJSON(w, http.StatusOK, browserTokenView{AccessToken: p.AccessToken, TokenType: "Bearer", ExpiresIn: p.ExpiresIn})
}

func clearRefreshCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: refreshCookie, Value: "", Path: "/",
		MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// noBody refuses a body on an endpoint that takes none, unless it is JSON:
// cookie mode reads JSON bodies only.
func noBody(r *http.Request) error {
	if r.ContentLength != 0 && !jsonMediaType(r.Header.Get("Content-Type")) {
		return errMediaType
	}
	return nil
}

func handleBrowserRefresh(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := noBody(r); err != nil {
			writeError(w, r, log, err)
			return
		}
		token := ""
		if c, err := r.Cookie(refreshCookie); err == nil {
			token = c.Value
		}
		pair, err := auth.TokenPair{}, auth.ErrInvalidGrant
		if token != "" {
			pair, err = svc.Refresh(r.Context(), token, client(r))
		}
		var ve *auth.ValidationError
		if errors.Is(err, auth.ErrInvalidGrant) || errors.As(err, &ve) {
			clearRefreshCookie(w)
			writeError(w, r, log, auth.ErrInvalidGrant)
			return
		}
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		writeBrowserTokens(w, pair)
	}
}

func handleBrowserLogout(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := noBody(r); err != nil {
			writeError(w, r, log, err)
			return
		}
		if c, err := r.Cookie(refreshCookie); err == nil && c.Value != "" {
			// A database that does not answer keeps the cookie: the
			// session is still live, and a retry can end it.
			if err := svc.LogoutByRefreshToken(r.Context(), c.Value, client(r)); err != nil {
				writeError(w, r, log, err)
				return
			}
		}
		clearRefreshCookie(w)
		w.WriteHeader(http.StatusNoContent)
	}
}
