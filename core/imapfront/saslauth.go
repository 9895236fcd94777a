package imapfront

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
)

// SASL: AUTHENTICATE offers PLAIN (RFC 4616) and LOGIN
// (draft-murchison-sasl-login; Outlook and some phones use it, Dovecot 2.3
// offers it), both ending in Login: the same login policy (core/auth: its
// rate limits, its on-login migration) as the LOGIN command. The fork
// offers them only where LOGIN is allowed (over TLS, or with
// AllowInsecureAuth), reads each response as one line bounded by its
// buffer (a longer one ends the connection, FORK.md change 50), answers a
// response that is not base64 or is "*" (cancel) BAD (and a malformed
// PLAIN message: plainServer), and the login phase
// is bounded as a whole (change 35).

// AuthenticateMechanisms implements imapserver.SessionSASL.
func (s *session) AuthenticateMechanisms() []string {
	return []string{sasl.Plain, sasl.Login}
}

// Authenticate implements imapserver.SessionSASL; mech is upper case.
func (s *session) Authenticate(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return plainServer{sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthorizationFailed, Text: "SASL identity not supported"}
			}
			return s.Login(username, password)
		})}, nil
	case sasl.Login:
		return &loginServer{login: s.Login}, nil
	}
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "SASL mechanism not supported"}
}

// plainServer is go-sasl's PLAIN server whose refusal of a malformed
// response (empty, or without its two NULs) is BAD, as a response that is
// not base64 is: it was an error the fork answers NO [SERVERBUG] Internal
// server error and logs as the server's own, which any client could make
// before logging in, as often as it liked (session 17 review). Login's
// errors are imap.Errors and go through as they are.
type plainServer struct{ sasl.Server }

// Next implements sasl.Server.
func (p plainServer) Next(response []byte) (challenge []byte, done bool, err error) {
	challenge, done, err = p.Server.Next(response)
	if _, ok := err.(*imap.Error); err != nil && !ok {
		err = &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Malformed SASL PLAIN response"}
	}
	return challenge, done, err
}

// loginServer is the server side of SASL LOGIN: the challenges
// "Username:" and "Password:" (as Dovecot 2.3 sends them), each answered
// with the value in base64. A username given as the initial response
// (SASL-IR) skips the first challenge; an empty initial response ("=") is
// none, as Dovecot reads it.
type loginServer struct {
	login    func(username, password string) error
	step     int
	username string
}

// The challenges, in bytes.
var (
	loginUsername = []byte("Username:")
	loginPassword = []byte("Password:")
)

// Next implements sasl.Server.
func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0: // the initial response, if any
		if len(response) == 0 {
			l.step = 1
			return loginUsername, false, nil
		}
		l.username, l.step = string(response), 2
		return loginPassword, false, nil
	case 1:
		l.username, l.step = string(response), 2
		return loginPassword, false, nil
	case 2:
		l.step = 3
		return nil, true, l.login(l.username, string(response))
	}
	return nil, false, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "SASL LOGIN exchange already over"}
}
