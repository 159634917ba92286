package http

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func BenchmarkDecodeStrict(b *testing.B) {
	body := []byte(`{"email":"someone@example.com","password":"correct horse battery staple"}`)
	b.ReportAllocs()
	for b.Loop() {
		var v struct {
			Email    string `json:"email"`
			Password string `json:"password"`
		}
		if err := decodeStrict(body, &v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeRefresh is the body of a refresh: one field.
func BenchmarkDecodeRefresh(b *testing.B) {
	body := []byte(`{"refresh_token":"Gm3sQ1cD6uQmT0mhgVZ4jzXoT8dQk1o7C5b4bWm1iY0m2Yp1cQ9uZq9eOa9bVd0w"}`)
	b.ReportAllocs()
	for b.Loop() {
		var v struct {
			RefreshToken string `json:"refresh_token"`
		}
		if err := decodeStrict(body, &v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadRefreshBody is readJSON of a refresh request: the body read
// and decoded.
func BenchmarkReadRefreshBody(b *testing.B) {
	body := `{"refresh_token":"Gm3sQ1cD6uQmT0mhgVZ4jzXoT8dQk1o7C5b4bWm1iY0m2Yp1cQ9uZq9eOa9bVd0w"}`
	type request struct {
		RefreshToken string `json:"refresh_token"`
	}
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "/v1/token/refresh", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if _, err := readJSON[request](w, r); err != nil {
			b.Fatal(err)
		}
	}
}
