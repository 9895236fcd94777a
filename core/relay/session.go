package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"mailferry/core/store"
)

// SMTP replies of the relay (RFC 5321 section 4.2, RFC 3463 enhanced codes).
var (
	errRelayDenied   = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relay access denied"}
	errNoSuchUser    = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	errBadRcpt       = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address syntax"}
	errBadSender     = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Bad sender address syntax"}
	errNeedUTF8      = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Non-ASCII address needs SMTPUTF8"}
	errAuthRequired  = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	errEncryptionReq = &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11}, Message: "Encryption required for requested authentication mechanism"}
	errAuthTooMany   = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many authentication failures, try again later"}
	errNotOwner      = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender address is not yours"}
	errTooManyHops   = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 4, 6}, Message: "Too many Received headers: mail loop?"}
	errNoOldServer   = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 0}, Message: "Mail for this user cannot be routed yet, try again later"}
	errTempLocal     = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local error, try again later"}
	errShuttingDown  = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Shutting down, try again later"}
)

type backend struct {
	r    *Relay
	mode listenerMode
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	ip := addrIP(c.Conn().RemoteAddr())
	return &session{r: b.r, mode: b.mode, conn: c, ip: ip, trusted: b.r.trusted(ip)}, nil
}

// session is one SMTP connection's state (RFC 5321 section 3.3).
type session struct {
	r       *Relay
	mode    listenerMode
	conn    *smtp.Conn
	ip      netip.Addr
	trusted bool
	user    *store.Account // after AUTH

	fromSet bool
	from    string
	utf8    bool
	seen    map[string]bool     // recipients given, lower-cased
	rcpts   []string            // as given, in order
	local   inboxes             // of local recipients, in RCPT order
	relays  map[string][]string // queue note -> recipients
	notes   []string            // relay notes in first-use order
}

var (
	_ smtp.Session     = (*session)(nil)
	_ smtp.AuthSession = (*session)(nil)
)

func (s *session) tls() bool {
	_, ok := s.conn.TLSConnectionState()
	return ok
}

func (s *session) reject(err *smtp.SMTPError, what string) error {
	s.r.rejected.Add(1)
	s.r.log.Info("refused", "remote", s.ip, "what", what, "code", err.Code, "reason", err.Message)
	s.r.emit(Event{Kind: EventRejected, From: s.from, Detail: fmt.Sprintf("%s: %d %s", what, err.Code, err.Message)})
	return err
}

// ctx is the context of store look-ups made for this session.
func (s *session) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
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
	if s.r.limits.authBlocked(s.ip) {
		return nil, s.reject(errAuthTooMany, "AUTH")
	}
	check := func(identity, username, password string) error {
		if identity != "" && !strings.EqualFold(identity, username) {
			s.r.limits.authFailed(s.ip)
			return s.reject(smtp.ErrAuthFailed, "AUTH")
		}
		ctx, cancel := s.ctx()
		defer cancel()
		acct, err := s.r.st.Authenticate(ctx, username, password)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrBadPassword) || errors.Is(err, store.ErrInvalid) {
			s.r.limits.authFailed(s.ip)
			return s.reject(smtp.ErrAuthFailed, "AUTH")
		} else if err != nil {
			s.r.log.Error("authenticate", "err", err)
			return errTempLocal
		}
		s.user = acct
		s.r.log.Info("authenticated", "remote", s.ip, "user", acct.Address)
		return nil
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return sasl.NewPlainServer(check), nil
	case sasl.Login:
		return &loginServer{validate: func(u, p string) error { return check("", u, p) }}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// Reset implements smtp.Session.
func (s *session) Reset() {
	s.fromSet, s.from, s.utf8 = false, "", false
	s.seen, s.rcpts, s.local, s.relays, s.notes = nil, nil, inboxes{}, nil, nil
}

// Logout implements smtp.Session.
func (s *session) Logout() error { return nil }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// Mail implements smtp.Session (MAIL FROM).
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.Reset()
	select {
	case <-s.r.closed:
		return errShuttingDown
	default:
	}
	if s.mode == modeSubmission && s.user == nil {
		return s.reject(errAuthRequired, "MAIL")
	}
	utf8 := opts != nil && opts.UTF8
	if !utf8 && !isASCII(from) {
		return s.reject(errNeedUTF8, "MAIL")
	}
	if from != "" {
		if _, _, err := store.SplitAddress(from); err != nil {
			return s.reject(errBadSender, "MAIL")
		}
	}
	if s.user != nil && !strings.EqualFold(from, s.user.Address) {
		return s.reject(errNotOwner, "MAIL")
	}
	s.fromSet, s.from, s.utf8 = true, from, utf8
	return nil
}

// Rcpt implements smtp.Session (RCPT TO): it decides the recipient's route
// (see the package doc).
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !s.utf8 && !isASCII(to) {
		return s.reject(errNeedUTF8, "RCPT")
	}
	_, domain, err := store.SplitAddress(to)
	if err != nil {
		return s.reject(errBadRcpt, "RCPT")
	}
	key := strings.ToLower(to)
	if s.seen[key] {
		return nil // a repeated recipient gets one copy
	}
	ctx, cancel := s.ctx()
	defer cancel()

	acct, err := s.r.st.Account(ctx, to)
	switch {
	case err == nil:
		if err := s.local.add(ctx, s.r.st, acct.ID); err != nil {
			s.r.log.Error("no INBOX", "account", acct.Address, "err", err)
			return errTempLocal
		}
		s.add(key, to, "")
		return nil
	case !errors.Is(err, store.ErrNotFound):
		s.r.log.Error("look up account", "rcpt", to, "err", err)
		return errTempLocal
	}

	_, err = s.r.st.Domain(ctx, domain)
	switch {
	case err == nil:
		// A local domain: relay only while it is migrating.
		old, migrating, err := s.r.opts.OldServer(ctx, domain)
		if err != nil {
			s.r.log.Error("old server settings", "domain", domain, "err", err)
			return errTempLocal
		}
		if !migrating {
			return s.reject(errNoSuchUser, "RCPT")
		}
		if old == nil {
			// Migrating without an old server to hand mail to is a
			// configuration error: have the sender retry, lose nothing.
			s.r.log.Error("domain is migrating but has no old server settings", "domain", domain)
			return s.reject(errNoOldServer, "RCPT")
		}
		if s.user == nil && !s.r.opts.NoRecipientCallout {
			// Ask the old server now whether it knows the user, so that
			// mail from outside to a wrong address is refused here rather
			// than bounced later (to a sender that may be forged).
			if se := s.r.verifyRcpt(ctx, old, to); se != nil {
				return s.reject(se, "RCPT")
			}
		}
		s.add(key, to, noteRelay)
		return nil
	case !errors.Is(err, store.ErrNotFound):
		s.r.log.Error("look up domain", "domain", domain, "err", err)
		return errTempLocal
	}

	// A foreign domain: never an open relay.
	if s.user == nil && !s.trusted {
		return s.reject(errRelayDenied, "RCPT")
	}
	via := ""
	if s.user != nil {
		_, via, _ = store.SplitAddress(s.user.Address)
	} else if s.from != "" {
		_, via, _ = store.SplitAddress(s.from)
	}
	if via == "" {
		return s.reject(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "No outbound route for a null sender"}, "RCPT")
	}
	old, _, err := s.r.opts.OldServer(ctx, via)
	if err != nil {
		s.r.log.Error("old server settings", "domain", via, "err", err)
		return errTempLocal
	}
	if old == nil {
		return s.reject(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "No outbound route for " + via}, "RCPT")
	}
	s.add(key, to, noteVia(noteRelay, via))
	return nil
}

func (s *session) add(key, to, note string) {
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	s.seen[key] = true
	s.rcpts = append(s.rcpts, to)
	if note == "" {
		return
	}
	if s.relays == nil {
		s.relays = map[string][]string{}
	}
	if _, ok := s.relays[note]; !ok {
		s.notes = append(s.notes, note)
	}
	s.relays[note] = append(s.relays[note], to)
}

// Data implements smtp.Session: the message is read (within the SIZE
// limit), a Received header is prepended and the local copies and relay
// items are committed in one transaction before the 250 reply.
func (s *session) Data(rd io.Reader) error {
	// Close waits for messages being committed; none starts after it.
	s.r.mu.Lock()
	if s.r.isClosed {
		s.r.mu.Unlock()
		return errShuttingDown
	}
	s.r.dataWG.Add(1)
	s.r.mu.Unlock()
	defer s.r.dataWG.Done()
	body, err := io.ReadAll(rd)
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return s.reject(se, "DATA")
		}
		return err
	}
	if countReceived(body) >= maxHops {
		return s.reject(errTooManyHops, "DATA")
	}
	msg := make([]byte, 0, len(body)+256)
	msg = append(msg, s.received()...)
	msg = append(msg, body...)

	ctx, cancel := s.ctx()
	defer cancel()
	id, err := s.r.accept(ctx, s.from, &s.local, s.notes, s.relays, msg)
	if err != nil {
		s.r.log.Error("accept message", "from", s.from, "err", err)
		return errTempLocal
	}
	s.r.log.Info("accepted", "remote", s.ip, "from", s.from, "rcpts", len(s.rcpts), "size", len(msg), "local", len(s.local.order), "queued", len(s.notes))
	s.r.emit(Event{Kind: EventAccepted, QueueID: id, From: s.from, Rcpts: append([]string(nil), s.rcpts...)})
	return nil
}

// received builds the trace header (RFC 5321 section 4.4, "with" keywords
// from RFC 3848 and RFC 6531).
func (s *session) received() []byte {
	with := "ESMTP"
	if s.utf8 {
		with = "UTF8SMTP"
	}
	if s.tls() {
		with += "S"
	}
	if s.user != nil {
		with += "A"
	}
	ip := s.ip.String()
	if s.ip.Is6() {
		ip = "IPv6:" + ip
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (Mailferry) with %s id %s",
		cleanDomain(s.conn.Hostname()), ip, s.r.opts.Hostname, with, newID())
	if len(s.rcpts) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", s.rcpts[0])
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", time.Now().Format(time.RFC1123Z))
	return b.Bytes()
}

// cleanDomain keeps a HELO argument printable and harmless in a header.
func cleanDomain(h string) string {
	var b strings.Builder
	for _, c := range h {
		if c > ' ' && c < 0x7f && c != '(' && c != ')' && c != '\\' && c != ';' {
			b.WriteRune(c)
		}
		if b.Len() >= 255 {
			break
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return b.String()
}

// countReceived counts the Received header fields of a message's header.
func countReceived(msg []byte) int {
	n := 0
	for len(msg) > 0 {
		i := bytes.IndexByte(msg, '\n')
		line := msg
		if i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		if len(bytes.TrimRight(line, "\r")) == 0 {
			break // end of header
		}
		if len(line) >= 9 && bytes.EqualFold(line[:9], []byte("received:")) {
			n++
		}
	}
	return n
}
