package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/acme/accounts/internal/auth"
)

// MaxBodyBytes is the largest request body read.
const MaxBodyBytes = 64 << 10

// requestError is a bad request caught before the use case runs.
type requestError struct {
	status int
	code   string
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{http.StatusBadRequest, "invalid_request", fmt.Sprintf(format, args...)}
}

var (
	errTooLarge = &requestError{http.StatusRequestEntityTooLarge, "payload_too_large",
		fmt.Sprintf("request body must be at most %d bytes", MaxBodyBytes)}
	errMediaType = &requestError{http.StatusUnsupportedMediaType, "unsupported_media_type",
		"request body must be application/json (UTF-8)"}
)

// readJSON reads one strict JSON object into a T: the media type must be
// application/json (UTF-8), the body at most MaxBodyBytes, and the object
// may hold only T's fields, each once and spelled exactly, with nothing after it.
func readJSON[T any](w http.ResponseWriter, r *http.Request) (T, error) {
	var v T
	if !jsonMediaType(r.Header.Get("Content-Type")) {
		return v, errMediaType
	}
	// decodeStrict copies what it keeps: the buffer can go back to the pool.
	err := readBody(w, r, errUnreadable, func(b []byte) error { return decodeStrict(b, &v) })
	return v, err
}

var errUnreadable = badRequest("request body could not be read")

// readBody reads a request body of at most MaxBodyBytes into a pooled
// buffer and hands it to use, which must not keep it; unreadable is the
// error for a body that breaks off.
func readBody(w http.ResponseWriter, r *http.Request, unreadable error, use func([]byte) error) error {
	if r.ContentLength > MaxBodyBytes {
		return errTooLarge
	}
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer func() {
		buf.Reset()
		bodyBuffers.Put(buf)
	}()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxBodyBytes)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge
		}
		return unreadable
	}
	return use(buf.Bytes())
}

// bodyBuffers holds request-body buffers for reuse (each at most
// MaxBodyBytes plus what bytes.Buffer reads ahead).
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// jsonMediaType reports whether a Content-Type is application/json, with
// at most a UTF-8 charset; the two usual spellings skip the parser.
func jsonMediaType(ct string) bool {
	if ct == "application/json" || strings.EqualFold(ct, "application/json; charset=utf-8") {
		return true
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return false
	}
	for k, val := range params {
		if k != "charset" || !strings.EqualFold(val, "utf-8") {
			return false
		}
	}
	return true
}

var fieldCache sync.Map // reflect.Type -> map[string]bool

func jsonFields(t reflect.Type) map[string]bool {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]bool)
	}
	fields := map[string]bool{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = true
		}
	}
	fieldCache.Store(t, fields)
	return fields
}

var plainName = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

func describeKey(k string) string {
	if plainName.MatchString(k) {
		return strconv.Quote(k)
	}
	return "(unprintable)"
}

// decodeStrict decodes body, a JSON object, into v (a pointer to a struct).
// Go's decoder alone would take the last of duplicate keys and match keys
// case-insensitively; here both are refused. A well-formed body (the usual
// case) is checked by one allocation-free pass over its top-level keys; a
// malformed one goes through json.Decoder, token by token, to say exactly
// what is wrong.
func decodeStrict(body []byte, v any) error {
	known := jsonFields(reflect.TypeOf(v).Elem())
	if utf8.Valid(body) && json.Valid(body) {
		if err := checkKeys(body, known); err != nil {
			return err
		}
	} else if err := diagnose(body, known); err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return &auth.ValidationError{Fields: map[string]string{te.Field: "has the wrong type"}}
		}
		return badRequest("request body is not valid JSON")
	}
	return nil
}

// checkKeys refuses, in a body that json.Valid accepted, anything but one
// object whose keys are known fields, each once and spelled exactly.
func checkKeys(body []byte, known map[string]bool) error {
	i := skipSpace(body, 0)
	if i == len(body) || body[i] != '{' {
		return badRequest("request body must be a JSON object")
	}
	var seenArr [8]string
	seen := seenArr[:0]
	for i = skipSpace(body, i+1); body[i] != '}'; i = skipSpace(body, i+1) {
		end := skipString(body, i)
		raw := body[i+1 : end-1]
		key := string(raw) // no allocation for a map look-up or a comparison
		if bytes.IndexByte(raw, '\\') >= 0 {
			if err := json.Unmarshal(body[i:end], &key); err != nil {
				return badRequest("request body is not valid JSON")
			}
		}
		if !known[key] {
			return badRequest("unknown field %s", describeKey(key))
		}
		if slices.Contains(seen, key) {
			return badRequest("duplicate field %s", describeKey(key))
		}
		seen = append(seen, key)
		i = skipValue(body, skipSpace(body, skipSpace(body, end)+1)) // past ':' and the value
		i = skipSpace(body, i)
		if body[i] == '}' {
			break
		}
		// body[i] is ','
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] ('"').
func skipString(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(b) && !strings.ContainsRune(",}] \t\n\r", rune(b[i])) {
		i++ // a number, true, false or null
	}
	return i
}

// diagnose says what is wrong with a body that is not one valid JSON text.
func diagnose(body []byte, known map[string]bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("request body is empty")
	}
	if !utf8.Valid(body) {
		return badRequest("request body is not valid UTF-8")
	}
	if err := tokenKeys(body, known); err != nil {
		return err
	}
	return badRequest("request body is not valid JSON")
}

// tokenKeys is checkKeys the slow way, token by token with json.Decoder,
// for any body: it also tells a truncated object or trailing data.
func tokenKeys(body []byte, known map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return badRequest("request body must be a JSON object")
	}
	seen := make(map[string]bool, len(known))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return badRequest("request body is not valid JSON")
		}
		key, _ := tok.(string)
		switch {
		case !known[key]:
			return badRequest("unknown field %s", describeKey(key))
		case seen[key]:
			return badRequest("duplicate field %s", describeKey(key))
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return badRequest("request body is not valid JSON")
		}
	}
	if _, err := dec.Token(); err != nil {
		return badRequest("request body is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("request body has data after the JSON object")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type errorBody struct {
	Error       string            `json:"error"`
	Description string            `json:"error_description"`
	Fields      map[string]string `json:"fields,omitempty"`
}

// writeError is the one place an error becomes a response.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status, body := http.StatusInternalServerError, errorBody{Error: "internal_error", Description: "internal error"}
	var re *requestError
	var ve *auth.ValidationError
	var rl *auth.RateLimitError
	var ue *auth.UnavailableError
	switch {
	case errors.As(err, &re):
		status, body = re.status, errorBody{Error: re.code, Description: re.msg}
	case errors.As(err, &ve):
		status, body = http.StatusBadRequest, errorBody{Error: "invalid_request", Description: ve.Error(), Fields: ve.Fields}
	case errors.Is(err, auth.ErrEmailTaken):
		status, body = http.StatusConflict, errorBody{Error: "email_taken", Description: "an account with this email already exists"}
	case errors.Is(err, auth.ErrInvalidCredentials):
		status, body = http.StatusUnauthorized, errorBody{Error: "invalid_credentials", Description: "email or password is wrong"}
	case errors.Is(err, auth.ErrInvalidGrant):
		status, body = http.StatusUnauthorized, errorBody{Error: "invalid_grant", Description: "the refresh token is not valid"}
	case errors.Is(err, auth.ErrNoToken):
		w.Header().Set("WWW-Authenticate", `Bearer`)
		status, body = http.StatusUnauthorized, errorBody{Error: "invalid_token", Description: "an access token is required"}
	case errors.Is(err, auth.ErrInvalidToken):
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		status, body = http.StatusUnauthorized, errorBody{Error: "invalid_token", Description: "the access token is not valid"}
	case errors.Is(err, auth.ErrEmailNotVerified):
		status, body = http.StatusForbidden, errorBody{Error: "email_not_verified", Description: "verify your email address first: a verification mail was sent at signup, and POST /v1/email/verification sends another"}
	case errors.Is(err, auth.ErrForbidden):
		status, body = http.StatusForbidden, errorBody{Error: "forbidden", Description: "not allowed for this account"}
	case errors.Is(err, auth.ErrNotFound):
		status, body = http.StatusNotFound, errorBody{Error: "not_found", Description: "not found"}
	case errors.As(err, &rl):
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(rl.RetryAfter.Seconds()))))
		status, body = http.StatusTooManyRequests, errorBody{Error: "too_many_requests", Description: "too many requests, try again later"}
	case errors.As(err, &ue):
		// The database cannot serve this now (down, restarting, read-only,
		// too slow): the client tries again; the operator sees why.
		log.WarnContext(r.Context(), "database unavailable", "request_id", requestID(r.Context()),
			"method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		status, body = http.StatusServiceUnavailable, errorBody{Error: "service_unavailable", Description: ue.Reason}
	case errors.Is(err, auth.ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		status, body = http.StatusServiceUnavailable, errorBody{Error: "service_unavailable", Description: "busy, try again shortly"}
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() != nil:
		// The request's deadline (Deps.RequestTimeout) passed.
		w.Header().Set("Retry-After", "1")
		status, body = http.StatusServiceUnavailable, errorBody{Error: "service_unavailable", Description: "the request did not finish in time"}
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads this answer.
		status, body = http.StatusServiceUnavailable, errorBody{Error: "service_unavailable", Description: "request cancelled"}
	default:
		log.ErrorContext(r.Context(), "internal error", "request_id", requestID(r.Context()),
			"method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, body)
}
