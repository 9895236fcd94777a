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
type stallConn struct {
	net.Conn
	stall time.Duration

	mu    sync.Mutex
	armed bool
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
	c.armed = !t.IsZero()
	c.mu.Unlock()
	if t.IsZero() {
		return c.Conn.SetReadDeadline(t)
	}
	return c.Conn.SetReadDeadline(time.Now().Add(c.stall))
}

func (c *stallConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

func (c *stallConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	armed := c.armed
	c.mu.Unlock()
	if armed {
		if err := c.Conn.SetReadDeadline(time.Now().Add(c.stall)); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(b)
}
