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

// accepted is the answer of every request endpoint unless err: 202 and an
// empty object.
func accepted(w http.ResponseWriter, err error) error {
	if err == nil {
		writeJSON(w, http.StatusAccepted, struct{}{})
	}
	return err
}

type emailRequest struct {
	Email string `json:"email"`
}

// handleRequestVerification queues a verification mail: to the address in
// the body, or with a bearer token (and no body) to the caller's own.
func handleRequestVerification(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	own := func(w http.ResponseWriter, r *http.Request) error {
		p, err := authenticate(r, svc)
		if err != nil {
			return err
		}
		if r.ContentLength != 0 || r.Header.Get("Content-Type") != "" {
			req, err := readJSON[emailRequest](w, r)
			if err != nil {
				return err
			}
			if req.Email != "" {
				return auth.Invalid("email", "must not be sent with a bearer token: the mail goes to the caller's own address")
			}
		}
		return accepted(w, svc.RequestOwnVerification(r.Context(), p, client(r)))
	}
	byAddress := jsonHandler(log, func(w http.ResponseWriter, r *http.Request, req emailRequest) error {
		return accepted(w, svc.RequestVerification(r.Context(), req.Email, client(r)))
	})
	return func(w http.ResponseWriter, r *http.Request) {
		if len(r.Header.Values("Authorization")) == 0 {
			byAddress(w, r)
			return
		}
		if err := own(w, r); err != nil {
			writeError(w, r, log, err)
		}
	}
}

func handleForgotPassword(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	return jsonHandler(log, func(w http.ResponseWriter, r *http.Request, req emailRequest) error {
		return accepted(w, svc.ForgotPassword(r.Context(), req.Email, client(r)))
	})
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
	return jsonHandler(log, func(w http.ResponseWriter, r *http.Request, req redemption) error {
		return noContent(w, redeemed(svc.VerifyEmail(r.Context(), req.auth(), client(r))))
	})
}

func handleResetPassword(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	type request struct {
		Token       string `json:"token"`
		Email       string `json:"email"`
		Code        string `json:"code"`
		NewPassword string `json:"new_password"`
	}
	return jsonHandler(log, func(w http.ResponseWriter, r *http.Request, req request) error {
		red := auth.Redemption{Token: req.Token, Email: req.Email, Code: req.Code}
		return noContent(w, redeemed(svc.ResetPassword(r.Context(), red, req.NewPassword, client(r))))
	})
}

func handleEmailChange(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	type request struct {
		NewEmail        string `json:"new_email"`
		CurrentPassword string `json:"current_password"`
	}
	return jsonHandler(log, func(w http.ResponseWriter, r *http.Request, req request) error {
		return accepted(w, svc.RequestEmailChange(r.Context(), principal(r), req.NewEmail, req.CurrentPassword, client(r)))
	})
}

func handleConfirmEmailChange(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	return jsonHandler(log, func(w http.ResponseWriter, r *http.Request, req redemption) error {
		return noContent(w, redeemed(svc.ConfirmEmailChange(r.Context(), req.auth(), client(r))))
	})
}

func handleDenyAccount(log *slog.Logger, svc *auth.Service) http.HandlerFunc {
	type request struct {
		Token string `json:"token"`
	}
	return jsonHandler(log, func(w http.ResponseWriter, r *http.Request, req request) error {
		return noContent(w, redeemed(svc.DenyAccount(r.Context(), req.Token, client(r))))
	})
}
