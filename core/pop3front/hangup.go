package pop3front

import (
	"context"
	"errors"
	"os"
	"time"
)

// A login's snapshot of the maildrop (openMaildrop: the INBOX's messages,
// their UIDLs) reads the store with a context cancelled when the client
// hangs up: 100,000 messages take about 400 ms (BenchmarkOpenMaildrop100k),
// a migrated account's first login about a second, and a client that sends
// PASS and goes away does not leave them running to their end. Nothing
// reads the socket while the snapshot is taken, so watchHangup reads for
// it, through the session's bufio.Reader: what it reads (pipelined
// commands) stays in that reader's buffer for the session's next read, at
// most its size (MaxLine+2); the end of the stream or a read error cancels
// the context. The store's writes (the UIDLs matched and pinned) keep the
// server's context: a change once begun is committed or not at all.

// errHungUp is the cause of a snapshot's context cancelled because the
// client closed the connection (or the read from it failed).
var errHungUp = errors.New("pop3front: client closed the connection")

// aLongTimeAgo is a read deadline that ends a read at once.
var aLongTimeAgo = time.Unix(1, 0)

// watchHangup returns a context for the store's reads, cancelled when the
// client hangs up, and stop, which ends the watch; stop must be called
// before the session reads again (it leaves the read deadline in the past:
// the session sets its own before each read).
func (s *session) watchHangup() (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(s.ctx())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			n := s.r.Buffered() + 1
			if n > s.r.Size() {
				return // the buffer is full: the client is there
			}
			if _, err := s.r.Peek(n); err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					cancel(errHungUp)
				}
				return
			}
		}
	}()
	return ctx, func() {
		s.conn.SetReadDeadline(aLongTimeAgo)
		<-done
		cancel(nil)
	}
}
