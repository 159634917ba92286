package auth

import "time"

// Metrics receives the service's counts; internal/http implements it with
// Prometheus. The zero Service uses nopMetrics.
type Metrics interface {
	Login(outcome string)               // "ok", "failed", "limited"
	Refresh(outcome string)             // a RotateResult outcome
	Revoked(kind RevocationKind)        // a revocation made here
	HashWait(d time.Duration, got bool) // time waited for a hashing slot, and whether one was had
}

type nopMetrics struct{}

func (nopMetrics) Login(string)                 {}
func (nopMetrics) Refresh(string)               {}
func (nopMetrics) Revoked(RevocationKind)       {}
func (nopMetrics) HashWait(time.Duration, bool) {}

// SetMetrics sends the service's counts to m.
func (s *Service) SetMetrics(m Metrics) { s.metrics = m }
