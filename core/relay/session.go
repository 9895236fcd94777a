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

	"github.com/emersion/go-smtp"

	"mailferry/core/auth/addr"
	"mailferry/core/oldserver"
	"mailferry/core/store"
)

// SMTP replies of the relay (RFC 5321 section 4.2, RFC 3463 enhanced codes).
var (
	errRelayDenied     = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relay access denied"}
	errNoSuchUser      = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	errBadRcpt         = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address syntax"}
	errBadSender       = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Bad sender address syntax"}
	errNeedUTF8        = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Non-ASCII address needs SMTPUTF8"}
	errAuthRequired    = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	errEncryptionReq   = &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11}, Message: "Encryption required for requested authentication mechanism"}
	errAuthTooMany     = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many authentication failures, try again later"}
	errBusy            = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Too many messages being received, try again later"}
	errAuthBadSequence = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "AUTH not permitted during a mail transaction or after a successful AUTH"}
	errAuthUnavailable = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Temporary authentication failure, try again later"}
	errAuthSyntax      = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Malformed authentication response"}
	errNotOwner        = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender address is not yours"}
	errTooManyHops     = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 4, 6}, Message: "Too many Received headers: mail loop?"}
	errNoOldServer     = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 0}, Message: "Mail for this user cannot be routed yet, try again later"}
	errTempLocal       = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local error, try again later"}
	errDataTooSlow     = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Message transfer took too long, try again later"}
	errShuttingDown    = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Shutting down, try again later"}
	// errOtherKind refuses, for a sender from outside, a recipient that
	// would mix local delivery and forwarding (or two old servers) in one
	// transaction; RFC 5321 section 3.3 lets the client send it in another.
	errOtherKind = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Too many recipients, send this one in a new transaction"}
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
	size    int64               // MAIL FROM's SIZE= (RFC 1870), 0 if none
	seen    map[string]bool     // recipients given, canonical, lower-cased
	rcpts   []string            // canonical, in order
	local   inboxes             // of local recipients, in RCPT order
	relays  map[string][]string // queue note -> recipients
	notes   []string            // relay notes in first-use order
	oldKeys map[string]bool     // pool keys of the old servers relayed to

	// For a strict sender (see strict): what the transaction's recipients
	// are — "" (none yet), kindLocal, or kindForward + the old server's
	// pool key — and that old server's settings.
	kind string
	fwd  *oldserver.Settings

	// refused counts the recipients refused for good (5xx) since the
	// connection's last accepted message (see reject).
	refused int
}

const (
	kindLocal   = "local"
	kindForward = "forward "
)

var (
	_ smtp.Session     = (*session)(nil)
	_ smtp.AuthSession = (*session)(nil)
)

func (s *session) tls() bool {
	_, ok := s.conn.TLSConnectionState()
	return ok
}

// A connection that had more than softErrorLimit recipients refused for
// good since its last accepted message waits errorSleep before each
// further refusal (Postfix's smtpd_soft_error_limit and
// smtpd_error_sleep_time): guessing addresses — and the callout each
// guess costs the old server — is slowed to one a second per connection,
// while a sender with a few stale addresses is not held up.
const (
	softErrorLimit = 10
	errorSleep     = time.Second
)

func (s *session) reject(err *smtp.SMTPError, what string) error {
	s.r.rejected.Add(1)
	s.r.log.Info("refused", "remote", s.ip, "what", what, "code", err.Code, "reason", err.Message)
	s.r.emit(Event{Kind: EventRejected, From: s.from, Detail: fmt.Sprintf("%s: %d %s", what, err.Code, err.Message)})
	if what == "RCPT" && err.Code/100 == 5 {
		if s.refused++; s.refused > softErrorLimit {
			t := time.NewTimer(errorSleep)
			select {
			case <-t.C:
			case <-s.r.closed:
			}
			t.Stop()
		}
	}
	return err
}

// ctx is the context of store look-ups made for this session.
func (s *session) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// Reset implements smtp.Session.
func (s *session) Reset() {
	s.fromSet, s.from, s.utf8, s.size = false, "", false, 0
	s.seen, s.rcpts, s.local, s.relays, s.notes, s.oldKeys = nil, nil, inboxes{}, nil, nil, nil
	s.kind, s.fwd = "", nil
}

// strict reports whether the sender is from outside: not authenticated and
// not in a trusted network. Its recipients follow rcptAddress's strict
// rules, are checked at the old server at RCPT time, and mail for the old
// server is forwarded while it waits, never queued (see the package doc).
func (s *session) strict() bool { return s.user == nil && !s.trusted }

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
		// A control character is neither atext nor qtext (RFC 5321
		// section 4.1.2): no address, and never for the old server's
		// MAIL FROM, the logs, the queue or a DSN.
		if strings.ContainsFunc(from, func(c rune) bool { return c < ' ' || c == 0x7f || (c >= 0x80 && c < 0xa0) }) {
			return s.reject(errBadSender, "MAIL")
		}
		if _, _, err := store.SplitAddress(from); err != nil {
			return s.reject(errBadSender, "MAIL")
		}
	}
	if s.user != nil {
		if !s.owns(from) {
			return s.reject(errNotOwner, "MAIL")
		}
		// Their address goes on in its one form (the queue counts a
		// sender's deliveries by it: perSender).
		from = s.user.Address
	}
	s.fromSet, s.from, s.utf8 = true, from, utf8
	if opts != nil {
		s.size = opts.Size
	}
	return nil
}

// owns reports whether from is the authenticated user's address: the
// same canonical form (core/auth/addr: case, the domain in Unicode or
// A-labels), as logins and recipients are compared.
func (s *session) owns(from string) bool {
	c, err := addr.Canonical(from)
	return err == nil && c == s.user.Address
}

// Rcpt implements smtp.Session (RCPT TO): it decides the recipient's route
// (see the package doc). to is what go-smtp's parser made of the path: a
// source route dropped, a quoted local part unquoted.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !s.utf8 && !isASCII(to) {
		return s.reject(errNeedUTF8, "RCPT")
	}
	// The form is judged before anything is looked up or asked.
	strict := s.strict()
	to, domain, err := rcptAddress(to, strict)
	if err != nil {
		s.r.log.Info("recipient form refused", "remote", s.ip, "err", err)
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
		if strict && s.kind != "" && s.kind != kindLocal {
			return s.reject(errOtherKind, "RCPT")
		}
		if err := s.local.add(ctx, s.r.st, acct.ID); err != nil {
			s.r.log.Error("no INBOX", "account", acct.Address, "err", err)
			return errTempLocal
		}
		if strict {
			s.kind = kindLocal
		}
		s.add(key, to, "")
		return nil
	case !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrInvalid):
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
		set := old.WithDefaults()
		pk := poolKey(&set)
		if strict {
			if s.kind != "" && s.kind != kindForward+pk {
				return s.reject(errOtherKind, "RCPT")
			}
			// A refusal of this recipient while this sender's message
			// was forwarded a moment ago (Relay.forward) answers its
			// retry.
			if se, ok := s.r.callout.get(forwardKey(pk, s.from, to)); ok && se != nil {
				return s.reject(se, "RCPT")
			}
			// Ask the old server now whether it knows the user, so that
			// mail from outside to a wrong address is refused here; what
			// cannot be asked is deferred (451), never accepted and
			// bounced later to a sender that may be forged.
			if !s.r.opts.NoRecipientCallout {
				if se := s.r.verifyRcpt(ctx, &set, to); se != nil {
					return s.reject(se, "RCPT")
				}
				s.r.seen.note(func() error {
					if s.r.acceptsAnyone(ctx, &set, domain) {
						return errAcceptsAnyone
					}
					return s.r.st.NoteKnownUser(ctx, domain, to)
				}, domain, to, s.r.log)
			}
		}
		if se := s.checkSize(pk); se != nil {
			return s.reject(se, "RCPT")
		}
		if strict {
			s.kind, s.fwd = kindForward+pk, &set
		}
		s.addOld(pk)
		s.add(key, to, noteRelay)
		return nil
	case !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrInvalid):
		s.r.log.Error("look up domain", "domain", domain, "err", err)
		return errTempLocal
	}

	// A foreign domain: never an open relay.
	if strict {
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
	rt, err := s.r.routeOf(ctx, via)
	if errors.Is(err, errNoRoute) {
		s.r.log.Info("no outbound route", "domain", via, "err", err)
		return s.reject(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "No outbound route for " + via}, "RCPT")
	} else if err != nil {
		s.r.log.Error("outbound route", "domain", via, "err", err)
		return errTempLocal
	}
	if rt.kind == RouteOldServer {
		set := rt.old.WithDefaults()
		pk := poolKey(&set)
		if se := s.checkSize(pk); se != nil {
			return s.reject(se, "RCPT")
		}
		s.addOld(pk)
	}
	s.add(key, to, noteVia(noteRelay, via))
	return nil
}

// checkSize refuses (552 5.3.4, RFC 1870 section 6.1) a recipient relayed
// to the old server pk when MAIL FROM declared a SIZE that, with our
// Received header, is over that server's known limit.
func (s *session) checkSize(pk string) *smtp.SMTPError {
	if lim, ok := s.r.sizes.limit(pk); ok && s.size > 0 && s.size+receivedHeadroom > lim {
		return errOldTooBig
	}
	return nil
}

func (s *session) addOld(pk string) {
	if s.oldKeys == nil {
		s.oldKeys = map[string]bool{}
	}
	s.oldKeys[pk] = true
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
	hold := s.r.data.open(s.ip)
	if hold == nil {
		return s.reject(errBusy, "DATA")
	}
	defer hold.close()
	body, err := readHeld(rd, hold, s.r.opts.MaxMessageBytes, time.Now().Add(s.r.opts.ReadTimeout))
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
	msg := make([]byte, 0, len(body)+1024)
	if s.r.opts.AuthResults != nil {
		// Fields of the message that claim our authserv-id are renamed
		// (RFC 8601 section 5) whoever sent it: only mail from outside
		// delivered here gets a field of ours, and what is forwarded or
		// queued to an old server comes back into Mailferry with its
		// user's mailbox byte for byte; a user of one domain, or a
		// trusted network, must not pass off a verdict as ours to
		// another either.
		id := s.r.opts.Hostname
		if s.user == nil && !s.trusted && s.fwd == nil {
			// Mail from outside delivered here: SPF, DKIM and DMARC
			// results for the user's client to read, never used to
			// refuse.
			actx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			ar := s.r.opts.AuthResults(actx, s.ip, s.conn.Hostname(), s.from, body)
			cancel()
			msg = append(msg, ar...)
			if ar != "" {
				id = authservID([]byte(strings.TrimPrefix(ar, "Authentication-Results:")))
			}
		}
		body = renameForgedAuthResults(body, id)
	}
	msg = append(msg, s.received()...)
	msg = append(msg, body...)
	for pk := range s.oldKeys {
		if lim, ok := s.r.sizes.limit(pk); ok && int64(len(msg)) > lim {
			return s.reject(errOldTooBig, "DATA")
		}
	}
	if s.fwd != nil {
		return s.forward(msg)
	}

	ctx, cancel := s.ctx()
	defer cancel()
	id, err := s.r.accept(ctx, s.from, &s.local, s.notes, s.relays, msg)
	if err != nil {
		s.r.log.Error("accept message", "from", s.from, "err", err)
		return errTempLocal
	}
	s.refused = 0
	s.r.log.Info("accepted", "remote", s.ip, "from", s.from, "rcpts", len(s.rcpts), "size", len(msg), "local", len(s.local.order), "queued", len(s.notes))
	s.r.emit(Event{Kind: EventAccepted, QueueID: id, From: s.from, Rcpts: append([]string(nil), s.rcpts...)})
	return nil
}

// forward hands the message of a sender from outside, whose recipients
// are all served by one old server, to that server while the sender waits:
// the old server's answer is ours (Relay.forward). Nothing is stored.
func (s *session) forward(msg []byte) error {
	// Cut by the hard stop of Close only: a forward in progress finishes.
	ctx, cancel := context.WithTimeout(context.Background(), 3*s.r.opts.ClientTimeout)
	defer cancel()
	go func() {
		defer recoverPanic(s.r.log, "forward hard stop")
		select {
		case <-s.r.hardStop:
			cancel()
		case <-ctx.Done():
		}
	}()
	utf8 := !isASCII(s.from)
	for _, rc := range s.rcpts {
		utf8 = utf8 || !isASCII(rc)
	}
	if se := s.r.forward(ctx, s.fwd, s.from, s.rcpts, msg, utf8); se != nil {
		return s.reject(se, "DATA")
	}
	s.refused = 0
	s.r.accepted.Add(1)
	s.r.relayed.Add(uint64(len(s.rcpts)))
	remote := s.fwd.Host.String()
	s.r.log.Info("forwarded", "remote", s.ip, "from", s.from, "rcpts", s.rcpts, "size", len(msg), "via", remote)
	rcpts := append([]string(nil), s.rcpts...)
	s.r.emit(Event{Kind: EventAccepted, From: s.from, Rcpts: rcpts})
	s.r.emit(Event{Kind: EventRelayed, From: s.from, Rcpts: rcpts, Detail: remote})
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
