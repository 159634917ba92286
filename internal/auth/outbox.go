package auth

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The outbox's sender: one in every instance, none special. It claims due
// mails (FOR UPDATE SKIP LOCKED, with a lease), resolves the account,
// applies the caps, makes the one-time token, stores its hashes, renders
// and sends; the raw token exists only in its memory. Temporary failures
// are retried with back-off and jitter, a permanent (5xx) refusal gives up,
// and so does an intent older than its token's lifetime.

// SenderConfig tunes the sender; zero fields take the defaults.
type SenderConfig struct {
	// Lease is how long a claimed mail is this sender's before another may
	// take it (a sender that died between sending and marking: the mail
	// goes out again, with the same Message-ID). Default 2m.
	Lease time.Duration
	// Backoff is the first retry's delay; each retry doubles it, up to
	// MaxBackoff, each with jitter (half to all of it). Defaults 30s, 30m.
	Backoff, MaxBackoff time.Duration
	// Poll is how often a sender looks for due mails without being woken
	// (a notification missed, a retry come due). Default 10s.
	Poll time.Duration
	// Workers is how many mails one sender works on at once. Default 2.
	Workers int
	// SendTimeout bounds one mail's delivery. Default 1m.
	SendTimeout time.Duration
}

func (c SenderConfig) withDefaults() SenderConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Lease, 2*time.Minute)
	def(&c.Backoff, 30*time.Second)
	def(&c.MaxBackoff, 30*time.Minute)
	def(&c.Poll, 10*time.Second)
	def(&c.SendTimeout, time.Minute)
	if c.Workers < 1 {
		c.Workers = 2
	}
	return c
}

// Outcomes of one attempt, as accounts_emails_total counts them.
const (
	MailSent    = "sent"    // the server took it
	MailRetry   = "retry"   // a temporary failure: tried again later
	MailFailed  = "failed"  // refused for good (5xx): given up, audited
	MailExpired = "expired" // older than its token's lifetime: given up
	MailSkipped = "skipped" // nothing to send: no such account, already verified, address taken, capped
)

// outboxState is what the gauges read: the pending mails and the oldest
// one's time, as the last look found them.
type outboxState struct {
	pending atomic.Int64
	oldest  atomic.Int64 // unix nanoseconds; 0 when none is pending
}

// OutboxPending reports how many mails wait in the outbox and the oldest
// one's age (0 when none), as this instance's sender last counted them.
func (s *Service) OutboxPending() (int, time.Duration) {
	n := int(s.outbox.pending.Load())
	oldest := s.outbox.oldest.Load()
	if n == 0 || oldest == 0 {
		return n, 0
	}
	return n, max(s.now().Sub(time.Unix(0, oldest)), 0)
}

// wakeSender makes this instance's sender look for due mails now.
func (s *Service) wakeSender() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// RunSender delivers the outbox's mails until ctx ends, and returns once
// its workers have stopped. Without a Mailer it does nothing (the mails
// wait for an instance that has one).
func (s *Service) RunSender(ctx context.Context) {
	if s.mailer == nil {
		return
	}
	cfg := s.sender
	var wg sync.WaitGroup
	wg.Go(func() { s.listenOutbox(ctx) })
	for range cfg.Workers {
		wg.Go(func() { s.sendLoop(ctx, cfg) })
	}
	wg.Wait()
}

// listenOutbox turns every new intent, in any instance, into a wake-up.
func (s *Service) listenOutbox(ctx context.Context) {
	wait := time.Second
	for ctx.Err() == nil {
		err := s.store.ListenOutbox(ctx, func() { wait = time.Second; s.wakeSender() }, s.wakeSender)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("outbox listener lost; polling until it is back", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

func (s *Service) sendLoop(ctx context.Context, cfg SenderConfig) {
	poll := time.NewTicker(cfg.Poll)
	defer poll.Stop()
	for {
		for ctx.Err() == nil {
			m, err := s.store.ClaimMail(ctx, s.now(), s.now().Add(cfg.Lease))
			if errors.Is(err, ErrNotFound) {
				break
			}
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("outbox: claim", "err", err)
				}
				break
			}
			s.deliver(ctx, cfg, m)
		}
		s.countOutbox(ctx)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-poll.C:
		}
	}
}

func (s *Service) countOutbox(ctx context.Context) {
	n, oldest, err := s.store.OutboxStats(ctx)
	if err != nil {
		return
	}
	s.outbox.pending.Store(int64(n))
	if oldest.IsZero() {
		s.outbox.oldest.Store(0)
	} else {
		s.outbox.oldest.Store(oldest.UnixNano())
	}
}

// recipient is what resolving a mail found: whom to send it to and what
// its token is bound to.
type recipient struct {
	user    User
	to      string
	detail  map[string]string // a "this wasn't me" token's: what to undo
	skipped string            // why nothing is sent, when not ""
}

// resolve finds the account and the address of a mail, or why it is not
// sent.
func (s *Service) resolve(ctx context.Context, m OutboxMail) (recipient, error) {
	var u User
	var err error
	if m.UserID != "" {
		u, err = s.store.UserByID(ctx, m.UserID)
	} else {
		u, err = s.store.UserByEmailKey(ctx, m.AddressKey)
	}
	if errors.Is(err, ErrNotFound) {
		return recipient{skipped: "no_account"}, nil
	}
	if err != nil {
		return recipient{}, err
	}
	r := recipient{user: u, to: u.Email}
	switch m.Kind {
	case MailVerification:
		if u.EmailVerified {
			r.skipped = "already_verified"
		}
	case MailEmailChange:
		next := m.Detail["email"]
		if !strings.EqualFold(u.PendingEmail, next) {
			r.skipped = "superseded"
			break
		}
		if _, err := s.store.UserByEmail(ctx, next); err == nil {
			r.skipped = "email_taken" // answered like any other; nothing is sent
		} else if !errors.Is(err, ErrNotFound) {
			return recipient{}, err
		}
		r.to = next
	case MailPasswordChanged, MailAccountDenied:
		r.detail = map[string]string{"event": string(m.Kind)}
	case MailEmailChanged:
		r.to = m.Detail["to"]
		r.detail = map[string]string{"event": string(m.Kind),
			"previous_email": m.Detail["previous_email"], "new_email": m.Detail["new_email"]}
	}
	return r, nil
}

// capped counts an issuance against the caps of its account and purpose
// (capPerIP from the requesting IP, capPerAccount in all, per hour) and
// reports whether one is past; a capped issuance is not counted. Only the
// mails anyone can ask for are capped: notices follow changes that are
// limited themselves.
func (s *Service) capped(ctx context.Context, m OutboxMail, u User, p Purpose) (bool, error) {
	switch m.Kind {
	case MailVerification, MailReset, MailEmailChange:
	default:
		return false, nil
	}
	scope := u.ID + "\x00" + string(p)
	hits := []RateHit{{Key: limitKey("mailcap", scope), Window: time.Hour},
		{Key: limitKey("mailcap-ip", scope+"\x00"+ipBucket(m.Client.IP)), Window: time.Hour}}
	counts, err := s.store.HitRateLimits(ctx, hits, s.now())
	if err != nil {
		return false, err
	}
	if counts[0].N <= capPerAccount && counts[1].N <= capPerIP {
		return false, nil
	}
	for i, h := range hits {
		if err := s.store.ReleaseRateLimit(ctx, h.Key, counts[i].WindowEnd); err != nil {
			return true, err
		}
	}
	return true, nil
}

// deliver works on one claimed mail to its end or its next attempt.
func (s *Service) deliver(ctx context.Context, cfg SenderConfig, m OutboxMail) {
	p := purposeOf(m.Kind)
	life := lifetime(p)
	now := s.now()
	client := m.Client
	finish := func(status, outcome string, userID string) {
		ours, err := s.store.FinishMail(ctx, m.ID, m.Attempt, status, outcome, s.now())
		if err != nil && ctx.Err() == nil {
			s.log.Error("outbox: finish", "mail", m.ID, "err", err)
		}
		if !ours {
			return // another sender took the mail over (this one's lease ran out)
		}
		s.metrics.Email(string(m.Kind), status)
		if status == MailFailed || status == MailExpired {
			s.record(ctx, Event{Type: EventEmailAbandoned, UserID: userID, Client: client,
				Detail: map[string]any{"kind": string(m.Kind), "reason": outcome, "attempts": m.Attempt}})
		}
	}
	if now.Sub(m.Now) >= life {
		if m.TokenID != 0 {
			_ = s.store.SpendToken(ctx, m.TokenID, now)
		}
		finish(MailExpired, "expired", m.UserID)
		return
	}
	r, err := s.resolve(ctx, m)
	if err != nil {
		s.retry(ctx, cfg, m, "resolve: "+err.Error())
		return
	}
	if r.skipped != "" {
		finish(MailSkipped, r.skipped, r.user.ID)
		return
	}
	if m.TokenID == 0 { // the first attempt that got this far
		capped, err := s.capped(ctx, m, r.user, p)
		if err != nil {
			s.retry(ctx, cfg, m, "caps: "+err.Error())
			return
		}
		if m.Kind == MailReset {
			s.record(ctx, Event{Type: EventPasswordResetRequested, UserID: r.user.ID, Client: client,
				Detail: map[string]any{"capped": capped}})
		}
		if capped {
			finish(MailSkipped, "capped", r.user.ID)
			return
		}
	}
	tok, err := newOneTimeToken()
	if err != nil {
		s.retry(ctx, cfg, m, "token: "+err.Error())
		return
	}
	nt := NewToken{OutboxID: m.ID, Attempt: m.Attempt, UserID: r.user.ID, Purpose: p, Address: r.to,
		LinkHash: tok.LinkHash[:], Detail: r.detail, Now: now, ExpiresAt: now.Add(life), MaxLive: maxLiveTokens}
	if p != PurposeDeny {
		nt.CodeHash = s.codeHash(r.user.ID, p, tok.Code)
	}
	id, err := s.store.IssueToken(ctx, nt)
	if errors.Is(err, ErrNotFound) {
		finish(MailSkipped, "no_account", "")
		return
	}
	if err != nil {
		s.retry(ctx, cfg, m, "token: "+err.Error())
		return
	}
	mail := Mail{Kind: m.Kind, To: r.to, MessageID: m.MessageID, Date: m.Now, Link: s.link(p, tok.Link)}
	if p != PurposeDeny {
		mail.Code = tok.Code
	}
	sctx, cancel := context.WithTimeout(ctx, cfg.SendTimeout)
	err = s.mailer.Send(sctx, mail)
	cancel()
	if err == nil && s.hooks.afterSend != nil {
		s.hooks.afterSend(ctx, mail)
	}
	switch {
	case err == nil:
		if m.Kind == MailVerification { // it went out, whoever marks it
			s.record(ctx, Event{Type: EventEmailVerificationSent, UserID: r.user.ID, Client: client})
		}
		finish(MailSent, "sent", r.user.ID)
	case errors.Is(err, ErrMailRejected):
		_ = s.store.SpendToken(ctx, id, s.now())
		finish(MailFailed, "rejected: "+err.Error(), r.user.ID)
	case ctx.Err() != nil:
		// Shutting down: the lease runs out and another sender (or this
		// one, restarted) tries again.
	default:
		s.retry(ctx, cfg, m, err.Error())
	}
}

// retry makes m due again after its back-off, or gives it up when that
// comes after its token's lifetime.
func (s *Service) retry(ctx context.Context, cfg SenderConfig, m OutboxMail, why string) {
	if ctx.Err() != nil {
		return
	}
	delay := cfg.Backoff << min(m.Attempt-1, 20)
	if delay <= 0 || delay > cfg.MaxBackoff {
		delay = cfg.MaxBackoff
	}
	delay = delay/2 + rand.N(delay/2+1) // jitter: half to all of it
	next := s.now().Add(delay)
	if next.Sub(m.Now) >= lifetime(purposeOf(m.Kind)) {
		if m.TokenID != 0 {
			_ = s.store.SpendToken(ctx, m.TokenID, s.now())
		}
		if _, err := s.store.FinishMail(ctx, m.ID, m.Attempt, MailExpired, "expired: "+why, s.now()); err == nil {
			s.metrics.Email(string(m.Kind), MailExpired)
			s.record(ctx, Event{Type: EventEmailAbandoned, UserID: m.UserID, Client: m.Client,
				Detail: map[string]any{"kind": string(m.Kind), "reason": "expired", "attempts": m.Attempt}})
		}
		return
	}
	s.log.Warn("outbox: delivery failed; will retry", "mail", m.ID, "kind", string(m.Kind),
		"attempt", m.Attempt, "retry_in", delay.Round(time.Millisecond).String(), "err", why)
	if _, err := s.store.RetryMail(ctx, m.ID, m.Attempt, next, why); err != nil && ctx.Err() == nil {
		s.log.Error("outbox: reschedule", "mail", m.ID, "err", err)
	}
	s.metrics.Email(string(m.Kind), MailRetry)
}

// link is where a mail of purpose p points, its token in the fragment (no
// server log or Referer sees it).
func (s *Service) link(p Purpose, token string) string {
	page := map[Purpose]string{PurposeVerify: "/verify", PurposeReset: "/reset",
		PurposeEmailChange: "/email", PurposeDeny: "/deny"}[p]
	return strings.TrimRight(s.cfg.Email.LinkBase, "/") + page + "#token=" + token
}
