package quirky

// The wire filter: what go-imap's server writes is cut into whole
// responses (a line, and the literals it announces with the lines after
// them), and each is rewritten by the quirks before it goes out; what the
// client sends has a broken folder name's raw bytes put back to the token
// the session knows it by.

import (
	"bytes"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"sync"
)

type listener struct {
	net.Listener
	s *Server
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.s.mu.Lock()
	l.s.conns[c] = true
	l.s.mu.Unlock()
	return &conn{Conn: c, s: l.s}, nil
}

// conn is one connection with the quirks on.
type conn struct {
	net.Conn
	s *Server

	in []byte // read from the client, rewritten, not yet given to the server

	mu       sync.Mutex
	out      []byte // written by the server, not yet a whole response
	bodies   int    // FETCH responses with a body sent
	strays   int
	stopped  bool
	flooding bool // Quirks.FloodAfter: the server's responses are dropped
}

func (c *conn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c.Conn)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

func (c *conn) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		buf := make([]byte, 4096)
		n, err := c.Conn.Read(buf)
		if n == 0 {
			return 0, err
		}
		c.in = buf[:n]
		for _, f := range c.s.folders {
			if f.token != "" {
				c.in = bytes.ReplaceAll(c.in, []byte(f.wire), []byte(f.token))
			}
		}
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

func (c *conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return 0, net.ErrClosed
	}
	if c.flooding {
		return len(p), nil
	}
	c.out = append(c.out, p...)
	for {
		end := responseEnd(c.out)
		if end < 0 {
			return len(p), nil
		}
		resp := c.out[:end:end]
		c.out = append([]byte(nil), c.out[end:]...)
		out, bye := c.rewrite(resp)
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
		if q := c.s.q; q.FloodAfter > 0 && c.bodies >= q.FloodAfter && !c.flooding &&
			(q.FloodTimes == 0 || c.s.floods.Load() < int32(q.FloodTimes)) {
			c.s.floods.Add(1)
			c.flooding = true
			go c.flood()
			return len(p), nil
		}
		if bye {
			c.stopped = true
			c.Conn.Close()
			return len(p), nil
		}
	}
}

// flood writes unknown untagged responses until the connection fails
// (the client closed it, or the server was stopped).
func (c *conn) flood() {
	line := []byte("* XFLOOD " + string(bytes.Repeat([]byte("x"), 4000)) + "\r\n")
	for {
		c.mu.Lock()
		_, err := c.Conn.Write(line)
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// responseEnd is the length of the first whole response in b, or -1.
func responseEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte("\r\n"))
		if j < 0 {
			return -1
		}
		n, ok := literalSize(b[i : i+j])
		if !ok {
			return i + j + 2
		}
		i += j + 2 + n
		if i > len(b) {
			return -1
		}
	}
}

var literalRE = regexp.MustCompile(`~?\{(\d+)\+?\}$`)

// literalSize is the size of the literal line announces at its end.
func literalSize(line []byte) (int, bool) {
	m := literalRE.FindSubmatch(line)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(string(m[1]))
	return n, err == nil
}

var (
	fetchRE = regexp.MustCompile(`^\* (\d+) FETCH \(`)
	uidRE   = regexp.MustCompile(`UID (\d+)`)
	flagsRE = regexp.MustCompile(`FLAGS \([^)]*\) ?`)
	dateRE  = regexp.MustCompile(`INTERNALDATE "[^"]*" ?`)
	sizeRE  = regexp.MustCompile(`RFC822\.SIZE \d+`)
)

// strays are the untagged responses Quirks.Stray puts in odd places.
var strays = []string{
	"* OK [ALERT] Your mailbox is 95% full\r\n",
	"* XSTRAY 1 (2 \"three\") {5}\r\nfour)\r\n",
	"* 3 EXPUNGE\r\n",
}

// rewrite is one whole response as the quirks have it, and whether the
// connection ends after it.
func (c *conn) rewrite(resp []byte) ([]byte, bool) {
	q := c.s.q
	nl := bytes.Index(resp, []byte("\r\n"))
	first, rest := resp[:nl], resp[nl:]
	m := fetchRE.FindSubmatch(first)
	var pre, post []byte
	bye := false
	switch {
	case m != nil:
		if q.Stray {
			pre = []byte(strays[c.strays%len(strays)])
			c.strays++
		}
		if u := uidRE.FindSubmatch(first); q.Stray && u != nil && sizeRE.Match(first) {
			// a flag update of the message just listed
			post = fmt.Appendf(nil, "* %s FETCH (UID %s FLAGS (\\Seen))\r\n", m[1], u[1])
		}
		if q.NilSize {
			first = sizeRE.ReplaceAll(first, []byte("RFC822.SIZE NIL"))
		}
		if !bytes.Contains(first, []byte("BODY[]")) {
			break
		}
		flags, date := flagsRE.Find(first), dateRE.Find(first)
		if q.NoFlags || q.SplitItems {
			first = flagsRE.ReplaceAll(first, nil)
		}
		if q.NoDate || q.SplitItems {
			first = dateRE.ReplaceAll(first, nil)
		}
		if u := uidRE.FindSubmatch(first); q.SplitItems && u != nil {
			post = fmt.Appendf(nil, "* %s FETCH (UID %s %s%s)\r\n", m[1], u[1], flags, bytes.TrimSpace(date))
		}
		c.bodies++
		if q.Unasked > 0 {
			post = append(post, first...)
			post = append(post, rest...)
			junk := bytes.Repeat([]byte("unasked\r\n"), 64<<10/9)
			for i := range q.Unasked {
				post = fmt.Appendf(post, "* %s FETCH (UID %d FLAGS () BODY[] {%d}\r\n%s)\r\n", m[1], 900000+c.bodies*q.Unasked+i, len(junk), junk)
			}
		}
		if q.ByeAfter > 0 && c.bodies == q.ByeAfter && c.s.byes.Load() < int32(max(q.ByeTimes, 1)) {
			c.s.byes.Add(1)
			post = append(post, "* BYE Server shutting down for maintenance\r\n"...)
			bye = true
		}
	case bytes.HasPrefix(first, []byte("* LIST ")), bytes.HasPrefix(first, []byte("* STATUS ")):
		if q.Stray {
			pre = []byte(strays[c.strays%2])
			c.strays++
		}
		for _, f := range c.s.folders {
			if f.token != "" {
				first = bytes.ReplaceAll(first, []byte(`"`+f.token+`"`), []byte(`"`+f.wire+`"`))
				first = bytes.ReplaceAll(first, []byte(f.token), []byte(`"`+f.wire+`"`))
			}
		}
	}
	out := append(append(append(pre, first...), rest...), post...)
	return out, bye
}
