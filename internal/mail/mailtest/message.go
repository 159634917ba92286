package mailtest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
)

// Message is a received message, parsed with the standard library.
type Message struct {
	// From and To are the envelope (MAIL FROM, RCPT TO); from ParseEML,
	// the addresses of the From and To headers.
	From string
	To   []string
	// Raw is the message as received (CRLF line endings over SMTP).
	Raw []byte
	// TLS, AuthUser and Helo describe the SMTP session (zero from
	// ParseEML).
	TLS      bool
	AuthUser string
	Helo     string
	// Subject is decoded (RFC 2047); MessageID has no angle brackets;
	// ContentType is the top-level media type, e.g.
	// "multipart/alternative".
	Subject, MessageID, ContentType string
	// Text and HTML are the decoded text/plain and text/html parts.
	Text, HTML string
	Header     mail.Header
	// ParseError is set when the server could not parse what it received
	// (the other parsed fields are then empty).
	ParseError error
}

// ParseEML parses a message: as received over SMTP, written by a file://
// Mailer, or a maildir file (LF line endings are fine). It decodes
// quoted-printable and base64 parts of a multipart message, or a
// single-part body.
func ParseEML(raw []byte) (Message, error) {
	m := Message{Raw: raw}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return m, fmt.Errorf("mailtest: reading the message: %w", err)
	}
	m.Header = msg.Header
	if m.Subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return m, fmt.Errorf("mailtest: decoding the subject: %w", err)
	}
	m.MessageID = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(msg.Header.Get("Message-Id")), "<"), ">")
	if a, err := msg.Header.AddressList("From"); err == nil && len(a) > 0 {
		m.From = a[0].Address
	}
	if a, err := msg.Header.AddressList("To"); err == nil {
		for _, x := range a {
			m.To = append(m.To, x.Address)
		}
	}
	ct := msg.Header.Get("Content-Type")
	if ct == "" {
		ct = "text/plain"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return m, fmt.Errorf("mailtest: Content-Type: %w", err)
	}
	m.ContentType = mt
	if !strings.HasPrefix(mt, "multipart/") {
		body, err := decode(msg.Body, msg.Header.Get("Content-Transfer-Encoding"))
		if err != nil {
			return m, err
		}
		m.setPart(mt, body)
		return m, nil
	}
	if err := m.walk(msg.Body, params["boundary"]); err != nil {
		return m, err
	}
	return m, nil
}

// walk reads the parts of a multipart body, nested ones too.
func (m *Message) walk(body io.Reader, boundary string) error {
	if boundary == "" {
		return fmt.Errorf("mailtest: multipart without a boundary")
	}
	mr := multipart.NewReader(body, boundary)
	for {
		// NextRawPart: the Content-Transfer-Encoding is left to decode.
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("mailtest: reading a part: %w", err)
		}
		ct := p.Header.Get("Content-Type")
		if ct == "" {
			ct = "text/plain"
		}
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			return fmt.Errorf("mailtest: a part's Content-Type: %w", err)
		}
		if strings.HasPrefix(mt, "multipart/") {
			if err := m.walk(p, params["boundary"]); err != nil {
				return err
			}
			continue
		}
		b, err := decode(p, p.Header.Get("Content-Transfer-Encoding"))
		if err != nil {
			return err
		}
		m.setPart(mt, b)
	}
}

func (m *Message) setPart(mediaType string, body []byte) {
	switch mediaType {
	case "text/plain":
		if m.Text == "" {
			m.Text = string(body)
		}
	case "text/html":
		if m.HTML == "" {
			m.HTML = string(body)
		}
	}
}

func decode(r io.Reader, cte string) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r) // skips the line breaks
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("mailtest: decoding a %s body: %w", cte, err)
	}
	return b, nil
}

// Link is the first line of the text part that starts with http:// or
// https:// (in any case), trimmed; "" if none.
func (m Message) Link() string {
	for _, l := range strings.Split(m.Text, "\n") {
		l = strings.TrimSpace(l)
		if lower := strings.ToLower(l); strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://") {
			return l
		}
	}
	return ""
}

// Token is what follows "#token=" in Link; "" if nothing does.
func (m Message) Token() string {
	_, t, _ := strings.Cut(m.Link(), "#token=")
	return t
}

// Code is the only run of exactly 8 digits in the text part; "" if there
// is none, or if there are two different ones (so that a test notices).
func (m Message) Code() string {
	code := ""
	s := m.Text
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j-i == 8 {
			if code != "" && code != s[i:j] {
				return ""
			}
			code = s[i:j]
		}
		i = j
	}
	return code
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
