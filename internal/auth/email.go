package auth

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Email: verification, password reset, email change and the "this wasn't
// me" notices. A request that may cause a mail records only the intent (in
// the outbox) and returns; the sender (outbox.go) does the rest.

// VerificationMode is EMAIL_VERIFICATION.
type VerificationMode uint8

// Verification modes.
const (
	VerificationOptional VerificationMode = iota // a verification mail at signup; nothing depends on it
	VerificationOff                              // no verification mail at signup
	VerificationRequired                         // unverified accounts cannot log in
)

// String is the mode as EMAIL_VERIFICATION spells it.
func (m VerificationMode) String() string {
	switch m {
	case VerificationOff:
		return "off"
	case VerificationRequired:
		return "required"
	}
	return "optional"
}

// MailKind is what a mail is.
type MailKind string

// Mail kinds. The first three carry a link and a code; the notices carry
// only a "this wasn't me" link.
const (
	MailVerification    MailKind = "verification"
	MailReset           MailKind = "reset"
	MailEmailChange     MailKind = "email_change"
	MailPasswordChanged MailKind = "password_changed"
	MailEmailChanged    MailKind = "email_changed"
	MailAccountDenied   MailKind = "account_denied"
)

// Purpose is what a one-time token is for; one of one purpose never works
// for another.
type Purpose string

// One-time token purposes.
const (
	PurposeVerify      Purpose = "verify"
	PurposeReset       Purpose = "reset"
	PurposeEmailChange Purpose = "email_change"
	PurposeDeny        Purpose = "deny"
)

// purposeOf is the purpose of the token a mail of kind k carries.
func purposeOf(k MailKind) Purpose {
	switch k {
	case MailVerification:
		return PurposeVerify
	case MailReset:
		return PurposeReset
	case MailEmailChange:
		return PurposeEmailChange
	}
	return PurposeDeny
}

// lifetime is how long a token of purpose p lives (and how long an intent
// to mail one is worth trying).
func lifetime(p Purpose) time.Duration {
	switch p {
	case PurposeVerify:
		return 24 * time.Hour
	case PurposeReset:
		return 30 * time.Minute
	case PurposeEmailChange:
		return time.Hour
	}
	return 7 * 24 * time.Hour
}

// The one-time token rules.
const (
	maxLiveTokens     = 3  // live issuances per user and purpose; a fourth spends the oldest
	maxWrongPerToken  = 5  // wrong codes that spend an issuance
	maxWrongCodesADay = 10 // wrong codes evaluated per account and purpose a day
	capPerIP          = 3  // issuances per account and purpose per hour from one client IP
	capPerAccount     = 10 // issuances per account and purpose per hour in all
)

// Mail is one message for a Mailer to render and send.
type Mail struct {
	Kind MailKind
	To   string
	// MessageID is the Message-ID without its angle brackets; every retry
	// of one message repeats it.
	MessageID string
	Date      time.Time
	// Link is where the mail's button points: the token is in its fragment.
	Link string
	// Code is the 8-digit code of a verification, reset or email-change
	// mail; "" in a notice.
	Code string
}

// Mailer sends mails (internal/mail implements it over SMTP or files).
type Mailer interface {
	// Send renders and sends m. An error wrapping ErrMailRejected is a
	// permanent refusal (SMTP 5xx): the mail is given up; any other error
	// is temporary and the mail is tried again later.
	Send(ctx context.Context, m Mail) error
}

// ErrMailRejected marks a mail the server refused for good.
var ErrMailRejected = errors.New("mail rejected")

// ErrEmailNotVerified is a login, with the right password, for an account
// whose address is unverified while EMAIL_VERIFICATION=required.
var ErrEmailNotVerified = errors.New("email not verified")

// MailIntent is one row of the outbox, as a request records it.
type MailIntent struct {
	Kind MailKind
	// AddressKey is the keyed hash of the address a request named (forgot
	// password, verification by email); UserID the account otherwise.
	AddressKey []byte
	UserID     string
	Detail     map[string]string
	Client     Client
	Now        time.Time
	// MessageID is the mail's Message-ID (without angle brackets), the same
	// on every retry.
	MessageID string
}

// intent is a new outbox row of kind k for a request by c.
func (s *Service) intent(k MailKind, c Client) MailIntent {
	return MailIntent{Kind: k, Client: c, Now: s.now(), MessageID: s.newMessageID()}
}

// queue records an intent (one insert, whatever it is for) and wakes this
// instance's sender.
func (s *Service) queue(ctx context.Context, m MailIntent) error {
	if err := s.store.RecordMailIntent(ctx, m); err != nil {
		return err
	}
	s.wakeSender()
	return nil
}

// newMessageID is a Message-ID of letters and digits at MAIL_FROM's domain.
func (s *Service) newMessageID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b) + "@" + s.cfg.Email.domain()
}

// The email key: one secret, kept like the signing keys, from which the
// keyed hashes of addresses and of codes take their own keys.
const emailKeyName = "email"

func (s *Service) addressKey(email string) []byte {
	m := hmac.New(sha256.New, s.emailKeys.address)
	m.Write([]byte(emailKey(email)))
	return m.Sum(nil)
}

// codeHash binds a code to its issuance's user and purpose.
func (s *Service) codeHash(userID string, p Purpose, code string) []byte {
	m := hmac.New(sha256.New, s.emailKeys.code)
	m.Write([]byte(userID + "\x00" + string(p) + "\x00" + code))
	return m.Sum(nil)
}

// oneTimeToken is an issuance's link token and code, as only the sender
// ever holds them.
type oneTimeToken struct {
	Link     string // 32 random bytes, base64url: 43 characters
	LinkHash [32]byte
	Code     string // 8 digits
}

func newOneTimeToken() (oneTimeToken, error) {
	raw := make([]byte, 32)
	var link string
	for {
		if _, err := rand.Read(raw); err != nil {
			return oneTimeToken{}, err
		}
		// A mail's code is the only run of 8 digits in its text, where the
		// link is too: a link token with such a run (about 1 in 10^5) is
		// drawn again. What that takes from 256 bits is nothing to speak of.
		if link = base64.RawURLEncoding.EncodeToString(raw); !hasDigitRun(link, 8) {
			break
		}
	}
	n, err := rand.Int(rand.Reader, big.NewInt(100_000_000))
	if err != nil {
		return oneTimeToken{}, err
	}
	return oneTimeToken{Link: link, LinkHash: sha256.Sum256([]byte(link)), Code: fmt.Sprintf("%08d", n)}, nil
}

// hasDigitRun reports whether s holds n or more ASCII digits in a row.
func hasDigitRun(s string, n int) bool {
	run := 0
	for i := range len(s) {
		if s[i] >= '0' && s[i] <= '9' {
			if run++; run >= n {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

// linkHash is the hash a presented link token is looked up by; anything not
// of the shape we issue is refused before any look-up.
func linkHash(token string) ([32]byte, bool) {
	if len(token) != 43 {
		return [32]byte{}, false
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(token); err != nil {
		return [32]byte{}, false
	}
	return sha256.Sum256([]byte(token)), true
}

func validCode(code string) bool {
	if len(code) != 8 {
		return false
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// RequestVerification queues a verification mail to the account with this
// address, if there is one and it is unverified; the request does the same
// work whatever the address (records the intent), so it tells nothing.
// Returns *ValidationError.
func (s *Service) RequestVerification(ctx context.Context, email string, c Client) error {
	return s.queueFor(ctx, MailVerification, email, c)
}

// RequestOwnVerification queues a verification mail to the caller's own
// address (when it is unverified: the sender checks).
func (s *Service) RequestOwnVerification(ctx context.Context, p Principal, c Client) error {
	m := s.intent(MailVerification, c)
	m.UserID = p.UserID
	return s.queue(ctx, m)
}

// ForgotPassword queues a reset mail to the account with this address, if
// there is one; the same work whatever the address. Returns *ValidationError.
func (s *Service) ForgotPassword(ctx context.Context, email string, c Client) error {
	return s.queueFor(ctx, MailReset, email, c)
}

// queueFor records an intent of kind k for whichever account has this
// address: the keyed hash of the address, never a look-up.
func (s *Service) queueFor(ctx context.Context, k MailKind, email string, c Client) error {
	e, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	m := s.intent(k, c)
	m.AddressKey = s.addressKey(e)
	return s.queue(ctx, m)
}

// RequestEmailChange records newEmail as the caller's pending address and
// queues a confirmation to it, once the current password checked out
// (against the re-authentication limit). The answer is the same when the
// address is taken: the sender then sends nothing.
// Returns *ValidationError, ErrInvalidCredentials, *RateLimitError,
// ErrInvalidToken or ErrUnavailable.
func (s *Service) RequestEmailChange(ctx context.Context, p Principal, newEmail, password string, c Client) error {
	e, err := NormalizeEmail(newEmail)
	if err != nil {
		return Invalid("new_email", "is not a valid email address")
	}
	if password == "" {
		return Invalid("current_password", "is required")
	}
	if len(password) > MaxPasswordBytes {
		return Invalid("current_password", fmt.Sprintf("must be at most %d bytes", MaxPasswordBytes))
	}
	u, err := s.reauthenticate(ctx, p, password, c)
	if err != nil {
		return err
	}
	m := s.intent(MailEmailChange, c)
	m.UserID, m.Detail = u.ID, map[string]string{"email": e}
	if err := s.store.SetPendingEmail(ctx, u.ID, e, m); err != nil {
		if errors.Is(err, ErrNotFound) {
			return ErrInvalidToken
		}
		return err
	}
	s.wakeSender()
	s.revoke(Revocation{Kind: UserChanged, ID: u.ID}) // /v1/me shows pending_email
	s.record(ctx, Event{Type: EventEmailChangeRequested, UserID: u.ID, SessionID: p.SessionID, Client: c})
	return nil
}

// Redemption is a presented one-time token: a link token, or an address and
// a code.
type Redemption struct {
	Token string
	Email string
	Code  string
}

// SpentToken is an issuance the store spent for a redemption (and every
// other live one of its user and purpose with it).
type SpentToken struct {
	ID      int64
	UserID  string
	Address string
	Detail  map[string]string
}

// TokenRef names the issuance a redemption is for: by its link hash, or
// by the id a code matched.
type TokenRef struct {
	Purpose  Purpose
	LinkHash []byte
	ID       int64
	Now      time.Time
}

// matchCode finds the live issuance of purpose p that (email, code) names.
// Each guess is counted before it is compared, atomically: against the
// account's daily budget (maxWrongCodesADay, reserved first) and against
// every live issuance it could be for (one counted past maxWrongPerToken is
// not compared). A right code gives the budget back. Returns the issuance's
// id, or ErrInvalidGrant.
func (s *Service) matchCode(ctx context.Context, p Purpose, email, code string, c Client) (int64, error) {
	e, err := NormalizeEmail(email)
	if err != nil || !validCode(code) {
		return 0, ErrInvalidGrant
	}
	now := s.now()
	candidates, err := s.store.CodeCandidates(ctx, p, e, now)
	if err != nil {
		return 0, err
	}
	users := map[string]*attempt{}
	for _, cand := range candidates {
		if _, ok := users[cand.UserID]; ok {
			continue
		}
		a, err := s.reserve(ctx, RateLimit{N: maxWrongCodesADay, Window: 24 * time.Hour}, "codes",
			limitKey("codes", cand.UserID+"\x00"+string(p)), c)
		if errors.Is(err, ErrTooManyRequests) {
			users[cand.UserID] = nil // past the day's budget: only links work today
			continue
		}
		if err != nil {
			return 0, err
		}
		users[cand.UserID] = a
	}
	var ids []int64
	for _, cand := range candidates {
		if users[cand.UserID] != nil {
			ids = append(ids, cand.ID)
		}
	}
	if len(ids) == 0 {
		return 0, ErrInvalidGrant
	}
	counted, err := s.store.CountCodeGuess(ctx, ids, maxWrongPerToken, now)
	if err != nil {
		return 0, err
	}
	wrong := make([]int64, 0, len(counted))
	compared := map[string]bool{}
	for _, t := range counted {
		want := s.codeHash(t.UserID, p, code)
		if subtle.ConstantTimeCompare(want, t.CodeHash) == 1 {
			for _, a := range users {
				s.release(ctx, a) // a right code is no wrong guess
			}
			return t.ID, nil
		}
		wrong = append(wrong, t.ID)
		compared[t.UserID] = true
	}
	// A guess that met no live issuance of an account (spent meanwhile) was
	// not evaluated against it: its budget is given back.
	for id, a := range users {
		if !compared[id] {
			s.release(ctx, a)
		}
	}
	// An issuance whose last guess this was is spent, link token and all.
	if len(wrong) > 0 {
		if err := s.store.SpendExhausted(context.WithoutCancel(ctx), wrong, maxWrongPerToken, now); err != nil {
			return 0, err
		}
	}
	return 0, ErrInvalidGrant
}

// CodeCandidate is a live issuance a code may be for.
type CodeCandidate struct {
	ID     int64
	UserID string
}

// CountedGuess is a live issuance after a guess was counted against it.
type CountedGuess struct {
	ID       int64
	UserID   string
	CodeHash []byte
}

// tokenRef turns a redemption into the issuance it names, for purpose p.
// Returns ErrInvalidGrant or *ValidationError.
func (s *Service) tokenRef(ctx context.Context, p Purpose, r Redemption, c Client) (TokenRef, error) {
	ref := TokenRef{Purpose: p, Now: s.now()}
	switch {
	case r.Token != "" && r.Email == "" && r.Code == "":
		h, ok := linkHash(r.Token)
		if !ok {
			return TokenRef{}, ErrInvalidGrant
		}
		ref.LinkHash = h[:]
	case r.Token == "" && r.Email != "" && r.Code != "":
		id, err := s.matchCode(ctx, p, r.Email, r.Code, c)
		if err != nil {
			return TokenRef{}, err
		}
		ref.ID = id
	case r.Token == "" && r.Email == "" && r.Code == "":
		return TokenRef{}, Invalid("token", "is required (or email and code)")
	case r.Token != "":
		return TokenRef{}, Invalid("token", "goes alone, without email or code")
	case r.Email == "":
		return TokenRef{}, Invalid("email", "is required with a code")
	default:
		return TokenRef{}, Invalid("code", "is required with an email")
	}
	return ref, nil
}

// VerifyEmail spends a verification token and marks its address verified
// (also when another token had verified it already).
// Returns *ValidationError or ErrInvalidGrant.
func (s *Service) VerifyEmail(ctx context.Context, r Redemption, c Client) error {
	ref, err := s.tokenRef(ctx, PurposeVerify, r, c)
	if err != nil {
		return err
	}
	t, err := s.store.VerifyEmail(ctx, ref)
	if err != nil {
		return err
	}
	s.revoke(Revocation{Kind: UserChanged, ID: t.UserID})
	s.record(ctx, Event{Type: EventEmailVerified, UserID: t.UserID, Client: c, Detail: byWhat(r)})
	return nil
}

// ResetPassword spends a reset token and sets the new password: the
// address counts as verified, every session ends and every access token
// issued before stops working, every live one-time token is spent, the
// login lockout is cleared, a "your password was changed" notice is queued.
// It logs nobody in. The new password is checked before anything is spent.
// Returns *ValidationError, ErrInvalidGrant or ErrUnavailable.
func (s *Service) ResetPassword(ctx context.Context, r Redemption, newPassword string, c Client) error {
	if err := checkPasswordLength("new_password", newPassword, s.cfg.PasswordMinLength); err != nil {
		return err
	}
	// The strength check wants the account's address: read it (spending
	// nothing) for a link token, which must then be live; a code names it.
	address := r.Email
	if r.Token != "" && r.Email == "" && r.Code == "" {
		h, ok := linkHash(r.Token)
		if !ok {
			return ErrInvalidGrant
		}
		a, err := s.store.TokenAddress(ctx, PurposeReset, h[:], s.now())
		if errors.Is(err, ErrNotFound) {
			return ErrInvalidGrant
		}
		if err != nil {
			return err
		}
		address = a
	}
	if err := checkPasswordStrength("new_password", newPassword, address); err != nil {
		return err
	}
	ref, err := s.tokenRef(ctx, PurposeReset, r, c)
	if err != nil {
		return err
	}
	h, err := s.hash(ctx, newPassword)
	if err != nil {
		return err
	}
	reset := PasswordReset{Ref: ref, NewHash: h, LoginKey: loginLimitKey, Notice: s.intent(MailPasswordChanged, c)}
	t, ended, err := s.store.ResetPassword(ctx, reset)
	if err != nil {
		return err
	}
	s.wakeSender()
	s.endedEverywhere(t.UserID, ended, ref.Now)
	s.record(ctx, Event{Type: EventPasswordResetCompleted, UserID: t.UserID, Client: c, Detail: byWhat(r)})
	return nil
}

// PasswordReset is what ResetPassword does in one transaction.
type PasswordReset struct {
	Ref     TokenRef
	NewHash PasswordHash
	// LoginKey is the login limit's key for the account's address, whose
	// lockout the reset clears.
	LoginKey func(email string) string
	// Notice is the "your password was changed" intent (its UserID is the
	// token's).
	Notice MailIntent
}

// ConfirmEmailChange spends an email-change token and changes the address
// to the one it was mailed to (which counts as verified), if that address
// is still free; the old address gets a notice with a "this wasn't me" link.
// Returns *ValidationError, ErrInvalidGrant or ErrEmailTaken.
func (s *Service) ConfirmEmailChange(ctx context.Context, r Redemption, c Client) error {
	ref, err := s.tokenRef(ctx, PurposeEmailChange, r, c)
	if err != nil {
		return err
	}
	change := EmailChange{Ref: ref, Notice: s.intent(MailEmailChanged, c), AddressKey: s.addressKey}
	t, previous, err := s.store.ConfirmEmailChange(ctx, change)
	if err != nil {
		return err
	}
	s.wakeSender()
	s.revoke(Revocation{Kind: UserChanged, ID: t.UserID})
	s.record(ctx, Event{Type: EventEmailChangeConfirmed, UserID: t.UserID, Client: c,
		Detail: map[string]any{"by": byWhat(r)["by"], "previous_email_hash": fmt.Sprintf("%x", s.addressKey(previous)[:8])}})
	return nil
}

// EmailChange is what ConfirmEmailChange does in one transaction.
type EmailChange struct {
	Ref TokenRef
	// Notice is the notice to the old address (its UserID and Detail are
	// filled in by the store: the address before the change).
	Notice     MailIntent
	AddressKey func(email string) []byte
}

// DenyAccount is "this wasn't me", from a notice: every session ends, every
// access token stops working, every live one-time token is spent, the email
// change the notice was about is undone (unless the old address was taken
// meanwhile: then it stays, and the audit says so), the password stops
// working until a reset, and a reset mail is queued to the (restored)
// address, with a notice that this happened.
// Returns *ValidationError or ErrInvalidGrant.
func (s *Service) DenyAccount(ctx context.Context, token string, c Client) error {
	if token == "" {
		return Invalid("token", "is required")
	}
	h, ok := linkHash(token)
	if !ok {
		return ErrInvalidGrant
	}
	ref := TokenRef{Purpose: PurposeDeny, LinkHash: h[:], Now: s.now()}
	d, err := s.store.DenyAccount(ctx, Denial{Ref: ref, AddressKey: s.addressKey,
		Reset: s.intent(MailReset, c), Notice: s.intent(MailAccountDenied, c)})
	if err != nil {
		return err
	}
	s.wakeSender()
	s.endedEverywhere(d.Token.UserID, d.Ended, ref.Now)
	detail := map[string]any{"event": d.Token.Detail["event"]}
	if d.Token.Detail["previous_email"] != "" {
		detail["email_restored"] = d.Restored
	}
	s.record(ctx, Event{Type: EventAccountDenied, UserID: d.Token.UserID, Client: c, Detail: detail})
	return nil
}

// Denial is what DenyAccount does in one transaction.
type Denial struct {
	Ref        TokenRef
	AddressKey func(email string) []byte
	// Reset and Notice are the mails queued to the (restored) address.
	Reset, Notice MailIntent
}

// Denied is what a denial did.
type Denied struct {
	Token SpentToken
	Ended []string
	// Restored says that the email change the notice was about was undone.
	Restored bool
}

// endedEverywhere applies, here at once, what ending every session of a
// user at now did (as logoutUser does).
func (s *Service) endedEverywhere(userID string, ended []string, now time.Time) {
	s.revoke(Revocation{Kind: UserCutoff, ID: userID, At: now.Truncate(time.Second)},
		Revocation{Kind: UserChanged, ID: userID})
	for _, sid := range ended {
		s.revoke(Revocation{Kind: EndedSession, ID: sid, At: now})
	}
}

// byWhat says, for the audit trail, how a token was presented (never the
// token or the code).
func byWhat(r Redemption) map[string]any {
	if r.Token != "" {
		return map[string]any{"by": "link"}
	}
	return map[string]any{"by": "code"}
}

// backfillEmailKeys fills the email keys of accounts that have none
// (created by an earlier release), a batch at a time.
func (s *Service) backfillEmailKeys(ctx context.Context) error {
	for ctx.Err() == nil {
		users, err := s.store.UsersWithoutEmailKey(ctx, 500)
		if err != nil || len(users) == 0 {
			return err
		}
		keys := make([]EmailKey, len(users))
		for i, u := range users {
			keys[i] = EmailKey{UserID: u.ID, Email: u.Email, Key: s.addressKey(u.Email)}
		}
		if err := s.store.SetEmailKeys(ctx, keys); err != nil {
			return err
		}
		if len(users) < 500 {
			return nil
		}
	}
	return ctx.Err()
}

// emailKeys are the keys derived from the email key.
type emailKeys struct {
	address, code []byte
}

func deriveEmailKeys(secret []byte) (emailKeys, error) {
	a, err := hkdf.Key(sha256.New, secret, nil, "accounts address key v1", 32)
	if err != nil {
		return emailKeys{}, err
	}
	c, err := hkdf.Key(sha256.New, secret, nil, "accounts code key v1", 32)
	return emailKeys{address: a, code: c}, err
}

// emailSecretAD binds the sealed email secret to its name.
var emailSecretAD = SecretKID(emailKeyName)

// loadEmailKeys reads the email secret (making it on first start, sealed
// with the key-encryption key when there is one) and derives its keys.
func loadEmailKeys(ctx context.Context, store Store, kek []byte) (emailKeys, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return emailKeys{}, err
	}
	candidate := StoredSecret{Name: emailKeyName, Secret: raw}
	if kek != nil {
		sealed, err := SealKey(kek, emailSecretAD, raw)
		if err != nil {
			return emailKeys{}, err
		}
		candidate.Secret, candidate.Sealed = sealed, true
	}
	stored, err := store.EnsureSecret(ctx, emailKeyName, candidate)
	if err != nil {
		return emailKeys{}, fmt.Errorf("email key: %w", err)
	}
	secret := stored.Secret
	if stored.Sealed {
		if kek == nil {
			return emailKeys{}, errors.New("email key: it is sealed and KEY_ENCRYPTION_KEY is not set")
		}
		if secret, err = OpenKey(kek, emailSecretAD, secret); err != nil {
			return emailKeys{}, errors.New("email key: it does not open with KEY_ENCRYPTION_KEY")
		}
	}
	return deriveEmailKeys(secret)
}

// EmailConfig is the mail side of the configuration.
type EmailConfig struct {
	// Verification is EMAIL_VERIFICATION.
	Verification VerificationMode
	// LinkBase is EMAIL_LINK_BASE: mail links are LinkBase + "/verify#token=…".
	LinkBase string
	// From is MAIL_FROM; its domain ends every Message-ID.
	From string
}

// domain is the domain of MAIL_FROM (letters, digits, dots and hyphens
// only), for Message-IDs.
func (c EmailConfig) domain() string {
	from := strings.TrimSpace(c.From)
	i := strings.LastIndexByte(from, '@')
	if i < 0 {
		return "localhost"
	}
	d := strings.TrimRight(from[i+1:], "> ")
	if d == "" || strings.IndexFunc(d, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-')
	}) >= 0 {
		return "localhost"
	}
	return d
}
