package mail

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"strings"
	texttemplate "text/template"

	"github.com/acme/accounts/internal/auth"
)

//go:embed templates/*.txt templates/*.html
var templateFS embed.FS

// kindInfo is what a mail kind looks like.
type kindInfo struct {
	subject string
	hasCode bool   // verification, reset and email change carry a code
	action  string // the HTML button's label
}

var kinds = map[auth.MailKind]kindInfo{
	auth.MailVerification:    {subject: "Verify your email address", hasCode: true, action: "Verify email address"},
	auth.MailReset:           {subject: "Reset your password", hasCode: true, action: "Choose a new password"},
	auth.MailEmailChange:     {subject: "Confirm your new email address", hasCode: true, action: "Confirm new email address"},
	auth.MailPasswordChanged: {subject: "Your password was changed", action: "This wasn't me"},
	auth.MailEmailChanged:    {subject: "Your email address was changed", action: "This wasn't me"},
	auth.MailAccountDenied:   {subject: "We stopped access to your account", action: "This wasn't me"},
}

// templates are parsed once, per kind: a text and an HTML template, the
// HTML one inside templates/layout.html.
var (
	textTemplates = map[auth.MailKind]*texttemplate.Template{}
	htmlTemplates = map[auth.MailKind]*htmltemplate.Template{}
)

func init() {
	for k := range kinds {
		name := string(k)
		textTemplates[k] = texttemplate.Must(texttemplate.New(name+".txt").Option("missingkey=error").
			ParseFS(templateFS, "templates/"+name+".txt"))
		htmlTemplates[k] = htmltemplate.Must(htmltemplate.New("layout.html").Option("missingkey=error").
			ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
}

// templateData is what the templates see.
type templateData struct {
	Subject string
	Link    string
	Code    string
	Action  string
}

// Render renders m's subject, text part and HTML part (without sending).
// It checks what the templates show: a known kind, an absolute http(s)
// link of printable ASCII, and an 8-digit code in the kinds that carry
// one (verification, reset, email change) and none in the notices. The text
// part has the link on a line of its own and the code as its only run of
// exactly 8 digits; the HTML part links with <a href> and has no images,
// external resources or scripts. The text has "\n" line endings.
func Render(m auth.Mail) (subject, text, html string, err error) {
	k, ok := kinds[m.Kind]
	if !ok {
		return "", "", "", fmt.Errorf("mail: render: unknown mail kind %q", m.Kind)
	}
	if err := checkLink(m.Link); err != nil {
		return "", "", "", fmt.Errorf("mail: render %s: %w", m.Kind, err)
	}
	switch {
	case k.hasCode && !validCode(m.Code):
		return "", "", "", fmt.Errorf("mail: render %s: the code is not 8 digits", m.Kind)
	case !k.hasCode && m.Code != "":
		return "", "", "", fmt.Errorf("mail: render %s: a notice carries no code", m.Kind)
	}
	d := templateData{Subject: k.subject, Link: m.Link, Code: m.Code, Action: k.action}
	var tb, hb bytes.Buffer
	if err := textTemplates[m.Kind].Execute(&tb, d); err != nil {
		return "", "", "", fmt.Errorf("mail: render %s text: %w", m.Kind, err)
	}
	if err := htmlTemplates[m.Kind].Execute(&hb, d); err != nil {
		return "", "", "", fmt.Errorf("mail: render %s html: %w", m.Kind, err)
	}
	return stripCRLF(k.subject), tb.String(), strings.TrimRight(hb.String(), "\n") + "\n", nil
}

// checkLink accepts an absolute http or https URL of printable ASCII
// (so that it stays one line in the text part).
func checkLink(link string) error {
	if link == "" {
		return fmt.Errorf("no link")
	}
	if len(link) > 2000 {
		return fmt.Errorf("the link is longer than 2000 bytes")
	}
	for i := 0; i < len(link); i++ {
		if link[i] <= ' ' || link[i] >= 0x7f {
			return fmt.Errorf("the link has a character that is not printable ASCII")
		}
	}
	u, err := url.Parse(link)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("the link is not an absolute http(s) URL")
	}
	return nil
}

func validCode(code string) bool {
	return len(code) == 8 && strings.Trim(code, "0123456789") == ""
}
