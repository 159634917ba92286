package http

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/acme/accounts/api"
	"github.com/acme/accounts/internal/auth"
)

type userView struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

func viewUser(u auth.User) userView {
	return userView{ID: u.ID, Email: u.Email, Role: u.Role, CreatedAt: u.CreatedAt.UTC()}
}

type tokenView struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
}

func writeTokens(w http.ResponseWriter, p auth.TokenPair) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, tokenView{AccessToken: p.AccessToken, TokenType: "Bearer",
		ExpiresIn: p.ExpiresIn, RefreshToken: p.RefreshToken})
}

// jsonHandler decodes a JSON body of type T and hands it to h; the error
// h returns (before writing anything) is answered by writeError.
func jsonHandler[T any](log *slog.Logger, h func(http.ResponseWriter, *http.Request, T) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := readJSON[T](w, r)
		if err == nil {
			err = h(w, r, req)
		}
		if err != nil {
			writeError(w, r, log, err)
		}
	}
}

// noContent answers 204 unless err.
func noContent(w http.ResponseWriter, err error) error {
	if err == nil {
		w.WriteHeader(http.StatusNoContent)
	}
	return err
}

type credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func handleSignup(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	return jsonHandler(log, func(w http.ResponseWriter, r *http.Request, req credentials) error {
		u, err := svc.Signup(r.Context(), req.Email, req.Password, client(r))
		if err == nil {
			writeJSON(w, http.StatusCreated, viewUser(u))
		}
		return err
	})
}

// handleLogin opens a session; write answers with its tokens (the JSON
// API's body, or cookie mode's cookie).
func handleLogin(log *slog.Logger, svc *auth.Service, write func(http.ResponseWriter, auth.TokenPair)) http.HandlerFunc {
	return jsonHandler(log, func(w http.ResponseWriter, r *http.Request, req credentials) error {
		pair, err := svc.Login(r.Context(), req.Email, req.Password, client(r))
		if err == nil {
			write(w, pair)
		}
		return err
	})
}

func handleRefresh(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	type request struct {
		RefreshToken string `json:"refresh_token"`
	}
	return jsonHandler(log, func(w http.ResponseWriter, r *http.Request, req request) error {
		pair, err := svc.Refresh(r.Context(), req.RefreshToken, client(r))
		if err == nil {
			writeTokens(w, pair)
		}
		return err
	})
}

func handleLogout(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := svc.Logout(r.Context(), principal(r), client(r)); err != nil {
			writeError(w, r, log, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func handleLogoutAll(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := svc.LogoutAll(r.Context(), principal(r), client(r)); err != nil {
			writeError(w, r, log, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func handleMe(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	type meView struct {
		userView
		EmailVerified bool    `json:"email_verified"`
		PendingEmail  *string `json:"pending_email"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := svc.Me(r.Context(), principal(r))
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		writeJSON(w, http.StatusOK, meView{userView: viewUser(u), EmailVerified: u.EmailVerified,
			PendingEmail: nullable(u.PendingEmail)})
	}
}

func handleSessions(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	type sessionView struct {
		ID         string    `json:"id"`
		CreatedAt  time.Time `json:"created_at"`
		LastUsedAt time.Time `json:"last_used_at"`
		ExpiresAt  time.Time `json:"expires_at"`
		UserAgent  string    `json:"user_agent"`
		IP         string    `json:"ip"`
		Current    bool      `json:"current"`
	}
	type response struct {
		Sessions []sessionView `json:"sessions"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		p := principal(r)
		ss, err := svc.Sessions(r.Context(), p)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		out := response{Sessions: make([]sessionView, len(ss))}
		for i, s := range ss {
			out.Sessions[i] = sessionView{ID: s.ID, CreatedAt: s.CreatedAt, LastUsedAt: s.LastUsedAt,
				ExpiresAt: s.ExpiresAt, UserAgent: s.UserAgent, IP: s.IP, Current: s.ID == p.SessionID}
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func handleDeleteSession(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := svc.EndSession(r.Context(), principal(r), chi.URLParam(r, "id"), client(r)); err != nil {
			writeError(w, r, log, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func handleChangePassword(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	type request struct {
		CurrentPassword string `json:"current_password"`
		NewPassword     string `json:"new_password"`
	}
	return jsonHandler(log, func(w http.ResponseWriter, r *http.Request, req request) error {
		return noContent(w, svc.ChangePassword(r.Context(), principal(r), req.CurrentPassword, req.NewPassword, client(r)))
	})
}

// handlePage serves a cursor-paged listing as {"<key>": [...], "next_cursor": ...}.
func handlePage[T, V any](log *slog.Logger, key string,
	list func(context.Context, auth.Principal, int, string) ([]T, string, error), view func(T) V) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		limit, cursor, err := page(r)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		items, next, err := list(r.Context(), principal(r), limit, cursor)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		out := make([]V, len(items))
		for i, it := range items {
			out[i] = view(it)
		}
		writeJSON(w, http.StatusOK, map[string]any{key: out, "next_cursor": nullable(next)})
	}
}

// page reads the listing parameters: limit (default auth.DefaultPageSize) and cursor. The
// query is parsed strictly (r.URL.Query would silently drop a malformed
// pair, such as one with a semicolon), and each parameter may appear once.
func page(r *http.Request) (int, string, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return 0, "", badRequest("malformed query string")
	}
	for _, k := range []string{"limit", "cursor"} {
		if len(q[k]) > 1 {
			return 0, "", auth.Invalid(k, "must be given once")
		}
	}
	limit := auth.DefaultPageSize
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil {
			return 0, "", auth.Invalid("limit", fmt.Sprintf("must be a whole number between 1 and %d", auth.MaxPageSize))
		}
		limit = n
	}
	return limit, q.Get("cursor"), nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

type eventView struct {
	ID        string         `json:"id"`
	Event     string         `json:"event"`
	CreatedAt time.Time      `json:"created_at"`
	UserID    *string        `json:"user_id"`
	SessionID *string        `json:"session_id"`
	IP        string         `json:"ip"`
	UserAgent string         `json:"user_agent"`
	RequestID string         `json:"request_id"`
	Detail    map[string]any `json:"detail"`
}

func viewEvent(e auth.Event) eventView {
	detail := e.Detail
	if detail == nil {
		detail = map[string]any{}
	}
	return eventView{ID: strconv.FormatInt(e.ID, 10), Event: e.Type, CreatedAt: e.At,
		UserID: nullable(e.UserID), SessionID: nullable(e.SessionID), IP: e.Client.IP,
		UserAgent: e.Client.UserAgent, RequestID: e.Client.RequestID, Detail: detail}
}

func handleAdminLogoutUser(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := svc.AdminLogoutUser(r.Context(), principal(r), chi.URLParam(r, "id"), client(r)); err != nil {
			writeError(w, r, log, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func handleHealthz() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

func handleReadyz(ready func(context.Context) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			w.Header().Set("Retry-After", "5")
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "service_unavailable", Description: "database unavailable"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

// handleOpenAPI serves api/openapi.yaml as this build embeds it.
func handleOpenAPI() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(api.OpenAPI)
	}
}

func handleJWKS(keys interface{ JWKS() []auth.JWK }) http.HandlerFunc {
	type response struct {
		Keys []auth.JWK `json:"keys"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		writeJSON(w, http.StatusOK, response{Keys: keys.JWKS()})
	}
}
