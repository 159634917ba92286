// Package mail renders the account service's mails (verification, password
// reset, email change, and the notices with a "this wasn't me" link) from
// embedded templates, as multipart/alternative text and HTML, and sends
// them over SMTP (implicit TLS, required STARTTLS, or plaintext for
// development) or writes them as .eml files, with go-mail. *Mailer
// implements auth.Mailer.
//
// Package mailtest holds an in-process SMTP server for tests.
package mail
