package http

import (
	"github.com/go-chi/chi/v5"
)

// addRoutes is the whole HTTP surface, as api/openapi.yaml describes it.
func addRoutes(r chi.Router, d Deps) {
	authed := requireAuth(d.Service, d.Log)
	limited := limitIP(d.Service, d.Log)

	r.Get("/healthz", handleHealthz())
	r.Get("/readyz", handleReadyz(d.Ready))
	r.Method("GET", "/metrics", d.Metrics.Handler())
	r.Get("/.well-known/jwks.json", handleJWKS(d.Keys))
	r.Get("/openapi.yaml", handleOpenAPI())
	r.Get("/.well-known/oauth-authorization-server", handleOAuthMetadata(d.Issuer))
	if d.AccountPages {
		r.Mount("/account", accountPages(d))
	}

	r.Route("/oauth", func(r chi.Router) {
		r.With(limited).Post("/token", handleOAuthToken(d.Log, d.Service))
		r.With(limited).Post("/revoke", handleOAuthRevoke(d.Log, d.Service))
		r.With(limited).Post("/introspect", handleOAuthIntrospect(d.Log, d.Service))
	})

	r.Route("/v1", func(r chi.Router) {
		r.With(limited).Post("/signup", handleSignup(d.Log, d.Service))
		r.With(limited).Post("/login", handleLogin(d.Log, d.Service, writeTokens))
		r.With(limited).Post("/token/refresh", handleRefresh(d.Log, d.Service))
		r.Route("/browser", func(r chi.Router) {
			if len(d.CORSOrigins) > 0 {
				r.Use(browserCORS(d.CORSOrigins))
			}
			r.Use(browserGuard(d.CORSOrigins))
			r.With(limited).Post("/login", handleLogin(d.Log, d.Service, writeBrowserTokens))
			r.With(limited).Post("/refresh", handleBrowserRefresh(d.Log, d.Service))
			r.Post("/logout", handleBrowserLogout(d.Log, d.Service))
		})

		r.With(authed).Post("/logout", handleLogout(d.Log, d.Service))
		r.With(authed).Post("/logout/all", handleLogoutAll(d.Log, d.Service))
		r.With(authed).Get("/me", handleMe(d.Log, d.Service))
		r.With(authed).Get("/sessions", handleSessions(d.Log, d.Service))
		r.With(authed).Delete("/sessions/{id}", handleDeleteSession(d.Log, d.Service))
		r.With(limited, authed).Post("/password", handleChangePassword(d.Log, d.Service))
		r.With(authed).Get("/me/events", handlePage(d.Log, "events", d.Service.MyEvents, viewEvent))

		r.With(limited).Post("/email/verification", handleRequestVerification(d.Log, d.Service))
		r.With(limited).Post("/email/verify", handleVerifyEmail(d.Log, d.Service))
		r.With(limited).Post("/password/forgot", handleForgotPassword(d.Log, d.Service))
		r.With(limited).Post("/password/reset", handleResetPassword(d.Log, d.Service))
		r.With(limited, authed).Post("/email/change", handleEmailChange(d.Log, d.Service))
		r.With(limited).Post("/email/change/confirm", handleConfirmEmailChange(d.Log, d.Service))
		r.With(limited).Post("/account/deny", handleDenyAccount(d.Log, d.Service))

		r.With(authed).Get("/admin/users", handlePage(d.Log, "users", d.Service.ListUsers, viewUser))
		r.With(authed).Post("/admin/users/{id}/logout", handleAdminLogoutUser(d.Log, d.Service))
		r.With(authed).Get("/admin/events", handlePage(d.Log, "events", d.Service.AllEvents, viewEvent))
	})
}
