// Package mailtest is an in-process SMTP server for tests (go-smtp on
// 127.0.0.1), with fault injection, and a parser for the messages it
// receives or that a file:// Mailer writes.
package mailtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// DefaultWait is how long Wait waits when given no timeout.
const DefaultWait = 30 * time.Second

// Options selects what a Server offers.
type Options struct {
	// STARTTLS advertises STARTTLS (a self-signed certificate for
	// 127.0.0.1 and localhost).
	STARTTLS bool
	// ImplicitTLS makes the server smtps: TLS from the first byte.
	ImplicitTLS bool
	// User and Password, when User is set, make the server advertise AUTH
	// PLAIN and LOGIN and require it before MAIL FROM. With neither TLS
	// option, AUTH is offered over plaintext.
	User, Password string
}

// Server is an SMTP server listening on 127.0.0.1. Its methods are safe
// for concurrent use.
type Server struct {
	t    testing.TB
	opts Options
	cert tls.Certificate
	pool *x509.CertPool
	addr string // 127.0.0.1:PORT, the same across Down and Up

	upDown sync.Mutex // held through Down and Up: the port is free or ours

	mu       sync.Mutex
	srv      *gosmtp.Server // nil while down
	ln       net.Listener   // srv's
	served   chan struct{}  // closed when srv's Serve returned
	closed   bool
	msgs     []Message
	arrived  chan struct{} // closed (and replaced) when a message arrives
	failN    int
	failCode int
	dropN    int
}

// Start starts a server with these options; it stops at the test's
// cleanup.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.STARTTLS && o.ImplicitTLS {
		t.Fatal("mailtest: STARTTLS and ImplicitTLS exclude each other")
	}
	if o.User == "" && o.Password != "" {
		t.Fatal("mailtest: a Password needs a User")
	}
	cert, pool, err := selfSigned()
	if err != nil {
		t.Fatalf("mailtest: certificate: %v", err)
	}
	s := &Server{t: t, opts: o, cert: cert, pool: pool, arrived: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailtest: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	s.mu.Lock()
	s.serve(ln)
	s.mu.Unlock()
	t.Cleanup(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.Down()
	})
	return s
}

// serve starts a go-smtp server on ln; s.mu is held.
func (s *Server) serve(ln net.Listener) {
	srv := gosmtp.NewServer(&backend{s: s})
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 50
	srv.ErrorLog = log.New(io.Discard, "", 0)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{s.cert}, MinVersion: tls.VersionTLS12}
	switch {
	case s.opts.STARTTLS:
		srv.TLSConfig = tlsCfg
	case s.opts.ImplicitTLS:
		srv.TLSConfig = tlsCfg
		ln = tls.NewListener(ln, tlsCfg)
	default:
		srv.AllowInsecureAuth = true // AUTH over plaintext, as asked for
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	s.srv, s.ln, s.served = srv, ln, served
}

// URL is the SMTP_URL a client should use: smtps://, smtp:// (STARTTLS)
// or smtp+insecure://, with the credentials if any.
func (s *Server) URL() string {
	u := url.URL{Scheme: "smtp+insecure", Host: s.addr}
	switch {
	case s.opts.ImplicitTLS:
		u.Scheme = "smtps"
	case s.opts.STARTTLS:
		u.Scheme = "smtp"
	}
	if s.opts.User != "" {
		u.User = url.UserPassword(s.opts.User, s.opts.Password)
	}
	return u.String()
}

// Addr is the server's address, 127.0.0.1:PORT.
func (s *Server) Addr() string { return s.addr }

// TLSConfig is a client TLS configuration that trusts the server's
// certificate.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12}
}

// FailNext makes the next n messages fail at the end of DATA (after the
// message was read, before it is stored) with code, e.g. 451 or 550,
// and its enhanced status code (451: 4.3.0, 550: 5.7.1, otherwise X.0.0).
// n = 0 cancels.
func (s *Server) FailNext(n, code int) {
	if code < 400 || code > 599 {
		panic(fmt.Sprintf("mailtest: FailNext code %d is not 4xx or 5xx", code))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failCode = n, code
}

// DropAfterData makes the next n messages be stored as received and then
// their connection closed without the final reply: delivered, but not
// acknowledged. n = 0 cancels.
func (s *Server) DropAfterData(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropN = n
}

// Down stops the server: the listener and every connection are closed, so
// connecting is refused until Up.
func (s *Server) Down() {
	s.upDown.Lock()
	defer s.upDown.Unlock()
	s.mu.Lock()
	srv, ln, served := s.srv, s.ln, s.served
	s.srv, s.ln, s.served = nil, nil, nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	_ = srv.Close()
	// Close closes the listeners Serve has registered; the goroutine may
	// not have got that far.
	_ = ln.Close()
	<-served
}

// Up listens again on the same port after Down.
func (s *Server) Up() {
	s.upDown.Lock()
	defer s.upDown.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil || s.closed {
		return
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Errorf("mailtest: listening again on %s: %v", s.addr, err)
		return
	}
	s.serve(ln)
}

// Messages are the messages received so far, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait waits until at least n messages have arrived and returns them all;
// after timeout (0: DefaultWait) it fails the test. Call it from the test's
// goroutine.
func (s *Server) Wait(t testing.TB, timeout time.Duration, n int) []Message {
	t.Helper()
	if timeout <= 0 {
		timeout = DefaultWait
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			msgs := append([]Message(nil), s.msgs...)
			s.mu.Unlock()
			return msgs
		}
		arrived, got := s.arrived, len(s.msgs)
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-timer.C:
			t.Fatalf("mailtest: waited %v for %d messages at %s, got %d", timeout, n, s.addr, got)
			return nil
		}
	}
}

// store records a message; it reports whether its connection is to be
// dropped, or the error to answer.
func (s *Server) store(m Message) (drop bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failN > 0 {
		s.failN--
		return false, smtpError(s.failCode)
	}
	s.msgs = append(s.msgs, m)
	close(s.arrived)
	s.arrived = make(chan struct{})
	if s.dropN > 0 {
		s.dropN--
		return true, nil
	}
	return false, nil
}

func smtpError(code int) *gosmtp.SMTPError {
	ec := gosmtp.EnhancedCode{code / 100, 0, 0}
	msg := "Requested action not taken"
	switch {
	case code == 421:
		ec, msg = gosmtp.EnhancedCode{4, 3, 2}, "Service not available, closing transmission channel"
	case code == 451:
		ec, msg = gosmtp.EnhancedCode{4, 3, 0}, "Requested action aborted: try again later"
	case code == 550:
		ec, msg = gosmtp.EnhancedCode{5, 7, 1}, "Message rejected"
	case code == 552:
		ec, msg = gosmtp.EnhancedCode{5, 3, 4}, "Message too big"
	case code == 554:
		ec, msg = gosmtp.EnhancedCode{5, 6, 0}, "Transaction failed"
	case code < 500:
		msg = "Try again later"
	}
	return &gosmtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}
}

// backend implements gosmtp.Backend.
type backend struct{ s *Server }

func (b *backend) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &session{s: b.s, c: c, tls: isTLS}, nil
}

// session implements gosmtp.AuthSession. go-smtp calls NewSession again
// after STARTTLS.
type session struct {
	s        *Server
	c        *gosmtp.Conn
	tls      bool
	authUser string
	from     string
	to       []string
}

var _ gosmtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.User == "" {
		return nil // no AUTH in the EHLO reply
	}
	return []string{sasl.Plain, sasl.Login}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		if user != ss.s.opts.User || pass != ss.s.opts.Password {
			return gosmtp.ErrAuthFailed
		}
		ss.authUser = user
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, gosmtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if ss.s.opts.User != "" && ss.authUser == "" {
		return gosmtp.ErrAuthRequired // go-smtp does not enforce AUTH itself
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := ParseEML(raw)
	if err != nil {
		m = Message{Raw: raw, ParseError: err}
	}
	m.From, m.To, m.TLS, m.AuthUser, m.Helo = ss.from, append([]string(nil), ss.to...), ss.tls, ss.authUser, ss.c.Hostname()
	drop, err := ss.s.store(m)
	if drop {
		_ = ss.c.Conn().Close() // go-smtp's reply then goes nowhere
		return nil
	}
	return err
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error { return nil }

// loginServer is the server side of SASL LOGIN (go-sasl has only the
// client).
type loginServer struct {
	step  int
	user  string
	check func(user, pass string) error
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if len(resp) == 0 {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(l.user, string(resp))
	}
}

var (
	certOnce sync.Once
	certVal  tls.Certificate
	certPool *x509.CertPool
	errCert  error
)

// selfSigned is a certificate for 127.0.0.1 and localhost (made once per
// process) and a pool that trusts it.
func selfSigned() (tls.Certificate, *x509.CertPool, error) {
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			errCert = err
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "localhost"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(7 * 24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true, // the leaf is its own root
			DNSNames:              []string{"localhost"},
			IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			errCert = err
			return
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			errCert = err
			return
		}
		certPool = x509.NewCertPool()
		certPool.AddCert(leaf)
		certVal = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	})
	if errCert != nil {
		return tls.Certificate{}, nil, errors.New("mailtest: " + errCert.Error())
	}
	return certVal, certPool, nil
}
