package demo

// Limits a real old server puts on its clients, for tests of a migration
// engine that must live with them: a cap on connections per IP address and
// a delay before a failed login is answered.

import (
	"net"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// TooManyConnections is the text of the BYE greeting an IMAP connection
// over Options.MaxConnsPerIP gets.
const TooManyConnections = "Too many connections from your IP address"

// connCap counts the open IMAP connections per IP address.
type connCap struct {
	max  int
	drop bool

	mu   sync.Mutex
	open map[string]int
	peak int // the most open at once from one IP address
}

func newConnCap(max int, drop bool) *connCap {
	return &connCap{max: max, drop: drop, open: make(map[string]int)}
}

// admit counts a new connection from ip, or reports false when ip has
// max open already.
func (c *connCap) admit(ip string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open[ip] >= c.max {
		return false
	}
	c.open[ip]++
	c.peak = max(c.peak, c.open[ip])
	return true
}

// SetMaxConnsPerIP changes Options.MaxConnsPerIP of a server started with
// one (above 0), as an admin who raises the limit does; connections open
// stay. It reports false when the server has no such cap.
func (s *Server) SetMaxConnsPerIP(n int) bool {
	if s.connCap == nil || n <= 0 {
		return false
	}
	s.connCap.mu.Lock()
	s.connCap.max = n
	s.connCap.mu.Unlock()
	return true
}

// PeakConnsPerIP is the most IMAP connections one IP address had open at
// once under Options.MaxConnsPerIP since the last call (0 without a cap),
// which starts the count again from those open now.
func (s *Server) PeakConnsPerIP() int {
	if s.connCap == nil {
		return 0
	}
	s.connCap.mu.Lock()
	defer s.connCap.mu.Unlock()
	p := s.connCap.peak
	s.connCap.peak = 0
	for _, n := range s.connCap.open {
		s.connCap.peak = max(s.connCap.peak, n)
	}
	return p
}

// release forgets a connection admit counted.
func (c *connCap) release(ip string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open[ip]--; c.open[ip] <= 0 {
		delete(c.open, ip)
	}
}

// remoteIP is the IP address of a connection's peer ("" if unknown).
func remoteIP(conn *imapserver.Conn) string {
	host, _, err := net.SplitHostPort(conn.NetConn().RemoteAddr().String())
	if err != nil {
		return ""
	}
	return host
}

// admitConn applies Options.MaxConnsPerIP to a new IMAP connection: it
// returns the IP counted (for release when the session closes), or the
// error that turns the connection away: a BYE greeting, or, with
// Options.CapDrop, the connection closed before any greeting.
func (s *Server) admitConn(conn *imapserver.Conn) (string, error) {
	if s.connCap == nil {
		return "", nil
	}
	ip := remoteIP(conn)
	if s.connCap.admit(ip) {
		return ip, nil
	}
	s.log.Info("IMAP connection refused: too many from this IP", "remote", ip, "max", s.connCap.max)
	if s.connCap.drop {
		conn.NetConn().Close()
	}
	return "", &imap.Error{Type: imap.StatusResponseTypeBye, Text: TooManyConnections}
}

// FailedLogins is how many IMAP logins (LOGIN, AUTHENTICATE) the server
// has refused since it started: a test tells by it which login names a
// client tried.
func (s *Server) FailedLogins() int64 { return s.failedLogins.Load() }

// failedLogin counts a refused login and waits Options.LoginFailDelay (or
// until the server stops) before it is answered.
func (s *Server) failedLogin() {
	s.failedLogins.Add(1)
	if s.loginFailDelay <= 0 {
		return
	}
	t := time.NewTimer(s.loginFailDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.ctx.Done():
	}
}
