package mail

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	gomail "github.com/wneessen/go-mail"
	"golang.org/x/net/idna"

	"github.com/acme/accounts/internal/auth"
)

var _ auth.Mailer = (*Mailer)(nil)

// Send renders m and delivers it: over one SMTP connection, or to a file.
// An error wrapping auth.ErrMailRejected is permanent: the server answered
// the transaction with a 5xx code, or m itself can never be sent (unknown
// kind, a Message-ID outside the safe alphabet, a recipient whose local
// part is not ASCII, ...). Any other error is temporary: 4xx replies,
// network errors, timeouts, and failures before the transaction (TLS,
// STARTTLS missing, AUTH refused), which concern the server or the
// configuration rather than this mail. A mail the server acknowledged is
// sent, whatever happens to the connection afterwards. ctx bounds the whole
// conversation: when it ends, the connection is closed.
func (m *Mailer) Send(ctx context.Context, am auth.Mail) error {
	msg, err := m.message(am)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mail: sending %s: %w", am.MessageID, err)
	}
	if m.transport == transportFile {
		return m.writeFile(msg, am.MessageID)
	}
	return m.sendSMTP(ctx, msg, am.MessageID)
}

// invalid is an error for a mail that can never be sent.
func invalid(am auth.Mail, format string, args ...any) error {
	return fmt.Errorf("mail: cannot send %s mail %s: %s: %w", kindName(am.Kind), am.MessageID, fmt.Sprintf(format, args...), auth.ErrMailRejected)
}

// kindName is k for an error message: quoted unless it is a known kind.
func kindName(k auth.MailKind) string {
	if _, ok := kinds[k]; ok {
		return string(k)
	}
	return fmt.Sprintf("%q", k)
}

// message renders am into a go-mail message.
func (m *Mailer) message(am auth.Mail) (*gomail.Msg, error) {
	if !validMessageID(am.MessageID) {
		// Not repeated: it may hold anything.
		return nil, fmt.Errorf("mail: cannot send %s mail: the Message-ID is not local@domain in the safe alphabet [A-Za-z0-9._+=-]: %w", kindName(am.Kind), auth.ErrMailRejected)
	}
	if am.Date.IsZero() {
		return nil, invalid(am, "no Date")
	}
	to, err := recipient(am.To)
	if err != nil {
		return nil, invalid(am, "recipient: %v", err)
	}
	subject, text, html, err := Render(am)
	if err != nil {
		return nil, invalid(am, "%s", strings.TrimPrefix(err.Error(), "mail: "))
	}
	// A boundary derived from the Message-ID: a retry renders the same
	// bytes.
	sum := sha256.Sum256([]byte("boundary\x00" + am.MessageID))
	msg := gomail.NewMsg(gomail.WithEncoding(gomail.EncodingQP), gomail.WithCharset(gomail.CharsetUTF8),
		gomail.WithNoDefaultUserAgent(), gomail.WithBoundary(hex.EncodeToString(sum[:16])))
	msg.SetAddrHeaderFromMailAddress(gomail.HeaderFrom, m.from)
	msg.SetAddrHeaderFromMailAddress(gomail.HeaderTo, to)
	msg.Subject(stripCRLF(subject))
	msg.SetDateWithValue(am.Date.UTC())
	msg.SetMessageIDWithValue(am.MessageID) // go-mail adds the <>
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	// The text part goes unencoded when it is plain ASCII with short lines,
	// so that its link stays whole even in the raw message (a .eml opened
	// in an editor, a grep); quoted-printable otherwise. go-mail labels an
	// unencoded part "8bit" (its "7bit" encodes as quoted-printable anyway);
	// for ASCII text the two say the same.
	if sevenBit(text) {
		// Unencoded, the text goes as written: with CRLF line ends, as
		// SMTP sends them (and as the file:// transport must write them).
		text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\n", "\r\n")
		msg.SetBodyString(gomail.TypeTextPlain, text, gomail.WithPartEncoding(gomail.NoEncoding))
	} else {
		msg.SetBodyString(gomail.TypeTextPlain, text)
	}
	msg.AddAlternativeString(gomail.TypeTextHTML, html)
	return msg, nil
}

// recipient parses one address. Its local part must be ASCII (we do not
// speak SMTPUTF8, and a server that does not either refuses it); a
// non-ASCII domain is sent as its A-label (punycode).
func recipient(to string) (*netmail.Address, error) {
	if strings.ContainsAny(to, "\r\n") {
		return nil, errors.New("contains a line break")
	}
	a, err := netmail.ParseAddress(to)
	if err != nil {
		return nil, errors.New("not one email address")
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at < 1 || at == len(a.Address)-1 {
		return nil, errors.New("not local@domain")
	}
	local, domain := a.Address[:at], a.Address[at+1:]
	if !isASCII(local) {
		return nil, errors.New("the local part is not ASCII")
	}
	if !isASCII(domain) {
		if domain, err = idna.Lookup.ToASCII(domain); err != nil {
			return nil, errors.New("the domain is not a valid international domain name")
		}
	}
	if strings.ContainsFunc(a.Name, isControl) {
		return nil, errors.New("the display name contains control characters")
	}
	return &netmail.Address{Name: a.Name, Address: local + "@" + domain}, nil
}

// validMessageID accepts local@domain, each a dot-atom over the safe
// alphabet (domain: letters, digits, '-' and '.').
func validMessageID(id string) bool {
	if len(id) > 250 {
		return false
	}
	left, right, ok := strings.Cut(id, "@")
	if !ok || !dotAtom(left, "._+=-") || !dotAtom(right, ".-") {
		return false
	}
	return true
}

func dotAtom(s, extra string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

func stripCRLF(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
}

// client builds a go-mail client for one Send; d dials (nil: only check
// the options).
func (m *Mailer) client(d *dialer) (*gomail.Client, error) {
	opts := []gomail.Option{
		gomail.WithPort(m.port),
		gomail.WithTimeout(m.timeout),
		gomail.WithTLSConfig(m.tls),
	}
	switch m.transport {
	case transportSMTPS:
		opts = append(opts, gomail.WithSSL()) // the dialer does the TLS handshake
	case transportSTARTTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if m.helo != "" {
		opts = append(opts, gomail.WithHELO(m.helo))
	}
	if m.authType != "" {
		opts = append(opts, gomail.WithSMTPAuth(m.authType), gomail.WithUsername(m.user), gomail.WithPassword(m.password))
	}
	if d != nil {
		opts = append(opts, gomail.WithDialContextFunc(d.dial))
	}
	return gomail.NewClient(m.host, opts...)
}

// dialer dials for one Send and closes its connection when the Send's
// context ends: go-mail's context only bounds the dial.
type dialer struct {
	ctx      context.Context
	implicit *tls.Config // smtps: handshake right after connecting

	mu    sync.Mutex
	stops []func() bool
}

func (d *dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(d.ctx, func() { _ = conn.Close() })
	d.mu.Lock()
	d.stops = append(d.stops, stop)
	d.mu.Unlock()
	if d.implicit == nil {
		return conn, nil
	}
	tc := tls.Client(conn, d.implicit)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return tc, nil // a *tls.Conn: go-mail's smtp client then knows it is encrypted
}

func (d *dialer) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.stops {
		s()
	}
}

func (m *Mailer) sendSMTP(ctx context.Context, msg *gomail.Msg, id string) error {
	d := &dialer{ctx: ctx}
	if m.transport == transportSMTPS {
		d.implicit = m.tls
	}
	c, err := m.client(d)
	if err != nil {
		return fmt.Errorf("mail: sending %s: %w", id, redact(err, m.password))
	}
	err = c.DialAndSendWithContext(ctx, msg)
	d.stop()
	if msg.IsDelivered() {
		// 250 after DATA: a failing RSET or QUIT afterwards changes nothing.
		return nil
	}
	if err == nil {
		return fmt.Errorf("mail: sending %s: not delivered, no error", id)
	}
	where := net.JoinHostPort(m.host, strconv.Itoa(m.port))
	err = &smtpError{msg: describe(err, m.password), err: err}
	if rejected(err) {
		return fmt.Errorf("mail: sending %s via %s: %w: %w", id, where, auth.ErrMailRejected, err)
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("mail: sending %s via %s: %w: %w", id, where, cerr, err)
	}
	return fmt.Errorf("mail: sending %s via %s: %w", id, where, err)
}

// smtpError is go-mail's error with a shorter text.
type smtpError struct {
	msg string
	err error
}

func (e *smtpError) Error() string { return e.msg }
func (e *smtpError) Unwrap() error { return e.err }

// describe is go-mail's error text without the recipients (which end up
// in logs and audit records) and the Message-ID (said once already), on
// one line, without the password should it ever appear.
func describe(err error, password string) string {
	var parts []string
	for _, l := range strings.Split(redact(err, password).Error(), "\n") {
		for _, cut := range []string{", affected recipient(s): ", ", affected message ID: "} {
			l, _, _ = strings.Cut(l, cut)
		}
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// rejected tells a permanent refusal of the mail: a 5xx reply in the
// transaction (MAIL, RCPT, DATA), or a message go-mail cannot send.
// Everything else is worth another try: 4xx replies, network errors (go-mail
// reports those with code 0 and IsTemp false), and the dial stage (greeting,
// EHLO, STARTTLS, AUTH), which is about the server, not this mail.
func rejected(err error) bool {
	var se *gomail.SendError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Reason {
	case gomail.ErrGetSender, gomail.ErrGetRcpts, gomail.ErrNoUnencoded:
		return true
	}
	code := se.ErrorCode()
	return code >= 500 && code <= 599
}

// writeFile writes the message, as SMTP would send it, to
// DIR/<message id>.eml, atomically: a retry replaces the file.
func (m *Mailer) writeFile(msg *gomail.Msg, id string) (err error) {
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return fmt.Errorf("mail: rendering %s: %w", id, err)
	}
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return fmt.Errorf("mail: writing %s: %w", id, err)
	}
	f, err := os.CreateTemp(m.dir, ".tmp-*.eml") // mode 0600
	if err != nil {
		return fmt.Errorf("mail: writing %s: %w", id, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("mail: writing %s: %w", id, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("mail: writing %s: %w", id, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("mail: writing %s: %w", id, err)
	}
	if err = os.Rename(f.Name(), filepath.Join(m.dir, FileName(id))); err != nil {
		return fmt.Errorf("mail: writing %s: %w", id, err)
	}
	return nil
}

// FileName is the name, in a file:// directory, of the message with this
// Message-ID (without <>): the ID with any character outside
// [A-Za-z0-9._+=@-] replaced by '_', and ".eml".
func FileName(messageID string) string {
	b := []byte(messageID)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._+=@-", c) >= 0) || i == 0 && c == '.' {
			b[i] = '_'
		}
	}
	return string(b) + ".eml"
}

// sevenBit reports whether text can travel as 7bit: ASCII without control
// characters but tab and line ends, no line over 900 bytes (the limit is
// 998), no bare CR.
func sevenBit(text string) bool {
	line := 0
	for i := range len(text) {
		c := text[i]
		switch {
		case c == '\n':
			line = 0
			continue
		case c == '\r':
			if i+1 >= len(text) || text[i+1] != '\n' {
				return false
			}
			continue
		case c == '\t':
		case c < ' ' || c > '~':
			return false
		}
		if line++; line > 900 {
			return false
		}
	}
	return true
}
