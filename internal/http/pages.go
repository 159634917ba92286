package http

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// accountPages serves the account pages under /account/ (ACCOUNT_PAGES).
func accountPages(d Deps) http.Handler {
	r := chi.NewRouter()
	return r
}
