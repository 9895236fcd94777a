package oldserver

import (
	"net"
	"sync"
	"time"
)

// DefaultReadStall is DialOptions.ReadStall's default.
const DefaultReadStall = 30 * time.Second

// stallConn turns the read deadlines imapclient sets into a bound on
// silence. imapclient gives a whole response 30 s and a whole literal 5
// minutes, so a server that stops sending in the middle of a message held
// the copy for 5 minutes, while a large message arriving slowly but
// steadily could be cut. Here any deadline imapclient sets (a read is
// expected) becomes "each read returns within stall": every Read call
// moves the deadline to stall from now, so time a reader spends between
// reads does not count and only the server's silence does. A zero
// deadline (no read expected: the connection is idle) stays zero.
//
// Since each Read sets the deadline itself, SetReadDeadline only records
// whether reads are expected; the connection's own deadline is set by the
// next Read. imapclient sets a deadline four times per FETCH response
// (the response, its literal, back, idle), while the read-ahead below it
// reads the socket once per many responses: each deadline set on a
// socket is a timer update in the runtime. A SetReadDeadline while a Read
// is under way (another goroutine's) still reaches that Read at once.
type stallConn struct {
	net.Conn
	stall time.Duration

	mu      sync.Mutex
	armed   bool // reads are expected: each one has stall
	set     bool // the connection has a read deadline now
	reading int  // Reads under way
}

func newStallConn(c net.Conn, stall time.Duration) net.Conn {
	if stall < 0 {
		return c
	}
	if stall == 0 {
		stall = DefaultReadStall
	}
	return &stallConn{Conn: c, stall: stall}
}

func (c *stallConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed = !t.IsZero()
	if c.reading == 0 {
		return nil // the next Read sets the connection's deadline
	}
	return c.applyLocked()
}

// applyLocked gives the connection the read deadline a Read starting now
// has: stall from now when armed, none otherwise.
func (c *stallConn) applyLocked() error {
	if c.armed {
		c.set = true
		return c.Conn.SetReadDeadline(time.Now().Add(c.stall))
	}
	if c.set {
		c.set = false
		return c.Conn.SetReadDeadline(time.Time{})
	}
	return nil
}

func (c *stallConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

func (c *stallConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if err := c.applyLocked(); err != nil {
		c.mu.Unlock()
		return 0, err
	}
	c.reading++
	c.mu.Unlock()
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.reading--
	c.mu.Unlock()
	return n, err
}
