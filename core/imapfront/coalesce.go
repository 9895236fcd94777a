package imapfront

import (
	"log/slog"
	"net"
	"sync"
	"time"
)

// go-imap's server flushes its buffer after every response line, so a
// FETCH of 20,000 messages costs 20,000 write system calls. coalescingConn
// gathers those writes and sends them together: when its buffer is full,
// before the server reads again (so a command's answer is always complete
// on the wire before the next command is read), on Close, and at the
// latest flushDelay after the first unsent byte written while the server
// waits in Read (IDLE updates written while it waits for DONE), or
// commandFlushDelay after one written while a command runs (its answer
// goes at its end, when the server reads again: a command that took over
// a millisecond, as most do under load when they wait for a core, was
// sent in two writes, the client woken twice). A flush stops the timer,
// which otherwise fired after every command's answer, a goroutine each.

const (
	coalesceSize      = 64 << 10
	flushDelay        = time.Millisecond
	commandFlushDelay = 50 * time.Millisecond
	// flushTimeout bounds a write the server itself did not set a deadline
	// for (a delayed flush runs after go-imap cleared its own).
	flushTimeout = 30 * time.Second
)

type coalescingListener struct {
	net.Listener
	log *slog.Logger
}

func (l coalescingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &coalescingConn{Conn: c, log: l.log}, nil
}

type coalescingConn struct {
	net.Conn
	log *slog.Logger

	mu       sync.Mutex
	buf      []byte
	timer    *time.Timer
	armed    bool
	reading  bool // in Read: what is written now is not a command's answer
	err      error
	deadline time.Time // the write deadline go-imap set, if any
	closeBy  time.Time // set by Close: the last flush's bound
	applied  time.Time // the write deadline last set on Conn by bound
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if len(c.buf)+len(p) > coalesceSize {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) >= coalesceSize {
			c.bound()
			n, err := c.Conn.Write(p)
			if err != nil {
				c.err = err
			}
			return n, err
		}
	}
	c.buf = append(c.buf, p...)
	if !c.armed {
		c.armed = true
		delay := commandFlushDelay
		if c.reading {
			delay = flushDelay
		}
		if c.timer == nil {
			c.timer = time.AfterFunc(delay, c.timedFlush)
		} else {
			c.timer.Reset(delay)
		}
	}
	return len(p), nil
}

func (c *coalescingConn) timedFlush() {
	defer func() {
		if v := recover(); v != nil {
			c.log.Error("imapfront: panic flushing a connection", "panic", v, "stack", stack())
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed = false
	c.flushLocked()
}

// flushLocked sends the buffer; c.mu is held.
func (c *coalescingConn) flushLocked() error {
	if c.err != nil {
		return c.err
	}
	if len(c.buf) == 0 {
		return nil
	}
	if c.armed {
		c.armed = false
		c.timer.Stop()
	}
	c.bound()
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	if cap(c.buf) > 4*coalesceSize {
		c.buf = nil
	}
	if err != nil {
		c.err = err
	}
	return err
}

func (c *coalescingConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	err := c.flushLocked()
	c.reading = err == nil
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.reading = false
	c.mu.Unlock()
	return n, err
}

// bound sets on Conn the write deadline of a write about to go out:
// Close's, else go-imap's, else flushTimeout from now; c.mu is held.
// go-imap sets a deadline before each response (and each literal) and
// clears it after, four changes of a runtime timer per message of a FETCH
// (12% of a FETCH's CPU under BenchmarkLatencyMailferry); only the writes
// that reach Conn need one, so SetWriteDeadline only records it and it is
// set here, once per write that goes out.
func (c *coalescingConn) bound() {
	d := c.deadline
	switch {
	case !c.closeBy.IsZero():
		d = c.closeBy
	case d.IsZero():
		d = time.Now().Add(flushTimeout)
	}
	if !d.Equal(c.applied) {
		c.Conn.SetWriteDeadline(d)
		c.applied = d
	}
}

// SetWriteDeadline bounds the writes that go out from now on (bound).
func (c *coalescingConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}

func (c *coalescingConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	c.applied = t
	return c.Conn.SetDeadline(t)
}

func (c *coalescingConn) Close() error {
	// Last words (BYE, LOGOUT's OK) get a short bound: the peer may be gone.
	// Setting it first also cuts short a flush blocked on a peer that does
	// not read, so Close never waits long for the lock.
	by := time.Now().Add(2 * time.Second)
	for {
		// Again until we hold the lock: a flush that started meanwhile
		// may have set its own, longer deadline.
		c.Conn.SetWriteDeadline(by)
		if c.mu.TryLock() {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.closeBy = by
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.err == nil && len(c.buf) > 0 {
		c.flushLocked()
	}
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.mu.Unlock()
	return c.Conn.Close()
}
