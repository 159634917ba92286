package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/acme/accounts/internal/auth"
	"github.com/acme/accounts/internal/mail"
)

// Config is every setting, read from the environment in one place.
type Config struct {
	DatabaseURL     string
	Addr            string
	Issuer          string
	Audience        string
	AccessTTL       time.Duration
	RefreshTTL      time.Duration
	SessionMaxAge   time.Duration
	ReuseGrace      time.Duration
	Leeway          time.Duration
	LoginRateLimit  auth.RateLimit
	IPRateLimit     auth.RateLimit
	GlobalRateLimit auth.RateLimit
	MaxSessions     int
	// LegacyRefreshTokens: REFRESH_TOKEN_FORMAT=1, for a rolling upgrade.
	LegacyRefreshTokens bool
	PasswordMinLength   int
	Argon2              auth.Argon2Params
	JWTAlg              string
	JWTSecret           []byte
	KEK                 []byte
	OldKEK              []byte
	TLSCertFile         string
	TLSKeyFile          string
	TrustedProxies      []string
	CORSOrigins         []string
	AuditRetention      time.Duration
	LogLevel            slog.Level
	MigrateOnStart      bool
	// Scale-out and operations.
	ListenDatabaseURL string
	MaxConns          int
	StatementCache    string
	StatementTimeout  time.Duration
	// RevocationHeartbeat: how often the listener is proved alive.
	RevocationHeartbeat time.Duration
	DebugAddr           string
	// Mail.
	SMTPURL           string
	MailFrom          string
	EmailVerification auth.VerificationMode
	EmailLinkBase     string
	AccountPages      bool
}

// loadConfig parses and validates the environment. Every bad variable is
// named in the one error returned.
func loadConfig(getenv func(string) string) (Config, error) {
	p := envParser{getenv: getenv}
	c := Config{
		DatabaseURL:       p.str("DATABASE_URL", ""),
		Addr:              p.str("ADDR", ":8080"),
		Issuer:            p.str("JWT_ISSUER", "http://localhost:8080"),
		Audience:          p.str("JWT_AUDIENCE", "accounts"),
		AccessTTL:         p.duration("ACCESS_TOKEN_TTL", "15m", time.Second),
		RefreshTTL:        p.duration("REFRESH_TOKEN_TTL", "720h", time.Second),
		SessionMaxAge:     p.duration("SESSION_MAX_AGE", "2160h", time.Second),
		ReuseGrace:        p.duration("REFRESH_REUSE_GRACE", "10s", 0),
		Leeway:            p.duration("JWT_LEEWAY", "5s", 0),
		LoginRateLimit:    p.rate("LOGIN_RATE_LIMIT", "10/15m"),
		IPRateLimit:       p.rate("IP_RATE_LIMIT", "300/1m"),
		GlobalRateLimit:   p.rate("GLOBAL_RATE_LIMIT", "0"),
		MaxSessions:       p.integer("MAX_SESSIONS_PER_USER", "100", 0, 1_000_000),
		PasswordMinLength: p.integer("PASSWORD_MIN_LENGTH", "12", 1, 1024),
		Argon2: auth.Argon2Params{
			MemoryKiB: uint32(p.integer("ARGON2_MEMORY_KIB", "19456", 8, 4<<20)),
			Time:      uint32(p.integer("ARGON2_TIME", "2", 1, 100)),
			Threads:   uint8(p.integer("ARGON2_THREADS", "1", 1, 255)),
		},
		JWTAlg:              p.str("JWT_ALG", auth.AlgEdDSA),
		TLSCertFile:         p.str("TLS_CERT_FILE", ""),
		TLSKeyFile:          p.str("TLS_KEY_FILE", ""),
		MigrateOnStart:      p.boolean("MIGRATE_ON_START", "true"),
		AuditRetention:      p.duration("AUDIT_RETENTION", "2160h", time.Hour),
		ListenDatabaseURL:   p.str("LISTEN_DATABASE_URL", ""),
		MaxConns:            p.integer("DATABASE_MAX_CONNS", strconv.Itoa(defaultMaxConns()), 2, 10000),
		StatementCache:      p.str("DATABASE_STATEMENT_CACHE", "prepare"),
		StatementTimeout:    p.duration("DATABASE_STATEMENT_TIMEOUT", "5s", 0),
		DebugAddr:           p.str("DEBUG_ADDR", ""),
		RevocationHeartbeat: p.duration("REVOCATION_HEARTBEAT", "1s", 50*time.Millisecond),
		SMTPURL:             p.str("SMTP_URL", ""),
		MailFrom:            p.str("MAIL_FROM", "Accounts <no-reply@localhost>"),
		AccountPages:        p.boolean("ACCOUNT_PAGES", "true"),
	}
	switch v := p.str("EMAIL_VERIFICATION", "optional"); v {
	case "optional":
		c.EmailVerification = auth.VerificationOptional
	case "off":
		c.EmailVerification = auth.VerificationOff
	case "required":
		c.EmailVerification = auth.VerificationRequired
		if c.SMTPURL == "" {
			p.fail("EMAIL_VERIFICATION", "required needs SMTP_URL: without mail nobody could verify, so nobody could log in")
		}
	default:
		p.fail("EMAIL_VERIFICATION", fmt.Sprintf("%q is not off, optional or required", v))
	}
	if c.SMTPURL != "" {
		// Parsed here, so that every bad variable is named at once (mail.New
		// names SMTP_URL or MAIL_FROM, and never shows a password).
		if _, err := mail.New(c.SMTPURL, c.MailFrom, mail.Options{}); err != nil {
			p.errs = append(p.errs, err)
		}
	}
	c.EmailLinkBase = strings.TrimRight(p.str("EMAIL_LINK_BASE", strings.TrimRight(c.Issuer, "/")+"/account"), "/")
	if u, err := url.Parse(c.EmailLinkBase); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		p.fail("EMAIL_LINK_BASE", fmt.Sprintf("%q is not an http(s) URL without query or fragment, such as https://auth.example.com/account", c.EmailLinkBase))
	}
	switch f := p.str("REFRESH_TOKEN_FORMAT", "2"); f {
	case "1":
		c.LegacyRefreshTokens = true
	case "2":
	default:
		p.fail("REFRESH_TOKEN_FORMAT", fmt.Sprintf("%q is not 2 (the default) or 1 (during a rolling upgrade from a release before format 2)", f))
	}
	if c.StatementCache != "prepare" && c.StatementCache != "describe" && c.StatementCache != "off" {
		p.fail("DATABASE_STATEMENT_CACHE", "must be prepare, describe (PgBouncer in transaction mode) or off")
	}
	if c.AccessTTL > auth.DefaultMaxAccessTTL && !p.boolean("ACCESS_TOKEN_TTL_FORCE", "false") {
		p.fail("ACCESS_TOKEN_TTL", fmt.Sprintf("%s is over %s; revocation waits for expiry, so set ACCESS_TOKEN_TTL_FORCE=true if you mean it", c.AccessTTL, auth.DefaultMaxAccessTTL))
	}
	if !auth.ValidAlg(c.JWTAlg) {
		p.fail("JWT_ALG", "must be EdDSA, ES256, RS256 or HS256")
	}
	if s := getenv("JWT_SECRET"); c.JWTAlg == auth.AlgHS256 {
		if len(s) < auth.MinHMACSecret {
			p.fail("JWT_SECRET", fmt.Sprintf("must be at least %d bytes with JWT_ALG=HS256", auth.MinHMACSecret))
		}
		c.JWTSecret = []byte(s)
	}
	c.KEK = p.key32("KEY_ENCRYPTION_KEY")
	c.OldKEK = p.key32("OLD_KEY_ENCRYPTION_KEY")
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		p.fail("TLS_CERT_FILE", "and TLS_KEY_FILE must be set together")
	}
	if s := getenv("TRUSTED_PROXIES"); s != "" {
		for _, cidr := range strings.Split(s, ",") {
			cidr = strings.TrimSpace(cidr)
			if _, err := netip.ParsePrefix(cidr); err != nil {
				p.fail("TRUSTED_PROXIES", fmt.Sprintf("%q is not a CIDR", cidr))
				continue
			}
			c.TrustedProxies = append(c.TrustedProxies, cidr)
		}
	}
	if s := getenv("CORS_ALLOWED_ORIGINS"); s != "" {
		for _, o := range strings.Split(s, ",") {
			o = strings.TrimSpace(o)
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" ||
				u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.Contains(o, "*") {
				p.fail("CORS_ALLOWED_ORIGINS", fmt.Sprintf("%q is not an origin such as https://app.example.com (no wildcards)", o))
				continue
			}
			c.CORSOrigins = append(c.CORSOrigins, o)
		}
	}
	if s := getenv("LOG_LEVEL"); s != "" {
		if err := c.LogLevel.UnmarshalText([]byte(s)); err != nil {
			p.fail("LOG_LEVEL", "must be debug, info, warn or error")
		}
	}
	if c.SessionMaxAge < c.AccessTTL {
		p.fail("SESSION_MAX_AGE", "must be at least ACCESS_TOKEN_TTL")
	}
	if c.Issuer == "" {
		p.fail("JWT_ISSUER", "must not be empty")
	}
	if c.Audience == "" {
		p.fail("JWT_AUDIENCE", "must not be empty")
	}
	return c, errors.Join(p.errs...)
}

// defaultMaxConns sizes the pool from the CPU count: enough to keep the
// database busy while requests wait on the network, not so many that a
// fleet of instances exhausts max_connections.
func defaultMaxConns() int { return max(4, 4*runtime.NumCPU()) }

// requireDatabase checks DATABASE_URL, which every command but help needs.
func (c Config) requireDatabase() error {
	if c.DatabaseURL == "" {
		return errors.New("DATABASE_URL: is required (a PostgreSQL URL such as postgres://user@localhost:5432/accounts)")
	}
	return nil
}

type envParser struct {
	getenv func(string) string
	errs   []error
}

func (p *envParser) fail(name, msg string) { p.errs = append(p.errs, fmt.Errorf("%s: %s", name, msg)) }

func (p *envParser) str(name, def string) string {
	if v := p.getenv(name); v != "" {
		return v
	}
	return def
}

func (p *envParser) duration(name, def string, min time.Duration) time.Duration {
	s := p.str(name, def)
	d, err := time.ParseDuration(s)
	if err != nil || d < min {
		p.fail(name, fmt.Sprintf("%q is not a Go duration of at least %s (for example %s)", s, min, def))
		d, _ = time.ParseDuration(def)
	}
	return d
}

func (p *envParser) integer(name, def string, min, max int) int {
	s := p.str(name, def)
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		p.fail(name, fmt.Sprintf("%q is not a whole number from %d to %d", s, min, max))
		n, _ = strconv.Atoi(def)
	}
	return n
}

func (p *envParser) boolean(name, def string) bool {
	s := p.str(name, def)
	b, err := strconv.ParseBool(s)
	if err != nil {
		p.fail(name, fmt.Sprintf("%q is not true or false", s))
		b, _ = strconv.ParseBool(def)
	}
	return b
}

// key32 reads a base64 32-byte key; unset is nil.
func (p *envParser) key32(name string) []byte {
	s := p.getenv(name)
	if s == "" {
		return nil
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(k) != 32 {
		p.fail(name, "must be 32 bytes, base64-encoded (openssl rand -base64 32)")
		return nil
	}
	return k
}

func (p *envParser) rate(name, def string) auth.RateLimit {
	s := p.str(name, def)
	if s == "0" {
		return auth.RateLimit{}
	}
	n, w, ok := strings.Cut(s, "/")
	count, err1 := strconv.Atoi(n)
	window, err2 := time.ParseDuration(w)
	if !ok || err1 != nil || err2 != nil || count < 1 || window <= 0 {
		p.fail(name, fmt.Sprintf("%q is not COUNT/DURATION (for example 300/1m) or 0", s))
		return auth.RateLimit{}
	}
	return auth.RateLimit{N: count, Window: window}
}

// redactURL hides the password of a connection URL, for logs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "(unparsed connection string)"
	}
	return u.Redacted()
}
