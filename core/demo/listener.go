package demo

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// The server's listeners: loopback only, and tracking their connections
// so that Close ends every session.

// listenLoopback listens on addr, which must be a loopback IP address.
func listenLoopback(addr string) (*trackingListener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("address %q is not a loopback IP address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return newTrackingListener(ln), nil
}

// trackingListener tracks the connections it accepted until they are closed,
// so shutdown can close them all (also one accepted a moment before the
// library registered it) and wait for them.
type trackingListener struct {
	net.Listener

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
	wg     sync.WaitGroup // one per open tracked connection
}

func newTrackingListener(ln net.Listener) *trackingListener {
	return &trackingListener{Listener: ln, conns: make(map[*trackedConn]struct{})}
}

// Accept implements net.Listener.
func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, l: l}
	l.conns[tc] = struct{}{}
	l.wg.Add(1)
	return tc, nil
}

// closeAll closes the listener and every open connection; afterwards Accept
// fails and wg only goes down.
func (l *trackingListener) closeAll() {
	l.mu.Lock()
	l.closed = true
	conns := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	l.Listener.Close()
	for _, c := range conns {
		c.Close()
	}
}

type trackedConn struct {
	net.Conn
	l      *trackingListener
	once   sync.Once
	broken atomic.Bool
}

// Write implements net.Conn. Once a write fails, the connection is closed
// and every write then "succeeds" without sending anything: imapmemserver's
// FETCH returns on a failed write without closing its response writer, which
// leaves go-imap's connection lock held, so the connection's goroutine would
// block forever on its next response (go-imap v2.0.0-beta.8) and Close would
// wait for it in vain. With the write "done", FETCH ends normally and the
// next read fails on the closed connection, ending the session.
func (c *trackedConn) Write(p []byte) (int, error) {
	if c.broken.Load() {
		return len(p), nil
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		c.broken.Store(true)
		c.Close()
		return len(p), nil
	}
	return n, nil
}

// Close implements net.Conn.
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		c.l.wg.Done()
	})
	return err
}
