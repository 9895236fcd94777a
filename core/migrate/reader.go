package migrate

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/oldserver"
	"mailferry/core/store"
)

// readError is a failure while reading a message's literal. The command it
// belongs to must then not be drained: imapclient's reader has moved on
// (the literal's end was signalled by the error) and reading the literal
// again would race with it. Closing the client is the way out.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// reader reads FETCH responses; stager goroutines write each body to
// the store (store.Stage: pack file, hash, summary) while the next one is
// read. Bodies up to keepBuf bytes go through a few reused buffers, larger
// ones take one of as many tokens (bigs), so memory holds a handful of
// messages at most.
//
// A body is read by imapclient's reading goroutine itself as its literal
// comes (take, given to imapclient.FetchReading by reading): that
// goroutine then never waits for the FETCH loop to read a literal, and
// the loop gets each message whole, several at a time when the network
// is ahead. With one CPU for the copy (the pinned benchmark) each of the
// two hand-offs per message it replaces was a switch and often a thread
// woken (README, "mailferry migrate, the whole process").
type reader struct {
	st      *store.Store
	log     *slog.Logger
	maxSize int64
	bufs    chan []byte
	bigs    chan struct{}
	jobs    chan stageJob
	done    chan struct{}
	quit    chan struct{} // closed by close: take waits for no buffer
}

// body is a message's body as take read it.
type body struct {
	b      []byte
	read   bool // b holds the body (else: tooBig, or not wanted)
	pooled bool // b is one of bufs; else it holds a bigs token
	tooBig bool
}

type stageJob struct {
	p      *pending
	body   []byte
	pooled bool // as body's
}

// keepBuf is the largest body a reader's reused buffers take; stagers
// stage bodies in parallel (hashing, writing and summarizing one message is
// about as much work as reading it).
const (
	keepBuf    = 4 << 20
	readerBufs = 4
	stagers    = 2
)

func newReader(st *store.Store, log *slog.Logger, maxSize int64) *reader {
	r := &reader{st: st, log: log, maxSize: maxSize, bufs: make(chan []byte, readerBufs),
		bigs: make(chan struct{}, readerBufs), jobs: make(chan stageJob, readerBufs),
		done: make(chan struct{}), quit: make(chan struct{})}
	for range readerBufs {
		r.bufs <- nil
	}
	var wg sync.WaitGroup
	for range stagers {
		wg.Go(func() {
			for j := range r.jobs {
				j.p.stageErr = recovered(r.log, "stage", func() (err error) {
					j.p.blob, err = r.st.Stage(j.body)
					return err
				})
				close(j.p.staged)
				r.release(body{b: j.body, pooled: j.pooled})
			}
		})
	}
	go func() {
		wg.Wait()
		close(r.done)
	}()
	return r
}

// close stops the stager once it has staged everything handed to it; a
// take waiting for a buffer fails (its FETCH was given up).
func (r *reader) close() {
	close(r.quit)
	close(r.jobs)
	<-r.done
}

// errReaderClosed: the copy ended while a body waited for a buffer.
var errReaderClosed = errors.New("migrate: the copy ended before the message was read")

// reading is the imapclient.FetchReading function of one FETCH command
// asking for the UIDs in asked: each body is read (take) at most once per
// UID asked for, so that a server sending bodies nobody asked for does not
// fill the disk. It runs on imapclient's reading goroutine, so it keeps
// its own record; asked is not written while the command runs.
func (r *reader) reading(asked map[uint32]bool) imapclient.FetchLiteralFunc {
	took := make(map[uint32]bool, len(asked))
	return func(uid imap.UID, lit imap.LiteralReader) (any, error) {
		u := uint32(uid)
		b, err := r.take(u, lit, func(u uint32) bool { return asked[u] && !took[u] })
		if err == nil && b.read && u != 0 {
			took[u] = true
		}
		return b, err
	}
}

// take reads a literal of n bytes into a buffer, if it is not over maxSize
// and want, given the UID that came before it (0: none), says it is one
// the command asked for and has not had yet. It waits for a buffer (or a
// token) while as many bodies are being read or staged: the reader never
// runs more than that ahead of the stagers.
func (r *reader) take(uid uint32, lit imap.LiteralReader, want func(uid uint32) bool) (body, error) {
	if uid != 0 && !want(uid) {
		return body{}, nil // the rest is discarded by imapclient
	}
	n := lit.Size()
	if n > r.maxSize {
		return body{tooBig: true}, nil
	}
	b := body{read: true, pooled: n <= keepBuf}
	if b.pooled {
		select {
		case b.b = <-r.bufs:
		case <-r.quit:
			return body{}, errReaderClosed
		}
		if int64(cap(b.b)) < n {
			b.b = make([]byte, n)
		}
		b.b = b.b[:n]
	} else {
		select {
		case r.bigs <- struct{}{}:
		case <-r.quit:
			return body{}, errReaderClosed
		}
		b.b = make([]byte, n)
	}
	if _, err := io.ReadFull(lit, b.b); err != nil {
		r.release(b)
		return body{}, fmt.Errorf("read message %d: %w", uid, err)
	}
	return b, nil
}

// release gives back a body's buffer or token.
func (r *reader) release(b body) {
	if b.pooled {
		r.bufs <- b.b
	} else {
		<-r.bigs
	}
}

// wait waits until p's body is staged and says whether that worked.
func (p *pending) wait() error {
	if p.staged == nil {
		return fmt.Errorf("migrate: message %d has no body to store", p.uid)
	}
	<-p.staged
	return p.stageErr
}

// read reads one FETCH response of a command made with reading and
// stages its body (if take read it, and want, given the UID that came
// before the body, says again it is one the command asked for and has not
// had yet: its messages may have come in several responses).
func (r *reader) read(msg *imapclient.FetchMessageData, want func(uid uint32) bool) (*pending, error) {
	p := &pending{}
	for item := msg.Next(); item != nil; item = msg.Next() {
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			p.uid = uint32(it.UID)
		case imapclient.FetchItemDataFlags:
			p.flags, p.gotFlags = oldserver.MessageFlags(it.Flags), true
		case imapclient.FetchItemDataInternalDate:
			p.date, p.gotDate = it.Time, true
		case imapclient.FetchItemDataBodySection:
			p.gotBody = true
			b, read := it.Read.(body)
			switch {
			case read:
			case it.Literal == nil:
				p.nilBody = true
				continue
			default: // a command not made with reading: read here
				var err error
				if b, err = r.take(p.uid, it.Literal, want); err != nil {
					return nil, &readError{err}
				}
			}
			switch {
			case b.tooBig:
				p.tooBig = true
				continue
			case !b.read:
				continue // not wanted: the caller drops p
			case p.uid != 0 && !want(p.uid):
				r.release(b)
				continue
			}
			if !p.gotDate {
				p.headerDate = headerDate(b.b)
			}
			p.bodySize, p.staged = int64(len(b.b)), make(chan struct{})
			r.jobs <- stageJob{p: p, body: b.b, pooled: b.pooled}
		}
	}
	return p, nil
}
