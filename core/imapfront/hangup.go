package imapfront

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// A session reads the store with its connection's context (session.readCtx),
// cancelled when the client hangs up: a client that sends SEARCH TEXT over
// a mailbox of 100,000 messages (or SORT, THREAD, FETCH, SELECT) and goes
// away does not leave the search running to its end. go-imap reads the
// socket only between commands, so a hang-up during one is seen by nobody:
// hangupConn (under TLS, under coalescingConn) reads for it while a
// command that reads the store has run for watchDelay. What it reads (a
// pipelined command, TLS records) is kept, at most aheadMax bytes, and
// given to the server's next Read, before its own; the end of the stream
// or a read error cancels the context, and is given after them. The
// watch reads without the server's read deadline, which bounds its wait
// for the client's next command, not a command's run (go-imap's 30 s
// from the command's line would end the watch of a longer SEARCH before
// the client gives up on it); the server's Read stops the watch first (a
// read deadline in the past ends the watcher's read), and the watcher
// puts back the deadline the server set last.
// Commands shorter than watchDelay (nearly all) cost a timer's Reset and
// Stop; writes are not touched (the store's writes keep the server's
// context: a change once begun is committed or not at all, whoever
// waits for it).

const (
	watchDelay = 10 * time.Millisecond
	aheadMax   = 64 << 10
)

// errHungUp is the cause of a connection's context cancelled because the
// client closed the connection (or the read from it failed).
var errHungUp = errors.New("imapfront: client closed the connection")

type hangupListener struct {
	net.Listener
	ctx context.Context // the server's
}

func (l hangupListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	h := &hangupConn{Conn: c}
	h.ctx, h.cancel = context.WithCancelCause(l.ctx)
	return h, nil
}

type hangupConn struct {
	net.Conn
	ctx    context.Context
	cancel context.CancelCauseFunc

	armed    atomic.Bool // a watch is wanted (set by watch, cleared by Read)
	mu       sync.Mutex
	timer    *time.Timer
	reading  bool // the server is in Read: no watch starts
	watching bool // a watcher is in Conn.Read
	stop     bool // Read asked the watcher to stop
	done     chan struct{}
	ahead    []byte    // read by the watcher, not yet given to Read
	err      error     // the watcher's read error, given after ahead
	deadline time.Time // the read deadline the server set
	closed   bool
}

// hangupWatches counts the watches started, in all (tests).
var hangupWatches atomic.Int64

// watch returns the connection's context and has the connection watched
// for a hang-up if the command still runs after watchDelay.
func (c *hangupConn) watch() context.Context {
	if c.armed.Load() {
		return c.ctx
	}
	c.mu.Lock()
	if c.watchable() {
		c.armed.Store(true)
		if c.timer == nil {
			c.timer = time.AfterFunc(watchDelay, c.watchRead)
		} else {
			c.timer.Reset(watchDelay)
		}
	}
	c.mu.Unlock()
	return c.ctx
}

// watchable tells whether a watch may start now; c.mu is held.
func (c *hangupConn) watchable() bool {
	return !c.reading && !c.watching && !c.closed && c.err == nil && len(c.ahead) < aheadMax
}

// watchRead reads the connection until Read stops it, the stream ends or
// fails (the context is then cancelled), or aheadMax bytes wait.
func (c *hangupConn) watchRead() {
	c.mu.Lock()
	// A timer that fired as Read stopped it finds the watch unwanted, or
	// (when the next command armed it again meanwhile) a watch that ran
	// already: it starts none over aheadMax kept or after the stream ended.
	if !c.armed.Load() || !c.watchable() {
		c.mu.Unlock()
		return
	}
	c.watching, c.stop, c.done = true, false, make(chan struct{})
	c.Conn.SetReadDeadline(time.Time{})
	c.mu.Unlock()
	hangupWatches.Add(1)
	buf := make([]byte, 4096)
	for {
		n, err := c.Conn.Read(buf)
		c.mu.Lock()
		c.ahead = append(c.ahead, buf[:n]...)
		// The deadline Read set to stop the watch ends the watch only.
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			c.err = err
			c.cancel(errHungUp)
		}
		if c.stop || err != nil || len(c.ahead) >= aheadMax {
			c.watching = false
			c.Conn.SetReadDeadline(c.deadline)
			close(c.done)
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
}

// aLongTimeAgo is a read deadline that ends a read at once.
var aLongTimeAgo = time.Unix(1, 0)

func (c *hangupConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	c.reading = true
	if c.armed.Load() {
		c.armed.Store(false)
		c.timer.Stop()
	}
	if c.watching {
		c.stop = true
		c.Conn.SetReadDeadline(aLongTimeAgo)
		done := c.done
		c.mu.Unlock()
		<-done
		c.mu.Lock()
	}
	if len(c.ahead) > 0 || c.err != nil {
		defer c.mu.Unlock()
		c.reading = false
		if len(c.ahead) == 0 {
			return 0, c.err
		}
		n := copy(p, c.ahead)
		if c.ahead = c.ahead[n:]; len(c.ahead) == 0 {
			c.ahead = nil
		}
		return n, nil
	}
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.reading = false
	c.mu.Unlock()
	return n, err
}

// SetReadDeadline records the server's deadline and sets it, at once or,
// during a watch, as the watch ends.
func (c *hangupConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	if c.watching {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *hangupConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

func (c *hangupConn) Close() error {
	c.mu.Lock()
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	c.cancel(net.ErrClosed)
	return c.Conn.Close()
}
