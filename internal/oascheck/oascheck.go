// Package oascheck validates the HTTP requests and responses seen in tests
// against the service's OpenAPI 3.1 document with kin-openapi's openapi3filter,
// and adds what the library leaves out: undocumented response headers and query
// parameters, a body on a response that declares no content, undocumented JSON
// fields (CloseObjects), the headers every response carries (the document's
// info.x-response-headers), and the responses "described once and shared" in
// components/responses for paths and methods the document does not list.
//
// It is test support, like testdb: only tests import it. It imports nothing
// of ours.
package oascheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Options tune the checks.
type Options struct {
	// CloseObjects adds additionalProperties:false to every object schema that
	// declares properties and leaves additional properties unsaid, so that
	// undocumented JSON fields fail in tests (see CloseObjects).
	CloseObjects bool
	// CheckRequests validates requests too: path, query, headers, body.
	// ResponsesOnly() gives a Checker without it, for malformed requests sent on purpose.
	CheckRequests bool
	// TransportHeaders are allowed on any response; nil means DefaultTransportHeaders.
	TransportHeaders []string
	// Unrouted: status -> components/responses name, for answers to requests
	// that match no path or no method, e.g. {404: "NotFound", 405: "MethodNotAllowed"}.
	Unrouted map[int]string
	// Shared: status -> components/responses name, for statuses any operation
	// may answer although it does not list them (say 413 from a size limit in front of everything).
	Shared map[int]string
}

// DefaultTransportHeaders are written by net/http, not by the contract.
var DefaultTransportHeaders = []string{"Content-Type", "Content-Length", "Date", "Transfer-Encoding", "Connection"}

// Checker is safe for concurrent use: load it once per test binary.
type Checker struct {
	opts      Options
	doc       *openapi3.T
	router    routers.Router
	reqOpts   *openapi3filter.Options
	respOpts  *openapi3filter.Options
	allowAny  map[string]bool
	checkReqs bool
	// every and v1 are the headers the document's info.x-response-headers
	// says every response (every one under /v1/ and /oauth/) carries.
	every, v1 []string
}

// responseHeaders is info.x-response-headers.
type responseHeaders struct {
	Every     []string `json:"every"`
	V1        []string `json:"v1"`
	Sometimes []string `json:"sometimes"`
}

var setupOnce sync.Once

// setup closes kin-openapi's gaps. It changes package-level registries of
// kin-openapi, so it runs once for the whole test binary.
func setup() {
	// Only date, date-time, byte, int32, int64 formats are asserted by default.
	openapi3.DefineStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562))
	openapi3.DefineStringFormatValidator("email", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail))
	openapi3.DefineIPv4Format()
	openapi3.DefineIPv6Format()
	// No decoder is registered for text/html: a text/html media type with a schema would fail to decode.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	// The form decoder keeps only the declared properties, so additionalProperties:false
	// never sees an unknown field. Put the unknown fields back.
	openapi3filter.RegisterBodyDecoder("application/x-www-form-urlencoded",
		func(body io.Reader, h http.Header, s *openapi3.SchemaRef, enc openapi3filter.EncodingFn) (any, error) {
			raw, err := io.ReadAll(body)
			if err != nil {
				return nil, err
			}
			v, err := openapi3filter.UrlencodedBodyDecoder(bytes.NewReader(raw), h, s, enc)
			if err != nil {
				return nil, err
			}
			values, err := url.ParseQuery(string(raw))
			if err != nil {
				return nil, err
			}
			if obj, ok := v.(map[string]any); ok {
				for k, vs := range values {
					if _, known := obj[k]; !known {
						obj[k] = vs[0]
					}
				}
			}
			return v, nil
		})
}

// Load parses the document (YAML or JSON), validates it and builds the router.
func Load(spec []byte, opts Options) (*Checker, error) {
	setupOnce.Do(setup)
	const path = "openapi.yaml"
	var err error
	if opts.CloseObjects {
		if spec, err = CloseObjects(spec); err != nil {
			return nil, fmt.Errorf("close objects: %w", err)
		}
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromDataWithPath(spec, &url.URL{Path: path})
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("%s does not validate: %w", path, err)
	}
	// gorillamux matches the servers' scheme and host: httptest listens on
	// 127.0.0.1:<random>, not on servers[0]. Match the path only.
	doc.Servers = nil
	for _, p := range doc.Paths.Map() {
		p.Servers = nil
	}
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	short := func(o *openapi3filter.Options) *openapi3filter.Options {
		// Schema errors without the schema and value dumps: "at /path: reason".
		o.WithCustomSchemaErrorFunc(func(e *openapi3.SchemaError) string {
			if e.Unwrap() != nil && e.Origin == nil { // from the 2020-12 validator: Reason names the path
				return e.Reason
			}
			return fmt.Sprintf("at '/%s': %s", strings.Join(e.JSONPointer(), "/"), e.Reason)
		})
		return o
	}
	c := &Checker{
		opts:   opts,
		doc:    doc,
		router: r,
		reqOpts: short(&openapi3filter.Options{
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, // tests send missing/bad tokens on purpose
			MultiError:         true,
			// A body on an operation without requestBody is an error.
			RejectWhenRequestBodyNotSpecified: true,
		}),
		respOpts: short(&openapi3filter.Options{
			IncludeResponseStatus: true, // undocumented status -> error
			MultiError:            true,
		}),
		allowAny:  map[string]bool{},
		checkReqs: opts.CheckRequests,
	}
	th := opts.TransportHeaders
	if th == nil {
		th = DefaultTransportHeaders
	}
	var rh responseHeaders
	if raw, ok := doc.Info.Extensions["x-response-headers"]; ok {
		b, err := json.Marshal(raw)
		if err == nil {
			err = json.Unmarshal(b, &rh)
		}
		if err != nil {
			return nil, fmt.Errorf("info.x-response-headers: %w", err)
		}
	}
	c.every, c.v1 = rh.Every, rh.V1
	for _, h := range slices.Concat(th, rh.Every, rh.V1, rh.Sometimes) {
		c.allowAny[http.CanonicalHeaderKey(h)] = true
	}
	return c, nil
}

// Doc is the parsed document (with servers removed), for tests that need it.
func (c *Checker) Doc() *openapi3.T { return c.doc }

// ResponsesOnly returns a Checker that does not validate requests.
func (c *Checker) ResponsesOnly() *Checker {
	cp := *c
	cp.checkReqs = false
	return &cp
}

// Exchange is one request and its response; the bodies are given as bytes.
type Exchange struct {
	Request      *http.Request
	RequestBody  []byte
	Status       int
	Header       http.Header
	ResponseBody []byte
}

// Check returns the problems found, one line each; nil when all is well.
func (c *Checker) Check(ctx context.Context, x Exchange) []string {
	req := x.Request.Clone(ctx)
	req.Body = io.NopCloser(bytes.NewReader(x.RequestBody))
	head := req.Method == http.MethodHead
	if head {
		// Every GET answers HEAD too, without a body (the document says so
		// once): find it as the GET; ValidateResponse then skips the body.
		req.Method = http.MethodGet
	}
	route, params, err := c.router.FindRoute(req)
	if head {
		req.Method = http.MethodHead
	}
	if err != nil {
		return c.checkUnrouted(ctx, req, err, x)
	}
	record(route.Operation.OperationID, x)
	var out []string
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: c.reqOpts}
	// A request the service accepted must be one the document describes;
	// one it refused is usually wrong on purpose (a test's bad input).
	if c.checkReqs && x.Status < 400 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			out = append(out, "request: "+oneLine(err))
		}
		out = append(out, undeclaredQuery(route, req.URL.Query())...)
	}
	respRef := route.Operation.Responses.Status(x.Status)
	if respRef == nil {
		respRef = route.Operation.Responses.Default()
	}
	if respRef == nil {
		if name, ok := c.opts.Shared[x.Status]; ok {
			return append(out, c.checkAgainstComponent(ctx, req, x, name)...)
		}
	}
	return append(out, c.checkResponse(ctx, in, x, respRef)...)
}

func (c *Checker) checkResponse(ctx context.Context, in *openapi3filter.RequestValidationInput, x Exchange, respRef *openapi3.ResponseRef) []string {
	var out []string
	resp := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: x.Status, Header: x.Header, Options: c.respOpts}
	resp.SetBodyBytes(x.ResponseBody)
	if err := openapi3filter.ValidateResponse(ctx, resp); err != nil {
		out = append(out, fmt.Sprintf("response %d: %s", x.Status, oneLine(err)))
	}
	if respRef == nil || respRef.Value == nil {
		return out // undocumented status: reported above
	}
	if len(respRef.Value.Content) == 0 && len(x.ResponseBody) > 0 {
		out = append(out, fmt.Sprintf("response %d declares no content but has a %d-byte body (%s)", x.Status, len(x.ResponseBody), x.Header.Get("Content-Type")))
	}
	out = append(out, c.checkHeaders(respRef.Value, x.Header)...)
	if p := x.Request.URL.Path; strings.HasPrefix(p, "/v1/") || strings.HasPrefix(p, "/oauth/") {
		for _, name := range c.v1 {
			if x.Header.Get(name) == "" {
				out = append(out, fmt.Sprintf("missing header %s that every /v1/ and /oauth/ response carries", name))
			}
		}
		if cc := x.Header.Get("Cache-Control"); cc != "" && cc != "no-store" {
			out = append(out, fmt.Sprintf("Cache-Control %q on a /v1/ or /oauth/ response, want no-store", cc))
		}
	}
	return out
}

// checkHeaders reports undocumented response headers and missing EveryResponse
// headers. The values and `required` of declared headers are the library's job.
func (c *Checker) checkHeaders(r *openapi3.Response, h http.Header) []string {
	declared := map[string]bool{}
	for name := range r.Headers {
		declared[http.CanonicalHeaderKey(name)] = true
	}
	var out []string
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range h {
			if !yield(k) {
				return
			}
		}
	})
	for _, name := range names {
		if cn := http.CanonicalHeaderKey(name); !declared[cn] && !c.allowAny[cn] {
			out = append(out, fmt.Sprintf("undocumented response header %s: %q", cn, h.Get(name)))
		}
	}
	for _, name := range c.every {
		if h.Get(name) == "" {
			out = append(out, fmt.Sprintf("missing header %s that every response carries", name))
		}
	}
	slices.Sort(out)
	return out
}

// undeclaredQuery reports query parameters the operation does not declare.
func undeclaredQuery(route *routers.Route, q url.Values) []string {
	declared := map[string]bool{}
	for _, ps := range []openapi3.Parameters{route.PathItem.Parameters, route.Operation.Parameters} {
		for _, p := range ps {
			if p.Value != nil && p.Value.In == openapi3.ParameterInQuery {
				declared[p.Value.Name] = true
			}
		}
	}
	var out []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range q {
			if !yield(k) {
				return
			}
		}
	}) {
		if !declared[k] {
			out = append(out, fmt.Sprintf("request: undocumented query parameter %q", k))
		}
	}
	return out
}

// checkUnrouted validates the answer to a request the document has no operation
// for against the components/responses entry configured for its status.
func (c *Checker) checkUnrouted(ctx context.Context, req *http.Request, rerr error, x Exchange) []string {
	name, ok := c.opts.Unrouted[x.Status]
	if !ok {
		return []string{fmt.Sprintf("%s %s: %v, and %d is not a configured Unrouted status", req.Method, req.URL.Path, rerr, x.Status)}
	}
	var out []string
	switch {
	case x.Status == http.StatusNotFound && !errors.Is(rerr, routers.ErrPathNotFound),
		x.Status == http.StatusMethodNotAllowed && !errors.Is(rerr, routers.ErrMethodNotAllowed):
		out = append(out, fmt.Sprintf("%s %s: answered %d but the router says %q", req.Method, req.URL.Path, x.Status, rerr))
	}
	return append(out, c.checkAgainstComponent(ctx, req, x, name)...)
}

// checkAgainstComponent validates x against components/responses/<name> by
// running ValidateResponse on a stand-in operation that has only that response.
func (c *Checker) checkAgainstComponent(ctx context.Context, req *http.Request, x Exchange, name string) []string {
	ref := c.doc.Components.Responses[name]
	if ref == nil || ref.Value == nil {
		return []string{fmt.Sprintf("no #/components/responses/%s in the document", name)}
	}
	route := &routers.Route{
		Spec:      c.doc,
		Path:      req.URL.Path,
		PathItem:  &openapi3.PathItem{},
		Method:    req.Method,
		Operation: &openapi3.Operation{Responses: openapi3.NewResponses(openapi3.WithStatus(x.Status, ref))},
	}
	in := &openapi3filter.RequestValidationInput{Request: req, Route: route, Options: c.reqOpts}
	var out []string
	for _, p := range c.checkResponse(ctx, in, x, ref) {
		out = append(out, fmt.Sprintf("(#/components/responses/%s) %s", name, p))
	}
	return out
}

// OPENAPI_EXAMPLES, when set, names a file that record appends every
// exchange to (a JSON object per line), so that the document's examples
// can be taken from what the tests saw.
var (
	recordMu   sync.Mutex
	recordFile = os.Getenv("OPENAPI_EXAMPLES")
)

func record(op string, x Exchange) {
	if recordFile == "" {
		return
	}
	line, _ := json.Marshal(map[string]any{"operation": op, "status": x.Status,
		"request": string(x.RequestBody), "response": string(x.ResponseBody)})
	recordMu.Lock()
	defer recordMu.Unlock()
	f, err := os.OpenFile(recordFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.Write(append(line, '\n'))
}

func oneLine(err error) string {
	var me openapi3.MultiError
	if errors.As(err, &me) {
		parts := make([]string, 0, len(me))
		for _, e := range me {
			parts = append(parts, oneLine(e))
		}
		return strings.Join(parts, "; ")
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}
