package http

import "testing"

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
