package http

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/acme/accounts/internal/auth"
)

// The email endpoints: requests that may cause a mail answer 202 {} the
// same way whatever the address; redemptions answer 204 or 401
// invalid_grant, alike for every reason a token or code does not work.

var errBadOneTimeToken = &requestError{http.StatusUnauthorized, "invalid_grant",
	"the link or code is not valid: it may have expired or been used already"}

// redeemed maps a redemption's auth.ErrInvalidGrant to its own description.
func redeemed(err error) error {
	if errors.Is(err, auth.ErrInvalidGrant) {
		return errBadOneTimeToken
	}
	return err
}

// accepted is the answer of every request endpoint: 202 and an empty object.
func accepted(w http.ResponseWriter) {
	writeJSON(w, http.StatusAccepted, struct{}{})
}

type emailRequest struct {
	Email string `json:"email"`
}

// handleRequestVerification queues a verification mail: to the address in
// the body, or with a bearer token (and no body) to the caller's own.
func handleRequestVerification(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if len(r.Header.Values("Authorization")) > 0 {
			tok, err := bearerToken(r)
			if err != nil {
				writeError(w, r, log, err)
				return
			}
			p, err := svc.Authenticate(r.Context(), tok)
			if err != nil {
				writeError(w, r, log, err)
				return
			}
			info(r.Context()).principal = p
			if r.ContentLength != 0 || r.Header.Get("Content-Type") != "" {
				req, err := readJSON[emailRequest](w, r)
				if err != nil {
					writeError(w, r, log, err)
					return
				}
				if req.Email != "" {
					writeError(w, r, log, auth.Invalid("email", "must not be sent with a bearer token: the mail goes to the caller's own address"))
					return
				}
			}
			if err := svc.RequestOwnVerification(r.Context(), p, client(r)); err != nil {
				writeError(w, r, log, err)
				return
			}
			accepted(w)
			return
		}
		req, err := readJSON[emailRequest](w, r)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		if err := svc.RequestVerification(r.Context(), req.Email, client(r)); err != nil {
			writeError(w, r, log, err)
			return
		}
		accepted(w)
	}
}

func handleForgotPassword(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := readJSON[emailRequest](w, r)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		if err := svc.ForgotPassword(r.Context(), req.Email, client(r)); err != nil {
			writeError(w, r, log, err)
			return
		}
		accepted(w)
	}
}

// redemption is a link token, or an address and a code.
type redemption struct {
	Token string `json:"token"`
	Email string `json:"email"`
	Code  string `json:"code"`
}

func (r redemption) auth() auth.Redemption {
	return auth.Redemption{Token: r.Token, Email: r.Email, Code: r.Code}
}

func handleVerifyEmail(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := readJSON[redemption](w, r)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		if err := svc.VerifyEmail(r.Context(), req.auth(), client(r)); err != nil {
			writeError(w, r, log, redeemed(err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func handleResetPassword(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	type request struct {
		Token       string `json:"token"`
		Email       string `json:"email"`
		Code        string `json:"code"`
		NewPassword string `json:"new_password"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := readJSON[request](w, r)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		red := auth.Redemption{Token: req.Token, Email: req.Email, Code: req.Code}
		if err := svc.ResetPassword(r.Context(), red, req.NewPassword, client(r)); err != nil {
			writeError(w, r, log, redeemed(err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func handleEmailChange(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	type request struct {
		NewEmail        string `json:"new_email"`
		CurrentPassword string `json:"current_password"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := readJSON[request](w, r)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		if err := svc.RequestEmailChange(r.Context(), principal(r), req.NewEmail, req.CurrentPassword, client(r)); err != nil {
			writeError(w, r, log, err)
			return
		}
		accepted(w)
	}
}

func handleConfirmEmailChange(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := readJSON[redemption](w, r)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		if err := svc.ConfirmEmailChange(r.Context(), req.auth(), client(r)); err != nil {
			writeError(w, r, log, redeemed(err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func handleDenyAccount(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	type request struct {
		Token string `json:"token"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := readJSON[request](w, r)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		if err := svc.DenyAccount(r.Context(), req.Token, client(r)); err != nil {
			writeError(w, r, log, redeemed(err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
