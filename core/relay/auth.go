package relay

import (
	"errors"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"mailferry/core/auth"
)

// loginServer is the server side of the LOGIN SASL mechanism (the obsolete
// but widespread draft-murchison-sasl-login): the client sends the user name
// and then the password, each on request. An initial response is the user
// name.
type loginServer struct {
	step     int
	user     string
	validate func(user, password string) error
}

var _ sasl.Server = (*loginServer)(nil)

var errLoginState = errors.New("sasl LOGIN: unexpected client response")

func (s *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch s.step {
	case 0:
		if len(response) > 0 {
			s.user = string(response)
			s.step = 2
			return []byte("Password:"), false, nil
		}
		s.step = 1
		return []byte("Username:"), false, nil
	case 1:
		s.user = string(response)
		s.step = 2
		return []byte("Password:"), false, nil
	case 2:
		s.step = 3
		return nil, true, s.validate(s.user, string(response))
	}
	return nil, false, errLoginState
}

// AuthMechanisms implements smtp.AuthSession: PLAIN (RFC 4616) and LOGIN,
// advertised only under TLS.
func (s *session) AuthMechanisms() []string {
	if !s.tls() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth implements smtp.AuthSession (RFC 4954). Without TLS it answers 538.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if !s.tls() {
		return nil, s.reject(errEncryptionReq, "AUTH")
	}
	if s.fromSet || s.user != nil {
		// RFC 4954 section 4: not during a mail transaction (MAIL FROM was
		// checked as a stranger's), and not twice.
		return nil, s.reject(errAuthBadSequence, "AUTH")
	}
	check := func(identity, username, password string) error {
		if identity != "" && !strings.EqualFold(identity, username) {
			// Acting for another user is not offered: charged as a failure.
			password = ""
		}
		ctx, cancel := s.ctx()
		defer cancel()
		acct, err := s.r.opts.Auth.Login(ctx, auth.Request{Service: "smtp", Remote: s.ip, Username: username, Password: password})
		switch {
		case errors.Is(err, auth.ErrFailed):
			return s.reject(smtp.ErrAuthFailed, "AUTH")
		case errors.Is(err, auth.ErrLimited):
			return s.reject(errAuthTooMany, "AUTH")
		case err != nil:
			return s.reject(errAuthUnavailable, "AUTH")
		}
		s.user = acct
		s.r.log.Info("authenticated", "remote", s.ip, "user", acct.Address)
		return nil
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return &saslSyntax{sasl.NewPlainServer(check), s}, nil
	case sasl.Login:
		return &saslSyntax{&loginServer{validate: func(u, p string) error { return check("", u, p) }}, s}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// saslSyntax answers a mechanism's own error (a PLAIN response without
// its two NULs, a LOGIN response after the last) 501 5.5.2, a syntax
// error, as RFC 4954 section 4 answers a response that is not base64:
// go-smtp answers any error that is not an *smtp.SMTPError 454 4.7.0, a
// temporary failure, which asks the client to try the same again. The
// errors of the check (535, 454, ...) are *smtp.SMTPErrors and pass as
// they are. A response that is not base64 at all go-smtp (v0.25, v0.26)
// answers 454 itself, before the mechanism sees it.
type saslSyntax struct {
	sasl.Server
	s *session
}

func (m *saslSyntax) Next(response []byte) (challenge []byte, done bool, err error) {
	challenge, done, err = m.Server.Next(response)
	if _, ok := err.(*smtp.SMTPError); err != nil && !ok { // as go-smtp tells them
		m.s.r.log.Info("malformed AUTH response", "remote", m.s.ip, "err", err)
		return nil, false, m.s.reject(errAuthSyntax, "AUTH")
	}
	return challenge, done, err
}
