package http

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strconv"

	"github.com/go-chi/chi/v5"
)

// The account pages: server-rendered HTML, one same-origin script and one
// stylesheet, all embedded. The pages hold no user data when served: the
// script fetches it from the JSON API with an access token it keeps in
// memory only (cookie mode, /v1/browser/*).

//go:embed pages/*.html pages/assets/*
var pagesFS embed.FS

// pageCSP is the pages' own policy, in place of the API's default-src 'none':
// same-origin script, style and fetch, no inline anything, forms post only
// here, no framing.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// accountPageTitles names every page under /account/ by its path segment;
// the sign-in page also answers /account/ itself.
var accountPageTitles = map[string]string{
	"signin": "Sign in",
	"signup": "Create an account",
	"forgot": "Forgot your password",
	"reset":  "Choose a new password",
	"verify": "Verify your email address",
	"email":  "Confirm your new email address",
	"deny":   "This wasn't me",
	"me":     "Your account",
}

// asset is an embedded file with the version its URL carries.
type asset struct {
	body        []byte
	contentType string
	version     string
}

// pageData is what the templates see.
type pageData struct {
	Page, Title string
	// Path is the requested path, on the 404 page only.
	Path          string
	CSS, JS, Icon string
}

type accountSite struct {
	pages    map[string][]byte // rendered once: they hold nothing of the request
	notFound *template.Template
	assets   map[string]asset
	urls     map[string]string // asset name -> versioned URL
}

var assetTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
}

func loadAccountSite() (*accountSite, error) {
	s := &accountSite{pages: map[string][]byte{}, assets: map[string]asset{}, urls: map[string]string{}}
	files, err := fs.Glob(pagesFS, "pages/assets/*")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		b, err := pagesFS.ReadFile(f)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		name := path.Base(f)
		a := asset{body: b, contentType: assetTypes[path.Ext(name)], version: hex.EncodeToString(sum[:6])}
		if a.contentType == "" {
			continue
		}
		s.assets[name] = a
		s.urls[name] = "/account/assets/" + name + "?v=" + a.version
	}
	layout, err := template.ParseFS(pagesFS, "pages/layout.html")
	if err != nil {
		return nil, err
	}
	parse := func(name string) (*template.Template, error) {
		t, err := layout.Clone()
		if err != nil {
			return nil, err
		}
		return t.ParseFS(pagesFS, "pages/"+name+".html")
	}
	for name := range accountPageTitles {
		t, err := parse(name)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, "layout", s.data(name)); err != nil {
			return nil, err
		}
		s.pages[name] = buf.Bytes()
	}
	if s.notFound, err = parse("notfound"); err != nil {
		return nil, err
	}
	return s, nil
}

// accountPages serves the account pages under /account/ (ACCOUNT_PAGES).
// Only GET (and HEAD) are served; anything else is the API's 405, and a path
// deeper than one segment (but the assets) the API's 404.
func accountPages(d Deps) http.Handler {
	site, err := loadAccountSite()
	if err != nil {
		panic("account pages: " + err.Error()) // the embedded files are part of the build
	}
	r := chi.NewRouter()
	r.Use(pageHeaders)
	r.Get("/", func(w http.ResponseWriter, r *http.Request) { writePage(w, http.StatusOK, site.pages["signin"]) })
	r.Get("/{page}", func(w http.ResponseWriter, r *http.Request) {
		b, ok := site.pages[chi.URLParam(r, "page")]
		if !ok {
			site.serveNotFound(w, r)
			return
		}
		writePage(w, http.StatusOK, b)
	})
	r.Get("/assets/{file}", site.serveAsset)
	return r
}

// pageHeaders go on every response under /account/, the API's 404 and 405
// included. X-Frame-Options (for browsers that predate frame-ancestors)
// goes on what the pages themselves answer.
func pageHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", pageCSP)
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func (s *accountSite) data(name string) pageData {
	return pageData{Page: name, Title: accountPageTitles[name], CSS: s.urls["app.css"], JS: s.urls["app.js"], Icon: s.urls["icon.svg"]}
}

// serveNotFound answers an unknown page or asset with the HTML 404, which
// names the path (escaped, as everything html/template writes).
func (s *accountSite) serveNotFound(w http.ResponseWriter, r *http.Request) {
	d := s.data("notfound")
	d.Title, d.Path = "Page not found", r.URL.Path
	var buf bytes.Buffer
	if err := s.notFound.ExecuteTemplate(&buf, "layout", d); err != nil {
		// The template is fixed at build time and its data are strings:
		// this cannot fail but on a bug the page tests catch.
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal_error", Description: "internal error"})
		return
	}
	writePage(w, http.StatusNotFound, buf.Bytes())
}

func writePage(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// serveAsset serves an embedded asset: cacheable for a year when the URL
// names its current version (?v=, as the pages link it), else revalidated
// on every use, so that a stale copy never outlives a deploy.
func (s *accountSite) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := s.assets[chi.URLParam(r, "file")]
	if !ok {
		s.serveNotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("X-Frame-Options", "DENY")
	if r.URL.Query().Get("v") == a.version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	h.Set("Content-Length", strconv.Itoa(len(a.body)))
	_, _ = w.Write(a.body)
}
