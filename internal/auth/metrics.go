package auth

import "time"

// Metrics receives the service's counts; internal/metrics implements it
// with Prometheus. Without one (Options.Metrics nil) nothing is counted.
type Metrics interface {
	Login(outcome string)               // "ok", "failed", "limited"
	Refresh(outcome RotateOutcome)      // a rotation's outcome
	Revoked(kind RevocationKind)        // a revocation made here
	HashWait(d time.Duration, got bool) // time waited for a hashing slot, and whether one was had
	Email(kind, outcome string)         // one delivery attempt's outcome (MailSent, MailRetry, …)
}

type nopMetrics struct{}

func (nopMetrics) Login(string)                 {}
func (nopMetrics) Refresh(RotateOutcome)        {}
func (nopMetrics) Revoked(RevocationKind)       {}
func (nopMetrics) HashWait(time.Duration, bool) {}
func (nopMetrics) Email(string, string)         {}
