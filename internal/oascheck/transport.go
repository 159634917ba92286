package oascheck

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Transport is an http.RoundTripper that validates every exchange and reports
// the problems with t.Errorf: the test goes on and fails at its end.
type Transport struct {
	T       testing.TB
	Checker *Checker
	Base    http.RoundTripper // nil: http.DefaultTransport
}

func (tr *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		if req.GetBody != nil { // http.NewRequest sets it for bytes/strings readers
			rc, gerr := req.GetBody()
			if gerr != nil {
				return nil, gerr
			}
			reqBody, err = io.ReadAll(rc)
			rc.Close()
		} else { // a streamed body: buffer it and send the copy (RoundTrip must not modify req)
			reqBody, err = io.ReadAll(req.Body)
			req.Body.Close()
			req = req.Clone(req.Context())
			req.Body = io.NopCloser(bytes.NewReader(reqBody))
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(reqBody)), nil }
		}
		if err != nil {
			return nil, err
		}
	}
	base := tr.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	problems := tr.Checker.Check(req.Context(), Exchange{
		Request: req, RequestBody: reqBody,
		Status: resp.StatusCode, Header: resp.Header, ResponseBody: respBody,
	})
	if len(problems) > 0 {
		tr.T.Errorf("OpenAPI: %s %s -> %d:\n  %s", req.Method, req.URL.RequestURI(), resp.StatusCode, strings.Join(problems, "\n  "))
	}
	return resp, nil
}

// Client returns a client that validates every exchange. base: nil, or
// srv.Client().Transport for an httptest server (needed for NewTLSServer).
func (c *Checker) Client(t testing.TB, base http.RoundTripper) *http.Client {
	return &http.Client{Transport: &Transport{T: t, Checker: c, Base: base}}
}

// Middleware validates on the server side: httptest.NewServer(c.Middleware(t, h)).
// It sees the headers the handler set, not those net/http adds (Date, sniffed Content-Type).
func (c *Checker) Middleware(t testing.TB, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqBody, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(reqBody))
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		problems := c.Check(r.Context(), Exchange{
			Request: r, RequestBody: reqBody,
			Status: rec.status, Header: w.Header().Clone(), ResponseBody: rec.body.Bytes(),
		})
		if len(problems) > 0 {
			t.Errorf("OpenAPI (server side): %s %s -> %d:\n  %s", r.Method, r.URL.RequestURI(), rec.status, strings.Join(problems, "\n  "))
		}
	})
}

type recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
