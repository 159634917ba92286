package http

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/acme/accounts/internal/auth"
)

// FuzzDecodeStrict: any body either decodes into exactly the known fields
// of a valid JSON object, or is refused with a 400 error; never a panic.
func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{
		`{"email":"a@example.com","password":"correct horse battery"}`,
		`{"email":"a@example.com","email":"b@example.com"}`, `{"EMAIL":"x"}`, `{"email":1}`,
		`{} {}`, `[]`, `null`, ``, `{"email":"\u0000"}`, "{\"email\":\"\xff\"}", `{"password":{"$ne":null}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v struct {
			Email    string `json:"email"`
			Password string `json:"password"`
		}
		err := decodeStrict(body, &v)
		if utf8.Valid(body) && json.Valid(body) {
			// The fast key check and the token-by-token one agree.
			known := jsonFields(reflect.TypeOf(v))
			if fast, slow := checkKeys(body, known), tokenKeys(body, known); (fast == nil) != (slow == nil) {
				t.Fatalf("checkKeys %v, tokenKeys %v for %q", fast, slow, body)
			}
		}
		if err != nil {
			var re *requestError
			var ve *auth.ValidationError
			if !(asError(err, &re) && re.status == 400) && !asError(err, &ve) {
				t.Fatalf("error %T %v is not a 400", err, err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("accepted a non-object %q", body)
		}
		for k := range m {
			if k != "email" && k != "password" {
				t.Fatalf("accepted unknown field %q", k)
			}
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		_, _ = dec.Token()
		keys := 0
		for dec.More() {
			_, _ = dec.Token()
			var raw json.RawMessage
			_ = dec.Decode(&raw)
			keys++
		}
		if keys != len(m) {
			t.Fatalf("accepted a duplicate key in %q", body)
		}
	})
}

// FuzzBearerToken: any Authorization header yields either an error or a
// token that is non-empty, has no white space and is within the cap.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc.def.ghi", "bearer x", "BEARER  x", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz",
		"Bearer a b", "Bearer \t", "", "Bearer " + strings.Repeat("a", auth.MaxTokenBytes+1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest("GET", "/v1/me", nil)
		r.Header["Authorization"] = []string{header}
		tok, err := bearerToken(r)
		if err != nil {
			if !isAuthError(err) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if tok == "" || len(tok) > auth.MaxTokenBytes || strings.ContainsAny(tok, " \t") {
			t.Fatalf("bad token %q from %q", tok, header)
		}
		if !strings.HasSuffix(header, tok) || len(header) < 7 || !strings.EqualFold(header[:6], "Bearer") {
			t.Fatalf("token %q is not the credentials of %q", tok, header)
		}
	})
}
