package mail

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// DefaultTimeout bounds each SMTP command (and the dial) when
// Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Options tunes a Mailer. The zero value is ready to use.
type Options struct {
	// TLSConfig is the client TLS configuration for smtps and STARTTLS;
	// nil means the system roots. It is cloned; an empty ServerName is set
	// to the host of the URL.
	TLSConfig *tls.Config
	// HELO is the name given in EHLO; "" means the host name of the
	// machine.
	HELO string
	// Timeout bounds the dial and each SMTP command; 0 means
	// DefaultTimeout.
	Timeout time.Duration
}

// transport is how a Mailer delivers.
type transport uint8

const (
	transportSMTPS    transport = iota + 1 // implicit TLS
	transportSTARTTLS                      // STARTTLS required
	transportInsecure                      // no TLS at all
	transportFile                          // one .eml file per message
)

// Mailer sends mails over SMTP, or writes them to a directory; it
// implements auth.Mailer and is safe for concurrent use.
type Mailer struct {
	transport transport
	scheme    string
	host      string
	port      int
	user      string
	password  string
	authType  gomail.SMTPAuthType // "" without credentials
	tls       *tls.Config
	helo      string
	timeout   time.Duration
	dir       string // transportFile
	from      *netmail.Address
}

// New returns a Mailer for smtpURL (SMTP_URL) that sends as from
// (MAIL_FROM, e.g. "Accounts <no-reply@example.com>"). The URL is one of
//
//	smtps://user:pass@host:465         implicit TLS
//	smtp://user:pass@host:587          STARTTLS, required (never skipped)
//	smtp+insecure://host:port          no TLS: development only
//	file:///dir                        each message written to dir/<message id>.eml
//
// with default ports 465, 587 and 25, optional credentials (reserved
// characters percent-encoded) and an optional ?auth=plain|login (default
// plain). For file://, the directory is created (0700) if missing.
// Errors name SMTP_URL or MAIL_FROM and never contain the password.
func New(smtpURL, from string, o Options) (*Mailer, error) {
	m := &Mailer{helo: o.HELO, timeout: o.Timeout}
	if err := m.parseURL(smtpURL); err != nil {
		return nil, err
	}
	addr, err := parseFrom(from)
	if err != nil {
		return nil, err
	}
	m.from = addr
	if m.timeout == 0 {
		m.timeout = DefaultTimeout
	}
	if m.timeout < 0 {
		return nil, errors.New("mail: Options.Timeout is negative")
	}
	if m.helo != "" && !validHELO(m.helo) {
		return nil, errors.New("mail: Options.HELO is not a host name")
	}
	if m.transport == transportFile {
		if err := os.MkdirAll(m.dir, 0o700); err != nil {
			return nil, fmt.Errorf("mail: SMTP_URL: creating the directory: %w", err)
		}
		return m, nil
	}
	cfg := &tls.Config{}
	if o.TLSConfig != nil {
		cfg = o.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = m.host // go-mail needs it for STARTTLS
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	m.tls = cfg
	// go-mail checks its options here, not at the first Send.
	if _, err := m.client(nil); err != nil {
		return nil, fmt.Errorf("mail: SMTP_URL: %w", redact(err, m.password))
	}
	return m, nil
}

// parseURL fills in the transport fields from SMTP_URL. Its errors are
// built from fixed text only: the URL, even cut into pieces, may hold the
// password.
func (m *Mailer) parseURL(raw string) error {
	if strings.TrimSpace(raw) == "" {
		return errors.New("mail: SMTP_URL is not set")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL, and the text of its cause may hold a
		// piece of it.
		return errors.New("mail: SMTP_URL is not a valid URL (percent-encode the reserved characters / ? # @ : in the user and password)")
	}
	m.scheme = u.Scheme
	switch u.Scheme {
	case "smtps":
		m.transport, m.port = transportSMTPS, gomail.DefaultPortSSL
	case "smtp":
		m.transport, m.port = transportSTARTTLS, gomail.DefaultPortTLS
	case "smtp+insecure":
		m.transport, m.port = transportInsecure, gomail.DefaultPort
	case "file":
		return m.parseFileURL(u)
	case "":
		return errors.New("mail: SMTP_URL has no scheme (want smtps://, smtp://, smtp+insecure:// or file://)")
	default:
		// The scheme is [A-Za-z][A-Za-z0-9+.-]* (url.Parse checks), and
		// comes before the user and password.
		return fmt.Errorf("mail: SMTP_URL has the unsupported scheme %q (want smtps, smtp, smtp+insecure or file)", u.Scheme)
	}
	if u.Opaque != "" {
		return errors.New("mail: SMTP_URL must look like scheme://host:port")
	}
	if u.Path != "" && u.Path != "/" {
		return errors.New("mail: SMTP_URL has a path (percent-encode the reserved characters / ? # @ : in the user and password)")
	}
	if u.Fragment != "" || u.RawFragment != "" || strings.Contains(raw, "#") {
		return errors.New("mail: SMTP_URL has a fragment (percent-encode the reserved characters / ? # @ : in the user and password)")
	}
	m.host = u.Hostname()
	if m.host == "" {
		return errors.New("mail: SMTP_URL has no host")
	}
	if p := u.Port(); p != "" { // digits only: url.Parse checks
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return errors.New("mail: SMTP_URL has an invalid port (want 1 to 65535)")
		}
		m.port = n
	} else if strings.HasSuffix(u.Host, ":") {
		return errors.New("mail: SMTP_URL has an empty port")
	}
	if u.User != nil {
		m.user = u.User.Username()
		pass, ok := u.User.Password()
		if m.user == "" {
			return errors.New("mail: SMTP_URL has a password but no user")
		}
		if !ok || pass == "" {
			return errors.New("mail: SMTP_URL has a user but no password")
		}
		m.password = pass
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return errors.New("mail: SMTP_URL has an invalid query")
	}
	for k := range q {
		if k != "auth" {
			return errors.New("mail: SMTP_URL has an unknown parameter (only ?auth=plain|login is known)")
		}
	}
	mech := "plain"
	if v, ok := q["auth"]; ok {
		if len(v) != 1 {
			return errors.New("mail: SMTP_URL: ?auth is given more than once")
		}
		mech = strings.ToLower(v[0])
		if m.user == "" {
			return errors.New("mail: SMTP_URL has ?auth but no user and password")
		}
	}
	if m.user == "" {
		return nil
	}
	// go-mail refuses PLAIN and LOGIN without TLS unless the host is
	// loopback; smtp+insecure asks for exactly that, so it gets the
	// NOENC variants.
	insecure := m.transport == transportInsecure
	switch {
	case mech == "plain" && insecure:
		m.authType = gomail.SMTPAuthPlainNoEnc
	case mech == "plain":
		m.authType = gomail.SMTPAuthPlain
	case mech == "login" && insecure:
		m.authType = gomail.SMTPAuthLoginNoEnc
	case mech == "login":
		m.authType = gomail.SMTPAuthLogin
	default:
		return errors.New("mail: SMTP_URL: ?auth must be plain or login")
	}
	return nil
}

func (m *Mailer) parseFileURL(u *url.URL) error {
	m.transport = transportFile
	switch {
	case u.User != nil:
		return errors.New("mail: SMTP_URL: file:// takes no user or password")
	case u.Host != "" && u.Host != "localhost":
		return errors.New("mail: SMTP_URL: file:// takes an absolute directory: file:///path/to/dir")
	case u.RawQuery != "" || u.ForceQuery:
		return errors.New("mail: SMTP_URL: file:// takes no query")
	case u.Fragment != "":
		return errors.New("mail: SMTP_URL: file:// takes no fragment")
	case u.Opaque != "" || !filepath.IsAbs(u.Path):
		return errors.New("mail: SMTP_URL: file:// takes an absolute directory: file:///path/to/dir")
	}
	m.dir = filepath.Clean(u.Path)
	return nil
}

// parseFrom checks MAIL_FROM: one address, ASCII, no CR or LF.
func parseFrom(from string) (*netmail.Address, error) {
	if strings.TrimSpace(from) == "" {
		return nil, errors.New("mail: MAIL_FROM is not set")
	}
	if strings.ContainsAny(from, "\r\n") {
		return nil, errors.New("mail: MAIL_FROM contains a line break")
	}
	a, err := netmail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("mail: MAIL_FROM %q is not one email address (like \"Accounts <no-reply@example.com>\"): %w", from, err)
	}
	if !isASCII(a.Address) {
		return nil, fmt.Errorf("mail: MAIL_FROM %q: the address must be ASCII (the display name may be anything)", from)
	}
	if strings.ContainsFunc(a.Name, isControl) {
		return nil, fmt.Errorf("mail: MAIL_FROM %q: the display name contains control characters", from)
	}
	return a, nil
}

// validHELO allows a domain name or an address literal: printable ASCII
// without spaces.
func validHELO(s string) bool {
	if len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// String describes the Mailer for a start-up log line: scheme, host, port
// and user, or the directory; never the password.
func (m *Mailer) String() string {
	if m.transport == transportFile {
		return "file://" + filepath.ToSlash(m.dir) + " (development: writes .eml files)"
	}
	u := url.URL{Scheme: m.scheme, Host: net.JoinHostPort(m.host, strconv.Itoa(m.port))}
	if m.user != "" {
		u.User = url.User(m.user)
	}
	var how string
	switch m.transport {
	case transportSMTPS:
		how = "implicit TLS"
	case transportSTARTTLS:
		how = "STARTTLS required"
	default:
		how = "no TLS: development only"
	}
	if m.user != "" {
		how += ", AUTH " + strings.TrimSuffix(strings.ToUpper(string(m.authType)), "-NOENC")
	}
	return u.String() + " (" + how + ")"
}

// redact replaces the password in err's text, should a dependency ever
// repeat it.
func redact(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "xxxxx"))
}
