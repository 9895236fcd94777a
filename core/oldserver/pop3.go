package oldserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// An old server's POP3 (RFC 1939), read for one thing: the UIDLs its POP3
// clients know, so that Mailferry can serve the same ones after the move.
// The client never sends DELE: nothing on the old server changes.

// ErrPOP3 is wrapped by every failure of the old server's POP3 that is not
// a refused login (ErrAuthFailed) or a network failure: an -ERR answer, or
// a reply that is not POP3.
var ErrPOP3 = errors.New("oldserver: POP3 error")

// POP3MaxLine bounds one line of the old server's POP3 answers (but for a
// message's bytes, read in pieces).
const POP3MaxLine = 4096

// POP3Client is a connection to an old server's POP3. It is not safe for
// concurrent use.
type POP3Client struct {
	conn    net.Conn
	r       *bufio.Reader
	timeout time.Duration
}

// POP3UIDL is one line of a UIDL listing: a message number of the session
// and its unique id.
type POP3UIDL struct {
	Num  int
	UIDL string
}

// DialPOP3 connects to the old server's POP3 (Settings.POP3Port, in
// Settings.POP3TLS mode, with the certificate checks of the IMAP
// connection) and reads its greeting.
func DialPOP3(ctx context.Context, s Settings, opts *DialOptions) (*POP3Client, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.POP3Port == 0 {
		return nil, fmt.Errorf("%w: no POP3 port in the old server's settings", ErrPOP3)
	}
	v, err := newVerifier(s, opts.roots())
	if err != nil {
		return nil, err
	}
	addr := s.Host.DialAddr(s.POP3Port)
	sctx, cancel := context.WithTimeout(ctx, opts.timeout())
	defer cancel()
	fail := func(op string, err error) (*POP3Client, error) {
		return nil, dialError(sctx, "POP3", addr, op, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(sctx, "tcp", addr)
	if err != nil {
		return fail("connect", err)
	}
	stop := context.AfterFunc(sctx, func() { conn.Close() })
	defer stop()
	if s.POP3TLS == TLSImplicit {
		cfg := v.config()
		cfg.NextProtos = []string{"pop3"}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(sctx); err != nil {
			conn.Close()
			return fail("tls", err)
		}
		conn = tc
	}
	c := &POP3Client{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), timeout: opts.timeout()}
	if _, err := c.status(); err != nil {
		conn.Close()
		return fail("greeting", err)
	}
	if s.POP3TLS == TLSStartTLS || s.POP3TLS == "" {
		if _, err := c.cmd("STLS"); err != nil {
			conn.Close()
			return fail("stls", fmt.Errorf("the server refused STLS: %w; try POP3 TLS mode %q or %q", err, TLSImplicit, TLSNone))
		}
		tc := tls.Client(conn, v.config())
		if err := tc.HandshakeContext(sctx); err != nil {
			conn.Close()
			return fail("tls", err)
		}
		c.conn, c.r = tc, bufio.NewReaderSize(tc, 64<<10)
	}
	return c, nil
}

// Close closes the connection without QUIT (nothing was marked deleted).
func (c *POP3Client) Close() error { return c.conn.Close() }

// Quit ends the session politely and closes the connection.
func (c *POP3Client) Quit() error {
	_, err := c.cmd("QUIT")
	c.conn.Close()
	return err
}

// line reads one line without its CRLF; a longer line than POP3MaxLine is
// an error.
func (c *POP3Client) line() (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(c.timeout))
	b, err := c.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(b) > POP3MaxLine {
		return "", fmt.Errorf("%w: line longer than %d octets", ErrPOP3, POP3MaxLine)
	} else if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// status reads a +OK or -ERR line; -ERR is an error wrapping ErrPOP3.
func (c *POP3Client) status() (string, error) {
	l, err := c.line()
	if err != nil {
		return "", err
	}
	switch {
	case strings.HasPrefix(l, "+OK"):
		return strings.TrimSpace(l[3:]), nil
	case strings.HasPrefix(l, "-ERR"):
		return "", fmt.Errorf("%w: the server said %q", ErrPOP3, l)
	}
	return "", fmt.Errorf("%w: not a POP3 answer: %q", ErrPOP3, trimQuote(l))
}

func trimQuote(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// cmd sends one command line and reads its status.
func (c *POP3Client) cmd(line string) (string, error) {
	c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		return "", err
	}
	return c.status()
}

// Login logs in with USER and PASS (RFC 1939 section 7). A refusal wraps
// ErrAuthFailed.
func (c *POP3Client) Login(name, password string) error {
	if strings.ContainsAny(name+password, "\r\n") {
		return fmt.Errorf("%w: a line break in the user name or password", ErrAuthFailed)
	}
	if _, err := c.cmd("USER " + name); err != nil {
		return popAuthError(err, name)
	}
	if _, err := c.cmd("PASS " + password); err != nil {
		return popAuthError(err, name)
	}
	return nil
}

// LoginMaster logs in as user with a master user's password: AUTH PLAIN
// with authzid user (RFC 5034, RFC 4616), or "user<sep>master" with
// USER/PASS when s.MasterForm is MasterSeparator.
func (c *POP3Client) LoginMaster(s Settings, user, master, password string) error {
	if s.MasterForm == MasterSeparator {
		sep := s.MasterSeparator
		if sep == "" {
			sep = "*"
		}
		return c.Login(user+sep+master, password)
	}
	resp := base64.StdEncoding.EncodeToString([]byte(user + "\x00" + master + "\x00" + password))
	if _, err := c.cmd("AUTH PLAIN " + resp); err != nil {
		return popAuthError(err, user)
	}
	return nil
}

func popAuthError(err error, name string) error {
	if errors.Is(err, ErrPOP3) {
		return fmt.Errorf("%w: POP3 login as %q: %w", ErrAuthFailed, name, err)
	}
	return fmt.Errorf("oldserver: POP3 login as %q: %s", name, explainNet(err))
}

// UIDL lists the unique ids of the maildrop (RFC 1939 section 7). A line
// that is not "number uidl" with a UIDL of 1 to 70 characters 0x21–0x7E is
// an error wrapping ErrPOP3.
func (c *POP3Client) UIDL(max int) ([]POP3UIDL, error) {
	if _, err := c.cmd("UIDL"); err != nil {
		return nil, err
	}
	var out []POP3UIDL
	for {
		l, err := c.line()
		if err != nil {
			return nil, err
		}
		if l == "." {
			return out, nil
		}
		num, uidl, ok := strings.Cut(l, " ")
		n, nerr := strconv.Atoi(num)
		if !ok || nerr != nil || n < 1 || !validUIDL(uidl) {
			return nil, fmt.Errorf("%w: bad UIDL line %q", ErrPOP3, trimQuote(l))
		}
		if len(out) >= max {
			return nil, fmt.Errorf("%w: more than %d messages", ErrPOP3, max)
		}
		out = append(out, POP3UIDL{Num: n, UIDL: uidl})
	}
}

func validUIDL(u string) bool {
	if len(u) < 1 || len(u) > 70 {
		return false
	}
	for i := 0; i < len(u); i++ {
		if u[i] < 0x21 || u[i] > 0x7e {
			return false
		}
	}
	return true
}

// Retr writes message n's bytes to w, the dot-stuffing undone, in pieces
// (never a whole message in memory); more than max bytes is an error
// wrapping ErrPOP3.
func (c *POP3Client) Retr(n int, w io.Writer, max int64) (int64, error) {
	if _, err := c.cmd("RETR " + strconv.Itoa(n)); err != nil {
		return 0, err
	}
	var total int64
	start := true
	for {
		c.conn.SetReadDeadline(time.Now().Add(c.timeout))
		frag, err := c.r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return total, err
		}
		if start {
			if s := string(frag); s == ".\r\n" || s == ".\n" {
				return total, nil
			}
			if len(frag) > 0 && frag[0] == '.' {
				frag = frag[1:]
			}
		}
		if total += int64(len(frag)); total > max {
			return total, fmt.Errorf("%w: message %d larger than %d bytes", ErrPOP3, n, max)
		}
		if _, werr := w.Write(frag); werr != nil {
			return total, werr
		}
		start = err == nil
	}
}
