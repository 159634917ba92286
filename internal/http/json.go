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
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return v, errMediaType
	}
	for k, val := range params {
		if k != "charset" || !strings.EqualFold(val, "utf-8") {
			return v, errMediaType
		}
	}
	if r.ContentLength > MaxBodyBytes {
		return v, errTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return v, errTooLarge
		}
		return v, badRequest("request body could not be read")
	}
	if err := decodeStrict(body, &v); err != nil {
		return v, err
	}
	return v, nil
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
// case-insensitively; here both are refused.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("request body is empty")
	}
	if !utf8.Valid(body) {
		return badRequest("request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return badRequest("request body must be a JSON object")
	}
	known := jsonFields(reflect.TypeOf(v).Elem())
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
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return &auth.ValidationError{Fields: map[string]string{te.Field: "has the wrong type"}}
		}
		return badRequest("request body is not valid JSON")
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
	case errors.Is(err, auth.ErrForbidden):
		status, body = http.StatusForbidden, errorBody{Error: "forbidden", Description: "not allowed for this account"}
	case errors.Is(err, auth.ErrNotFound):
		status, body = http.StatusNotFound, errorBody{Error: "not_found", Description: "not found"}
	case errors.As(err, &rl):
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(rl.RetryAfter.Seconds()))))
		status, body = http.StatusTooManyRequests, errorBody{Error: "too_many_requests", Description: "too many requests, try again later"}
	case errors.Is(err, auth.ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		status, body = http.StatusServiceUnavailable, errorBody{Error: "service_unavailable", Description: "busy, try again shortly"}
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads this answer.
		status, body = http.StatusServiceUnavailable, errorBody{Error: "service_unavailable", Description: "request cancelled"}
	default:
		log.ErrorContext(r.Context(), "internal error", "request_id", requestID(r.Context()),
			"method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, body)
}
