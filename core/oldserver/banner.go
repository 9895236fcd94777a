package oldserver

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
)

// bannerSize is how many of the first bytes a server sends are kept to
// tell which protocol answered when the greeting does not parse, and the
// words of a BYE greeting (turnedAway).
const bannerSize = 256

// bannerConn is a net.Conn that keeps the first bannerSize bytes read.
type bannerConn struct {
	net.Conn
	mu  sync.Mutex
	buf []byte
}

func (c *bannerConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		if room := bannerSize - len(c.buf); room > 0 {
			c.buf = append(c.buf, p[:min(n, room)]...)
		}
		c.mu.Unlock()
	}
	return n, err
}

// banner returns a copy of the bytes read so far (at most bannerSize).
func (c *bannerConn) banner() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.buf)
}

// ProtocolError is a port that answered in another protocol than the one
// asked for: an SMTP banner on the IMAP port (the ports swapped), a plain
// greeting where TLS was expected, or nothing at all where a greeting was
// due (a TLS-only port dialed without TLS).
type ProtocolError struct {
	// Proto is the protocol asked for, "IMAP" or "SMTP".
	Proto string
	// Got is the protocol that answered: "IMAP", "SMTP", "POP3", "SSH",
	// "HTTP", "plain text" (a greeting of Proto without TLS where TLS was
	// expected), or "" if it is not known (Banner says what came).
	Got string
	// Banner is the start of what the server sent, printable ASCII only
	// ("" when it sent nothing).
	Banner string
	// Err is the failure of the greeting or handshake.
	Err error
}

// Error implements error.
func (e *ProtocolError) Error() string {
	switch {
	case e.Banner == "":
		return fmt.Sprintf("oldserver: no %s greeting (the port may expect TLS first): %v", e.Proto, e.Err)
	case e.Got == "":
		return fmt.Sprintf("oldserver: the %s port answered %q, which is not %s: %v", e.Proto, e.Banner, e.Proto, e.Err)
	case e.Got == "plain text":
		return fmt.Sprintf("oldserver: the %s port answered without TLS (%q): %v", e.Proto, e.Banner, e.Err)
	}
	return fmt.Sprintf("oldserver: the %s port speaks %s (it answered %q): %v", e.Proto, e.Got, e.Banner, e.Err)
}

// Unwrap returns the cause.
func (e *ProtocolError) Unwrap() error { return e.Err }

// protocolOf names the protocol a server greeting b belongs to, or "".
func protocolOf(b []byte) string {
	s := string(b)
	switch {
	case strings.HasPrefix(s, "* OK") || strings.HasPrefix(s, "* PREAUTH") || strings.HasPrefix(s, "* BYE"):
		return "IMAP"
	case len(s) >= 4 && s[0] == '2' && s[1] == '2' && s[2] == '0' && (s[3] == ' ' || s[3] == '-'):
		return "SMTP"
	case strings.HasPrefix(s, "+OK"):
		return "POP3"
	case strings.HasPrefix(s, "SSH-"):
		return "SSH"
	case strings.HasPrefix(s, "HTTP/"):
		return "HTTP"
	}
	return ""
}

// printable returns the first line of b with anything but printable ASCII
// replaced, for messages.
func printable(b []byte) string {
	if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
		b = b[:i]
	}
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		out = append(out, c)
	}
	return string(out)
}

// greetingError explains a failed greeting of proto on a connection that
// read banner: a *ProtocolError when another protocol answered, or nothing
// did until the time was up (timedOut), else err unchanged.
func greetingError(proto string, banner []byte, err error, timedOut bool) error {
	if len(banner) == 0 {
		if timedOut {
			return &ProtocolError{Proto: proto, Err: err}
		}
		return err
	}
	if got := protocolOf(banner); got != "" && got != proto {
		return &ProtocolError{Proto: proto, Got: got, Banner: printable(banner), Err: err}
	}
	return err
}

// handshakeError explains a failed TLS handshake with implicit TLS: a
// server that answered in plain text is a *ProtocolError (with Got "plain
// text" when it greeted in proto, the TLS mode is wrong; else the port).
func handshakeError(proto string, err error) error {
	var re tls.RecordHeaderError
	if !errors.As(err, &re) {
		return err
	}
	h := re.RecordHeader[:]
	switch got := protocolOf(h); {
	case got == proto:
		return &ProtocolError{Proto: proto, Got: "plain text", Banner: printable(h), Err: err}
	case got != "":
		return &ProtocolError{Proto: proto, Got: got, Banner: printable(h), Err: err}
	}
	return err
}
