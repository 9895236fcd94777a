package pop3front

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"mailferry/core/auth"
	"mailferry/core/store"
)

// MaxErrors is how many bad commands a session may send before it is
// closed.
const MaxErrors = 10

// errTooLong is a line longer than MaxLine (it was skipped).
var errTooLong = errors.New("pop3front: line too long")

// session is one connection, in one of RFC 1939's states: AUTHORIZATION
// (drop == nil), TRANSACTION (drop != nil), UPDATE (in quit).
type session struct {
	srv  *Server
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	tls  bool

	user   string // USER given, waiting for PASS
	drop   *maildrop
	holder string // the maildrop lock's holder (this session), while drop is set
	acct   int64  // the maildrop's account, while drop is set
	renew  func() // stops the lock's renewal, while drop is set
	errors int
}

func (s *session) ctx() context.Context { return s.srv.ctx }

// release gives the maildrop lock back, whatever ended the session.
func (s *session) release() {
	if s.drop != nil {
		s.renew()
		s.srv.unlock(s.acct, s.holder)
		s.drop = nil
	}
}

func (s *session) reset(c net.Conn) {
	s.conn = c
	s.r = bufio.NewReaderSize(c, MaxLine+2)
	s.w = bufio.NewWriterSize(c, 32<<10)
}

func (s *session) run() {
	s.reset(s.conn)
	if s.tls {
		s.conn.SetDeadline(time.Now().Add(time.Minute))
		if err := s.conn.(*tls.Conn).HandshakeContext(s.ctx()); err != nil {
			return
		}
	}
	s.reply("+OK Mailferry POP3 server ready")
	greeted := time.Now()
	for {
		if s.flush() != nil {
			return
		}
		wait := s.srv.idle
		if s.drop == nil {
			// The AUTHORIZATION state is bounded as a whole, not per
			// command: CAPA every few minutes would hold the connection
			// (and a share of its source's) for ever.
			left := s.srv.login - time.Since(greeted)
			if left <= 0 {
				s.reply("-ERR Login timed out")
				s.flush()
				return
			}
			wait = min(wait, left)
		}
		s.conn.SetDeadline(time.Now().Add(wait))
		line, err := s.readLine()
		if errors.Is(err, errTooLong) {
			if s.bad("-ERR Line too long") {
				return
			}
			continue
		} else if err != nil {
			if s.drop == nil && time.Since(greeted) >= s.srv.login {
				s.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
				s.reply("-ERR Login timed out") // the deadline was the AUTHORIZATION state's end
				s.flush()
			}
			return
		}
		cmd, err := ParseCommand(line)
		if err != nil {
			if s.bad("-ERR Unknown command or bad syntax") {
				return
			}
			continue
		}
		if !s.dispatch(cmd) {
			s.flush()
			return
		}
	}
}

// readLine reads one line without its CRLF (or bare LF). A line longer
// than MaxLine is read to its end in pieces and reported as errTooLong.
func (s *session) readLine() (string, error) {
	b, err := s.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = s.r.ReadSlice('\n')
		}
		if err != nil {
			return "", err
		}
		return "", errTooLong
	} else if err != nil {
		return "", err
	}
	b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
	return string(b), nil
}

// bad answers a bad command and reports whether the session must end.
func (s *session) bad(msg string) bool {
	s.errors++
	if s.errors >= MaxErrors {
		s.reply("-ERR Too many bad commands, closing connection")
		s.flush()
		return true
	}
	s.reply("%s", msg)
	return false
}

func (s *session) reply(format string, args ...any) {
	fmt.Fprintf(s.w, format, args...)
	s.w.WriteString("\r\n")
}

func (s *session) flush() error {
	s.conn.SetWriteDeadline(time.Now().Add(s.srv.idle))
	return s.w.Flush()
}

// dispatch runs one command; false ends the session.
func (s *session) dispatch(cmd Command) bool {
	n := len(cmd.Args)
	argc := func(min, max int) bool {
		if n < min || n > max {
			s.bad("-ERR Wrong number of arguments")
			return false
		}
		return true
	}
	switch cmd.Name {
	case "QUIT":
		if argc(0, 0) {
			s.quit()
			return false
		}
	case "CAPA":
		if argc(0, 0) {
			s.capa()
		}
	case "NOOP":
		if argc(0, 0) {
			if s.drop == nil {
				s.bad("-ERR Not logged in")
			} else {
				s.reply("+OK")
			}
		}
	default:
		if s.drop == nil {
			if !s.authorization(cmd) {
				return false
			}
		} else {
			s.transaction(cmd)
		}
	}
	return s.errors < MaxErrors
}

func (s *session) capa() {
	s.reply("+OK Capability list follows")
	s.reply("TOP")
	s.reply("UIDL")
	s.reply("RESP-CODES")
	s.reply("AUTH-RESP-CODE")
	s.reply("PIPELINING")
	s.reply("EXPIRE NEVER")
	if s.drop == nil {
		if s.srv.tls != nil && !s.tls {
			s.reply("STLS")
		}
		if s.tls || s.srv.insecure {
			s.reply("USER")
			s.reply("SASL PLAIN")
		}
	}
	s.reply("IMPLEMENTATION Mailferry")
	s.reply(".")
}

// authorization runs a command of the AUTHORIZATION state; false ends the
// session.
func (s *session) authorization(cmd Command) bool {
	mayLogin := func() bool {
		if !s.tls && !s.srv.insecure {
			s.bad("-ERR [AUTH] Plaintext authentication disallowed without TLS, use STLS")
			return false
		}
		return true
	}
	switch cmd.Name {
	case "STLS":
		if len(cmd.Args) != 0 {
			s.bad("-ERR Wrong number of arguments")
		} else if s.tls || s.srv.tls == nil {
			s.bad("-ERR STLS not available")
		} else {
			s.reply("+OK Begin TLS negotiation")
			if s.flush() != nil {
				return false
			}
			tc := tls.Server(s.conn, s.srv.tls)
			s.conn.SetDeadline(time.Now().Add(time.Minute))
			if err := tc.HandshakeContext(s.ctx()); err != nil {
				return false
			}
			// RFC 2595 section 4: forget what came before (a USER, and
			// anything sent ahead in clear), which s.reset does.
			s.reset(tc)
			s.tls, s.user = true, ""
		}
	case "USER":
		if len(cmd.Args) != 1 {
			s.bad("-ERR Wrong number of arguments")
		} else if mayLogin() {
			s.user = cmd.Args[0]
			s.reply("+OK Send PASS")
		}
	case "PASS":
		if len(cmd.Args) != 1 {
			s.bad("-ERR Wrong number of arguments")
		} else if s.user == "" {
			s.bad("-ERR Send USER first")
		} else if mayLogin() {
			user := s.user
			s.user = ""
			return s.login(user, cmd.Args[0])
		}
	case "AUTH":
		return s.authenticate(cmd, mayLogin)
	case "STAT", "LIST", "RETR", "DELE", "RSET", "TOP", "UIDL":
		s.bad("-ERR Not logged in")
	default:
		s.bad("-ERR Unknown command")
	}
	return true
}

// authenticate runs AUTH (RFC 5034) with the one mechanism, PLAIN
// (RFC 4616).
func (s *session) authenticate(cmd Command, mayLogin func() bool) bool {
	if len(cmd.Args) == 0 {
		// Not in RFC 5034; many clients send it to list mechanisms.
		s.reply("+OK")
		s.reply("PLAIN")
		s.reply(".")
		return true
	}
	if len(cmd.Args) > 2 {
		s.bad("-ERR Wrong number of arguments")
		return true
	}
	if !strings.EqualFold(cmd.Args[0], "PLAIN") {
		s.bad("-ERR Unsupported authentication mechanism")
		return true
	}
	if !mayLogin() {
		return true
	}
	resp := ""
	if len(cmd.Args) == 2 {
		resp = cmd.Args[1]
	} else {
		s.reply("+ ")
		if s.flush() != nil {
			return false
		}
		line, err := s.readLine()
		if errors.Is(err, errTooLong) {
			s.bad("-ERR Line too long")
			return true
		} else if err != nil {
			return false
		}
		resp = line
	}
	if resp == "*" {
		s.bad("-ERR Authentication cancelled")
		return true
	}
	if resp == "=" {
		resp = ""
	}
	raw, err := base64.StdEncoding.DecodeString(resp)
	if err != nil {
		s.bad("-ERR Invalid base64")
		return true
	}
	authz, user, pass, ok := splitPlain(raw)
	if !ok {
		s.bad("-ERR Invalid PLAIN response")
		return true
	}
	if authz != "" && authz != user {
		// No proxy logins: one may act only as oneself.
		s.bad("-ERR [AUTH] Authentication failed")
		return true
	}
	return s.login(user, pass)
}

// splitPlain splits an RFC 4616 message: authzid NUL authcid NUL passwd.
func splitPlain(b []byte) (authz, user, pass string, ok bool) {
	parts := bytes.Split(b, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return "", "", "", false
	}
	return string(parts[0]), string(parts[1]), string(parts[2]), true
}

// login checks a login with the policy, locks the maildrop and takes its
// snapshot; false ends the session.
func (s *session) login(user, pass string) bool {
	ip := netip.Addr{}
	if a, ok := s.conn.RemoteAddr().(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(a.IP)
	}
	acct, err := s.srv.auth.Login(s.ctx(), auth.Request{Service: "pop3", Remote: ip.Unmap(), Username: user, Password: pass})
	switch {
	case err == nil:
	case errors.Is(err, auth.ErrFailed):
		s.bad("-ERR [AUTH] Authentication failed")
		return true
	case errors.Is(err, auth.ErrLimited):
		s.bad("-ERR [SYS/TEMP] Too many failed logins, try again later")
		return true
	default:
		s.reply("-ERR [SYS/TEMP] Temporary failure, try again later")
		return true
	}
	holder := newHolder()
	if err := s.srv.st.LockMaildrop(s.ctx(), acct.ID, holder, s.srv.lockTTL); err != nil {
		if errors.Is(err, store.ErrMaildropLocked) {
			s.reply("-ERR [IN-USE] Mailbox in use by another POP3 session")
		} else {
			s.srv.log.Error("pop3front: lock maildrop", "account", acct.Address, "err", err)
			s.reply("-ERR [SYS/TEMP] Cannot lock the mailbox, try again later")
		}
		return false
	}
	ctx, stop := s.watchHangup()
	drop, err := openMaildrop(ctx, s.ctx(), s.srv.st, acct)
	stop()
	if err != nil {
		s.srv.unlock(acct.ID, holder)
		if context.Cause(ctx) == errHungUp {
			s.srv.log.Debug("pop3front: client left during the maildrop's snapshot", "account", acct.Address)
			return false
		}
		s.srv.log.Error("pop3front: open maildrop", "account", acct.Address, "err", err)
		s.reply("-ERR [SYS/TEMP] Cannot open the mailbox, try again later")
		return false
	}
	s.drop, s.holder, s.acct = drop, holder, acct.ID
	s.renew = s.keepLock(acct.Address)
	s.srv.log.Debug("pop3front: login", "user", acct.Address)
	n, size := drop.stat()
	s.reply("+OK Logged in, %d messages (%d octets)", n, size)
	return true
}

// transaction runs a command of the TRANSACTION state.
func (s *session) transaction(cmd Command) {
	d := s.drop
	// msg parses a message-number argument naming a message not marked
	// deleted (RFC 1939 section 5).
	msg := func(arg string) (*item, int, bool) {
		n, ok := number(arg)
		if !ok || n < 1 || n > len(d.items) {
			s.bad("-ERR No such message")
			return nil, 0, false
		}
		it := &d.items[n-1]
		if it.deleted {
			s.bad("-ERR Message is deleted")
			return nil, 0, false
		}
		return it, n, true
	}
	nargs := len(cmd.Args)
	switch cmd.Name {
	case "STAT":
		if nargs != 0 {
			s.bad("-ERR Wrong number of arguments")
			return
		}
		n, size := d.stat()
		s.reply("+OK %d %d", n, size)
	case "LIST", "UIDL":
		if nargs > 1 {
			s.bad("-ERR Wrong number of arguments")
			return
		}
		val := func(it *item) string {
			if cmd.Name == "LIST" {
				return strconv.FormatInt(it.size, 10)
			}
			return it.uidl
		}
		if nargs == 1 {
			if it, n, ok := msg(cmd.Args[0]); ok {
				s.reply("+OK %d %s", n, val(it))
			}
			return
		}
		n, size := d.stat()
		if cmd.Name == "LIST" {
			s.reply("+OK %d messages (%d octets)", n, size)
		} else {
			s.reply("+OK")
		}
		for i := range d.items {
			if !d.items[i].deleted {
				s.reply("%d %s", i+1, val(&d.items[i]))
			}
		}
		s.reply(".")
	case "RETR", "TOP":
		lines := -1
		if cmd.Name == "RETR" && nargs != 1 || cmd.Name == "TOP" && nargs != 2 {
			s.bad("-ERR Wrong number of arguments")
			return
		}
		if cmd.Name == "TOP" {
			var ok bool
			if lines, ok = number(cmd.Args[1]); !ok {
				s.bad("-ERR Invalid number of lines")
				return
			}
		}
		it, _, ok := msg(cmd.Args[0])
		if !ok {
			return
		}
		body, err := d.body(s.ctx(), s.srv.st, it)
		if err != nil {
			s.srv.log.Warn("pop3front: read message", "account", d.address, "uid", it.uid, "err", err)
			s.reply("-ERR Message is no longer available")
			return
		}
		if lines >= 0 {
			body = top(body, lines)
		}
		s.reply("+OK %d octets", it.size)
		writeStuffed(s.w, body)
	case "DELE":
		if nargs != 1 {
			s.bad("-ERR Wrong number of arguments")
			return
		}
		if it, n, ok := msg(cmd.Args[0]); ok {
			it.deleted = true
			s.reply("+OK Message %d deleted", n)
		}
	case "RSET":
		if nargs != 0 {
			s.bad("-ERR Wrong number of arguments")
			return
		}
		for i := range d.items {
			d.items[i].deleted = false
		}
		n, size := d.stat()
		s.reply("+OK Maildrop has %d messages (%d octets)", n, size)
	case "USER", "PASS", "AUTH", "STLS":
		s.bad("-ERR Already logged in")
	default:
		s.bad("-ERR Unknown command")
	}
}

// quit ends the session; in the TRANSACTION state it enters UPDATE and
// removes the marked messages (RFC 1939 section 6).
func (s *session) quit() {
	if s.drop == nil {
		s.reply("+OK Bye")
		return
	}
	// The lock is renewed (checked) before anything is removed: a
	// session whose lock lapsed (a frozen node) while another session
	// took the maildrop removes nothing.
	if err := s.srv.st.RenewMaildrop(s.ctx(), s.acct, s.holder, s.srv.lockTTL); errors.Is(err, store.ErrMaildropLocked) {
		s.srv.log.Warn("pop3front: maildrop lock lost before QUIT", "account", s.drop.address, "err", err)
		s.reply("-ERR [IN-USE] The mailbox lock was lost; no message removed")
		return
	} else if err != nil {
		s.srv.log.Error("pop3front: renew maildrop lock before QUIT", "account", s.drop.address, "err", err)
		s.reply("-ERR [SYS/TEMP] The mailbox lock could not be checked; no message removed")
		return
	}
	n, err := s.drop.update(s.ctx(), s.srv.st)
	if err != nil {
		s.srv.log.Error("pop3front: remove deleted messages", "account", s.drop.address, "err", err)
		s.reply("-ERR [SYS/TEMP] Some deleted messages not removed")
		return
	}
	left, _ := s.drop.stat()
	// The maildrop is free before the client reads +OK: a client that
	// logs in again at once must not find it in use.
	s.release()
	s.reply("+OK Bye, %d messages removed, %d left", n, left)
}

// writeStuffed writes a multi-line response body (RFC 1939 section 3):
// the bytes as they are, a "." added before each line that begins with
// ".", CRLF added if the last line has none, then the terminating ".".
func writeStuffed(w io.Writer, body []byte) {
	bw, ok := w.(*bufio.Writer)
	if !ok {
		bw = bufio.NewWriter(w)
		defer bw.Flush()
	}
	for len(body) > 0 {
		if body[0] == '.' {
			bw.WriteByte('.')
		}
		i := bytes.IndexByte(body, '\n')
		if i < 0 {
			bw.Write(body)
			bw.WriteString("\r\n")
			body = nil
			break
		}
		bw.Write(body[:i+1])
		body = body[i+1:]
	}
	bw.WriteString(".\r\n")
}

// top returns the header of a message, the empty line after it and the
// first n lines of its body (RFC 1939 section 7), cut from the bytes.
func top(body []byte, n int) []byte {
	end := headerEnd(body)
	if end == len(body) {
		return body
	}
	rest := body[end:]
	cut := 0
	for i := 0; i < n; i++ {
		j := bytes.IndexByte(rest[cut:], '\n')
		if j < 0 {
			return body
		}
		cut += j + 1
	}
	return body[:end+cut]
}

// headerEnd is the offset just after the empty line that ends the header
// (CRLF CRLF or LF LF), or len(body) when there is none.
func headerEnd(body []byte) int {
	off := 0
	for off < len(body) {
		i := bytes.IndexByte(body[off:], '\n')
		if i < 0 {
			return len(body)
		}
		line := body[off : off+i]
		off += i + 1
		if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			return off
		}
	}
	return len(body)
}
