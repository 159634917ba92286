package auth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

func TestHashSlotsAreBounded(t *testing.T) {
	t.Parallel()
	// Only the hashing part of a service: no store is needed.
	s := &Service{cfg: Config{Argon2: cheap, HashWait: 20 * time.Millisecond}, slots: make(chan struct{}, 2),
		metrics: nopMetrics{}, log: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	// Take both slots, then a third hash must be refused, not queued forever.
	s.slots <- struct{}{}
	s.slots <- struct{}{}
	if _, err := s.hash(context.Background(), "correct horse battery"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("hash with no free slot: %v, want ErrUnavailable", err)
	}
	<-s.slots
	if _, err := s.hash(context.Background(), "correct horse battery"); err != nil {
		t.Fatalf("hash with a free slot: %v", err)
	}
	if len(s.slots) != 1 {
		t.Fatalf("%d slots held after the hash, want 1 (the test's own)", len(s.slots))
	}
}
