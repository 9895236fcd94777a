package demo

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// smtpSession is one SMTP transaction state (RFC 5321 section 3.3).
type smtpSession struct {
	srv    *Server
	conn   *smtp.Conn
	remote string
	once   sync.Once

	authUser string
	from     string
	smtputf8 bool
	rcpts    []*account // unique, in RCPT order
	rcptAddr []string   // the addresses as given, for the Received "for" clause
}

var (
	_ smtp.Session     = (*smtpSession)(nil)
	_ smtp.AuthSession = (*smtpSession)(nil)
)

var errNotLoopback = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Only loopback clients are served"}

func (s *Server) newSMTPSession(c *smtp.Conn) (smtp.Session, error) {
	remote := c.Conn().RemoteAddr()
	if tcp, ok := remote.(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		return nil, errNotLoopback
	}
	if !s.sessionStart() {
		return nil, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Server shutting down"}
	}
	return &smtpSession{srv: s, conn: c, remote: remote.String()}, nil
}

// AuthMechanisms implements smtp.AuthSession. AUTH is optional: mail is
// accepted without it, but a client that insists on authenticating can use
// PLAIN with a demo user's address and password.
func (sess *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

// Auth implements smtp.AuthSession.
func (sess *smtpSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && !strings.EqualFold(identity, username) {
			return smtp.ErrAuthFailed
		}
		acct := sess.srv.account(username)
		if acct == nil || acct.mem.Login(acct.addr, password) != nil {
			sess.srv.log.Info("SMTP auth failed", "user", username)
			return smtp.ErrAuthFailed
		}
		sess.authUser = acct.addr
		return nil
	}), nil
}

// Mail implements smtp.Session.
func (sess *smtpSession) Mail(from string, opts *smtp.MailOptions) error {
	sess.Reset()
	sess.from = from
	sess.smtputf8 = opts != nil && opts.UTF8
	return nil
}

// Rcpt implements smtp.Session.
func (sess *smtpSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	addr := strings.ToLower(strings.TrimSpace(to))
	if addr == "postmaster" { // RFC 5321 section 4.5.1
		addr = "postmaster@" + sess.srv.domain
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address syntax"}
	}
	var acct *account
	if addr[at+1:] == sess.srv.domain {
		acct = sess.srv.account(addr)
		if acct == nil && addr[:at] == "postmaster" {
			acct = sess.srv.account(sess.srv.catchAll)
		}
		if acct == nil {
			sess.srv.log.Info("SMTP recipient rejected", "rcpt", to)
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
		}
	} else {
		acct = sess.srv.account(sess.srv.catchAll)
	}
	sess.rcptAddr = append(sess.rcptAddr, to)
	for _, a := range sess.rcpts {
		if a == acct {
			return nil
		}
	}
	sess.rcpts = append(sess.rcpts, acct)
	return nil
}

// Data implements smtp.Session: it delivers the exact bytes, with one
// Received header prepended, into the INBOX of every recipient.
func (sess *smtpSession) Data(r io.Reader) (err error) {
	defer func() {
		if v := recover(); v != nil {
			sess.srv.recoverValue("smtp-data", v)
			err = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Internal error, try again later"}
		}
	}()
	body, err := io.ReadAll(r)
	if err != nil {
		var smtpErr *smtp.SMTPError
		if errors.As(err, &smtpErr) {
			return err
		}
		return fmt.Errorf("reading DATA: %w", err)
	}
	now := time.Now()
	id := newQueueID()
	received := sess.receivedHeader(id, now)
	raw := make([]byte, 0, len(received)+len(body))
	raw = append(raw, received...)
	raw = append(raw, body...)
	for _, acct := range sess.rcpts {
		if _, err := acct.appendMessage("INBOX", raw, nil, now); err != nil {
			sess.srv.log.Error("SMTP delivery failed", "rcpt", acct.addr, "err", err)
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Delivery failed, try again later"}
		}
		sess.srv.log.Info("SMTP delivered", "id", id, "from", sess.from, "to", acct.addr, "size", len(raw))
	}
	return nil
}

// receivedHeader formats the trace field of RFC 5321 section 4.4, folded and
// CRLF-terminated. The with-protocol follows RFC 3848 and RFC 6531.
func (sess *smtpSession) receivedHeader(id string, now time.Time) []byte {
	proto := "ESMTP"
	if sess.smtputf8 {
		proto = "UTF8SMTP"
	}
	if _, isTLS := sess.conn.TLSConnectionState(); isTLS {
		proto += "S"
	}
	if sess.authUser != "" {
		proto += "A"
	}
	helo := sess.conn.Hostname()
	if helo == "" {
		helo = "unknown"
	}
	ip := sess.remote
	if host, _, err := net.SplitHostPort(sess.remote); err == nil {
		ip = host
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "Received: from %s (localhost [%s])\r\n", helo, ip)
	fmt.Fprintf(&b, "\tby mail.%s (Mailferry demo) with %s id %s", sess.srv.domain, proto, id)
	if len(sess.rcptAddr) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", sess.rcptAddr[0])
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", now.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	return b.Bytes()
}

// Reset implements smtp.Session.
func (sess *smtpSession) Reset() {
	sess.from = ""
	sess.smtputf8 = false
	sess.rcpts = nil
	sess.rcptAddr = nil
}

// Logout implements smtp.Session.
func (sess *smtpSession) Logout() error {
	sess.once.Do(sess.srv.sessions.Done)
	return nil
}

// newQueueID returns a random queue id like real MTAs put in Received.
func newQueueID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}
