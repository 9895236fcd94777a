package demo

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// The demo's POP3 (RFC 1939 with CAPA, RFC 2449): a read-only view of each
// user's INBOX with Dovecot's default UIDLs ("%08X%08X" of UID and
// UIDVALIDITY), so that the migration's UIDL keeping can be tried without a
// real server. USER/PASS only (also without TLS: loopback), no STLS; DELE
// is refused (the demo's POP3 changes nothing). Lines are bounded.

// pop3MaxLine bounds a command line of the demo's POP3.
const pop3MaxLine = 512

// POP3Addr returns the address of the demo's POP3.
func (s *Server) POP3Addr() string { return s.pop3Ln.Addr().String() }

func (s *Server) servePOP3(ctx context.Context) {
	for {
		c, err := s.pop3Ln.Accept()
		if err != nil {
			if !s.stopped(err) && ctx.Err() == nil {
				s.log.Error("POP3 server stopped", "err", err)
			}
			return
		}
		if !s.sessionStart() {
			c.Close()
			return
		}
		s.goSafe("pop3-session", func(ctx context.Context) {
			defer s.sessions.Done()
			defer c.Close()
			s.pop3Session(c)
		})
	}
}

func (s *Server) pop3Session(c net.Conn) {
	r := bufio.NewReaderSize(c, pop3MaxLine)
	w := bufio.NewWriter(c)
	say := func(format string, args ...any) {
		fmt.Fprintf(w, format+"\r\n", args...)
	}
	var user string
	var acct *account
	var uidv uint32
	var msgs [][]byte
	var uids []uint32
	say("+OK Demo POP3 ready")
	for {
		if w.Flush() != nil {
			return
		}
		c.SetDeadline(time.Now().Add(5 * time.Minute))
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			say("-ERR line too long")
			w.Flush()
			return
		} else if err != nil {
			return
		}
		cmd, arg, _ := strings.Cut(strings.TrimRight(string(line), "\r\n"), " ")
		cmd = strings.ToUpper(cmd)
		msg := func() (int, bool) {
			n, err := strconv.Atoi(strings.Fields(arg + " x")[0])
			if err != nil || n < 1 || n > len(msgs) {
				say("-ERR no such message")
				return 0, false
			}
			return n, true
		}
		switch {
		case cmd == "QUIT":
			say("+OK bye")
			w.Flush()
			return
		case cmd == "CAPA":
			say("+OK\r\nUSER\r\nUIDL\r\nTOP\r\nRESP-CODES\r\n.")
		case cmd == "NOOP" && acct != nil, cmd == "RSET" && acct != nil:
			say("+OK")
		case cmd == "USER" && acct == nil:
			user = arg
			say("+OK")
		case cmd == "PASS" && acct == nil:
			a := s.loginAccount(user)
			if a == nil || subtle.ConstantTimeCompare([]byte(arg), []byte(a.password)) != 1 {
				say("-ERR [AUTH] Authentication failed.")
				continue
			}
			v, stored, err := a.mem.Snapshot("INBOX")
			if err != nil {
				say("-ERR [SYS/TEMP] no INBOX")
				continue
			}
			acct, uidv = a, v
			for _, m := range stored {
				msgs = append(msgs, m.Buf)
				uids = append(uids, uint32(m.UID))
			}
			say("+OK Logged in.")
		case acct == nil:
			say("-ERR not logged in")
		case cmd == "STAT":
			size := 0
			for _, m := range msgs {
				size += len(m)
			}
			say("+OK %d %d", len(msgs), size)
		case cmd == "LIST" || cmd == "UIDL":
			val := func(i int) string {
				if cmd == "LIST" {
					return strconv.Itoa(len(msgs[i]))
				}
				return fmt.Sprintf("%08X%08X", uids[i], uidv)
			}
			if arg != "" {
				if n, ok := msg(); ok {
					say("+OK %d %s", n, val(n-1))
				}
				continue
			}
			say("+OK")
			for i := range msgs {
				say("%d %s", i+1, val(i))
			}
			say(".")
		case cmd == "RETR" || cmd == "TOP":
			n, ok := msg()
			if !ok {
				continue
			}
			body := msgs[n-1]
			if cmd == "TOP" {
				f := strings.Fields(arg)
				k, err := strconv.Atoi(strings.Join(f[1:], ""))
				if len(f) != 2 || err != nil || k < 0 {
					say("-ERR bad line count")
					continue
				}
				body = topOf(body, k)
			}
			say("+OK %d octets", len(msgs[n-1]))
			for len(body) > 0 {
				i := bytes.IndexByte(body, '\n')
				ln := body
				if i >= 0 {
					ln, body = body[:i+1], body[i+1:]
				} else {
					body = nil
				}
				if ln[0] == '.' {
					w.WriteByte('.')
				}
				w.Write(ln)
				if i < 0 {
					w.WriteString("\r\n")
				}
			}
			say(".")
		case cmd == "DELE":
			say("-ERR the demo's POP3 is read-only")
		default:
			say("-ERR unknown command")
		}
	}
}

// topOf is the header, the empty line and n lines of the body.
func topOf(b []byte, n int) []byte {
	off := 0
	for off < len(b) {
		i := bytes.IndexByte(b[off:], '\n')
		if i < 0 {
			return b
		}
		line := b[off : off+i]
		off += i + 1
		if len(bytes.TrimSuffix(line, []byte("\r"))) == 0 {
			break
		}
	}
	for ; n > 0 && off < len(b); n-- {
		i := bytes.IndexByte(b[off:], '\n')
		if i < 0 {
			return b
		}
		off += i + 1
	}
	return b[:off]
}
