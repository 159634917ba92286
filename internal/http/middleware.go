package http

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/acme/accounts/internal/auth"
)

type ctxKey int

// requestKey holds the request's *requestInfo: one context value, made by
// withRequestID and filled in place by the middleware after it, so that
// each of them costs no request copy of its own.
const requestKey ctxKey = 0

// requestInfo is what the middleware learn about a request.
type requestInfo struct {
	id        string
	client    auth.Client // set by describeClient
	hasClient bool
	principal auth.Principal // set by requireAuth
}

func info(ctx context.Context) *requestInfo {
	i, _ := ctx.Value(requestKey).(*requestInfo)
	if i == nil {
		return &requestInfo{}
	}
	return i
}

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// withRequestID keeps the caller's X-Request-Id when it is 1–128 of
// [A-Za-z0-9._:-], else makes one, and echoes it on every response.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID.MatchString(id) {
			b := make([]byte, 16)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestKey, &requestInfo{id: id})))
	})
}

func requestID(ctx context.Context) string { return info(ctx).id }

// securityHeaders go on every response; nothing user-specific is cacheable.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		if strings.HasPrefix(r.URL.Path, "/v1/") || strings.HasPrefix(r.URL.Path, "/oauth/") {
			h.Set("Cache-Control", "no-store")
			h.Set("Pragma", "no-cache")
		}
		next.ServeHTTP(w, r)
	})
}

// hsts tells browsers to use HTTPS only, for two years.
func hsts(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		next.ServeHTTP(w, r)
	})
}

// recoverer turns a panic into a logged 500 in the contract's JSON.
func recoverer(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					log.ErrorContext(r.Context(), "panic", "request_id", requestID(r.Context()), "panic", v)
					writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal_error", Description: "internal error"})
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// logRequests writes one line per request, with the route pattern rather
// than the path (which can carry ids), and feeds the HTTP metrics.
func logRequests(log *slog.Logger, m Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			m.InFlight(1)
			defer m.InFlight(-1)
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			d := time.Since(start)
			m.Request(r.Method, route, status, d)
			log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("method", r.Method), slog.String("route", route), slog.Int("status", status),
				slog.Float64("duration_ms", float64(d.Microseconds())/1000), slog.String("request_id", requestID(r.Context())),
				slog.String("ip", middleware.GetClientIP(r.Context())))
		})
	}
}

// bearerToken reads the access token from the Authorization header, the
// only place one is accepted (never the query string).
func bearerToken(r *http.Request) (string, error) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return "", auth.ErrNoToken
	}
	if len(vals) > 1 {
		return "", auth.ErrInvalidToken
	}
	scheme, tok, _ := strings.Cut(vals[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", auth.ErrNoToken
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" || strings.ContainsAny(tok, " \t") || len(tok) > auth.MaxTokenBytes {
		return "", auth.ErrInvalidToken
	}
	return tok, nil
}

// requireAuth lets a request through only with a valid, unrevoked access token.
func requireAuth(svc *auth.Service, log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := authenticate(r, svc); err != nil {
				writeError(w, r, log, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// authenticate verifies the request's bearer token and records its
// principal for the handler and the request log.
func authenticate(r *http.Request, svc *auth.Service) (auth.Principal, error) {
	tok, err := bearerToken(r)
	if err != nil {
		return auth.Principal{}, err
	}
	p, err := svc.Authenticate(r.Context(), tok)
	if err != nil {
		return auth.Principal{}, err
	}
	info(r.Context()).principal = p
	return p, nil
}

func principal(r *http.Request) auth.Principal {
	return info(r.Context()).principal
}

// describeClient works out who the caller is once per request (the rate
// limit and the use case both need it). It runs after the client-IP
// middleware.
func describeClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := info(r.Context())
		i.client, i.hasClient = newClient(r), true
		next.ServeHTTP(w, r)
	})
}

// client describes the caller for sessions, the IP rate limits and the
// audit trail, as describeClient found it.
func client(r *http.Request) auth.Client {
	if i := info(r.Context()); i.hasClient {
		return i.client
	}
	return newClient(r)
}

func newClient(r *http.Request) auth.Client {
	ua := strings.ToValidUTF8(r.UserAgent(), "")
	ua = strings.ReplaceAll(ua, "\x00", "")
	if len(ua) > 512 {
		ua = strings.ToValidUTF8(ua[:512], "")
	}
	ip := middleware.GetClientIP(r.Context())
	if ip == "" {
		// A trusted proxy that sent no usable X-Forwarded-For: the proxy
		// itself is the client we can name.
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			ip = host
		}
	}
	return auth.Client{IP: ip, UserAgent: ua, RequestID: requestID(r.Context())}
}

// limitIP counts the request against its client IP and against all clients
// before anything else is done with it (IP_RATE_LIMIT, GLOBAL_RATE_LIMIT).
func limitIP(svc *auth.Service, log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := svc.AllowRequest(r.Context(), client(r)); err != nil {
				writeError(w, r, log, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

var methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions}

// methodNotAllowed answers 405 in JSON with the Allow header, which chi's
// default handler sets but a custom one must set itself.
func methodNotAllowed(mux chi.Routes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, m := range methods {
			if mux.Match(chi.NewRouteContext(), m, r.URL.Path) {
				allowed = append(allowed, m)
			}
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method_not_allowed",
			Description: "method " + strconv.Quote(r.Method) + " is not allowed here"})
	}
}

// withDeadline gives each request's context a deadline d from now.
func withDeadline(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}
