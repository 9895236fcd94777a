package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/oldserver"
	"mailferry/core/store"
)

// pending is one message read from the old server, not yet committed.
type pending struct {
	uid   uint32
	flags []string
	date  time.Time
	// The body (bodySize bytes) is staged in the store by the reader's
	// stager; blob and stageErr are set once staged is closed.
	bodySize int64
	staged   chan struct{}
	blob     *store.StagedBlob
	stageErr error
	// nilBody: the server sent BODY[] NIL; tooBig: over MaxMessageSize.
	nilBody, tooBig, gotBody bool
	// gotFlags, gotDate: the server sent FLAGS, INTERNALDATE (items.go);
	// headerDate is the Date: header, read when the body came first.
	gotFlags, gotDate bool
	headerDate        string
}

// fetchItems are what the copy and Verify fetch of each message: the
// body's literal gives its size.
var fetchItems = &imap.FetchOptions{UID: true, Flags: true, InternalDate: true,
	BodySection: []*imap.FetchItemBodySection{{Peek: true}}}

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

// Batches grow as a mailbox's copy goes on. Each commit rewrites in the
// WAL every index page it touches, and the blobs index's keys (SHA-256)
// are random, so a big mailbox copied in batches of one size rewrites most
// of that index again and again: with 8 MiB batches, a 1 GB copy about 120
// times. The first batchGrowEvery batches of a mailbox's copy keep the
// Options' bounds (a copy shows soon, and a small one is unchanged); each
// further batchGrowEvery full batches' worth of messages makes the bounds
// one step bigger, up to batchGrowMax times (800 messages, 32 MiB, 1 s by
// default: metadata only, the bodies are staged).
const (
	batchGrowEvery = 10
	batchGrowMax   = 4
)

// batchScale is how many times the Options' batch bounds (perBatch
// messages) a batch may take once sent messages of the mailbox were
// handed to the committer.
func batchScale(sent, perBatch int) int {
	return min(1+sent/(batchGrowEvery*max(perBatch, 1)), batchGrowMax)
}

type chunk struct {
	uids  []uint32
	asked map[uint32]bool // uids, read by imapclient's goroutine too
	cmd   *imapclient.FetchCommand
}

// fetchAndCommit streams the given UIDs (ascending) into the store.
func (e *Engine) fetchAndCommit(ctx context.Context, acct *store.Account, c *imapclient.Client, p *plan, state string, uids []uint32, sizes []int64, logins *loginGate) (retErr error) {
	// The committer runs beside the reader so the network does not wait for
	// the disk; the reader fills the next batch while one commits.
	// Batches hold only metadata (bodies are staged), so the reader may run
	// a few ahead of the committer.
	commits := make(chan *batch, 4)
	var cerr error
	var cmu sync.Mutex
	cdone := make(chan struct{})
	e.goSafe("commit "+acct.Address, func() {
		defer close(cdone)
		for b := range commits {
			cmu.Lock()
			failed := cerr != nil
			cmu.Unlock()
			if failed {
				continue
			}
			err := recovered(e.log, "commit "+acct.Address, func() error { return e.commit(ctx, acct, p, state, b) })
			if err != nil {
				cmu.Lock()
				cerr = err
				cmu.Unlock()
			}
		}
	})
	commitErr := func() error {
		cmu.Lock()
		defer cmu.Unlock()
		return cerr
	}
	defer func() {
		close(commits)
		<-cdone
		if err := commitErr(); err != nil && retErr == nil {
			retErr = err
		}
	}()

	// A FETCH left unread would block imapclient's reader for good (it
	// waits for each literal to be consumed): on the way out after a
	// failure, cut the connection, then drain what is open.
	var open *chunk
	defer func() {
		if retErr == nil {
			return
		}
		closed := make(chan struct{})
		go func() { c.Close(); close(closed) }()
		var re *readError
		if open != nil && !errors.As(retErr, &re) {
			open.cmd.Close()
		}
		<-closed
	}()
	// Cancelling ctx cuts the connection, so that a read in progress ends.
	stopCut := context.AfterFunc(ctx, func() { go c.Close() })
	defer stopCut()

	cur := &batch{}
	sent := 0 // messages handed to the committer
	flush := func(force bool) error {
		if len(cur.msgs) == 0 && (!force || cur.last == 0) {
			return nil
		}
		scale := batchScale(sent, e.opts.BatchMessages)
		if !force && len(cur.msgs) < scale*e.opts.BatchMessages && cur.bytes < int64(scale)*e.opts.BatchBytes &&
			time.Since(cur.first) < time.Duration(scale)*e.opts.BatchDelay {
			return nil
		}
		if err := commitErr(); err != nil {
			return err
		}
		select {
		case commits <- cur:
		case <-ctx.Done():
			return ctx.Err()
		}
		sent += len(cur.msgs)
		cur = &batch{last: cur.last}
		return nil
	}
	rd := newReader(e.st, e.log, e.opts.MaxMessageSize)
	defer rd.close()
	// What was read whole before the connection failed (a BYE or a cut in
	// the middle of a FETCH) is committed, so that the next attempt goes
	// on after it: an old server that drops every connection after a few
	// messages still sees the copy make progress.
	defer func() {
		if retErr != nil && ctx.Err() == nil && commitErr() == nil && !store.IsDiskFull(retErr) {
			flush(true)
		}
	}()
	add := func(m *pending) error {
		if len(cur.msgs) == 0 {
			cur.first = time.Now()
		}
		cur.msgs = append(cur.msgs, m)
		cur.bytes += m.bodySize
		return flush(false)
	}
	// skip reports a message not copied; a problem (the old server could
	// not serve it) is also recorded in the store, for the admin and for a
	// later run to try again.
	skip := func(uid uint32, why string, problem bool) error {
		msg := fmt.Sprintf("mailbox %q: message UID %d not copied: %s", p.old.name, uid, why)
		e.log.Warn("migrate: "+msg, "account", acct.Address)
		prob := messageProblem(p.old.name, uid, msg, problem)
		e.prog.update(acct.ID, acct.Address, EventError, msg, func(a *AccountProgress) { a.Skipped++; a.Problem = prob })
		if !problem {
			return nil
		}
		p.recorded(uid)
		return e.st.RecordCopyProblem(ctx, p.local.ID, p.old.name, uid, why)
	}

	next := 0
	issue := func() *chunk {
		ch := &chunk{}
		var set imap.UIDSet
		var bytes int64
		for next < len(uids) && len(ch.uids) < e.opts.ChunkMessages && (len(ch.uids) == 0 || bytes+sizes[next] <= e.opts.ChunkBytes) {
			if p.given(uids[next]) {
				break // handled by the caller
			}
			if p.isolated(uids[next]) {
				if len(ch.uids) == 0 { // alone in its FETCH
					ch.uids = append(ch.uids, uids[next])
					set.AddNum(imap.UID(uids[next]))
					next++
				}
				break
			}
			ch.uids = append(ch.uids, uids[next])
			set.AddNum(imap.UID(uids[next]))
			bytes += sizes[next]
			next++
		}
		ch.asked = make(map[uint32]bool, len(ch.uids))
		for _, u := range ch.uids {
			ch.asked[u] = true
		}
		ch.cmd = c.FetchReading(set, fetchItems, rd.reading(ch.asked))
		return ch
	}
	// One FETCH at a time (see Options.ChunkMessages).
	for next < len(uids) {
		// First logins being answered come before the next chunk
		// (logingate.go); ctx's end is this loop's too.
		if err := logins.wait(ctx); err != nil {
			return err
		}
		if u := uids[next]; p.given(u) {
			// Its response was refused by the parser when it was
			// fetched alone, twice: the old server cannot serve it.
			if err := skip(u, p.words(u), true); err != nil {
				return err
			}
			cur.last = max(cur.last, u)
			next++
			continue
		}
		ch := issue()
		open = ch
		// Messages are handled in the chunk's UID order (a message that
		// comes early waits in held), so that the committed last UID never
		// passes one not yet handled.
		seen := make(map[uint32]bool, len(ch.uids))
		held := map[uint32]*pending{}
		pos := 0
		admit := func(m *pending) error {
			held[m.uid] = m
			for pos < len(ch.uids) && held[ch.uids[pos]] != nil {
				u := ch.uids[pos]
				m := held[u]
				delete(held, u)
				if err := e.handle(m, add, skip); err != nil {
					return err
				}
				cur.last = max(cur.last, u)
				pos++
			}
			return nil
		}
		// A message is admitted once the response after it began (or the
		// command ended well): a response the parser refuses right after
		// a literal says that literal may not have been the message.
		// A message's items may come in several responses (items.go):
		// those before its body wait in parts, those after it are merged
		// while it is not handled yet.
		var prev *pending
		parts := map[uint32]*pending{}
		asked := ch.asked
		want := func(u uint32) bool { return asked[u] && !seen[u] }
		for msg := ch.cmd.Next(); msg != nil; msg = ch.cmd.Next() {
			m, err := rd.read(msg, want)
			if err != nil {
				return p.malformed(ch.uids, err)
			}
			if !asked[m.uid] {
				continue // not ours (a flag update, or what nobody asked for)
			}
			if !m.gotBody {
				switch {
				case prev != nil && prev.uid == m.uid:
					prev.mergeItems(m)
				case held[m.uid] != nil:
					held[m.uid].mergeItems(m)
				case !seen[m.uid]:
					if parts[m.uid] == nil {
						parts[m.uid] = &pending{uid: m.uid}
					}
					parts[m.uid].mergeItems(m)
				}
				continue
			}
			if seen[m.uid] {
				continue // sent twice: the first one counts
			}
			seen[m.uid] = true
			m.fillItems(parts[m.uid])
			if prev != nil {
				if err := admit(prev); err != nil {
					return err
				}
			}
			prev = m
		}
		ferr := ch.cmd.Close()
		open = nil
		var ierr *imap.Error
		if ferr != nil && !errors.As(ferr, &ierr) {
			// connection trouble: retried from the last commit; a
			// response the parser refused: the same, with the chunk's
			// messages fetched alone
			return p.malformed(ch.uids, ferr)
		}
		if prev != nil {
			if err := admit(prev); err != nil {
				return err
			}
		}
		// What is left the server refused (NO) or did not send: take the
		// rest of this chunk in order, fetching the missing ones one by one.
		for ; pos < len(ch.uids); pos++ {
			u := ch.uids[pos]
			var err error
			if m := held[u]; m != nil {
				delete(held, u)
				err = e.handle(m, add, skip)
			} else {
				err = e.fetchOne(c, u, rd, add, skip, ferr != nil)
			}
			if err != nil {
				return p.malformed([]uint32{u}, err)
			}
			cur.last = max(cur.last, u)
		}
		cur.last = max(cur.last, ch.uids[len(ch.uids)-1])
		// After the last chunk the flush is forced: it commits the rest.
		if err := flush(next >= len(uids)); err != nil {
			return err
		}
	}
	return nil
}

// skipFunc reports a message not copied (see fetchAndCommit).
type skipFunc func(uid uint32, why string, problem bool) error

// handle adds a read message to the batch, or reports why it cannot be.
func (e *Engine) handle(m *pending, add func(*pending) error, skip skipFunc) error {
	m.settleDate()
	switch {
	case m.tooBig:
		return skip(m.uid, fmt.Sprintf("larger than %d bytes", e.opts.MaxMessageSize), false)
	case m.nilBody:
		return skip(m.uid, "the old server sent no body (NIL)", true)
	}
	return add(m)
}

// fetchOne fetches one message singly after its chunk came back without
// it. A message the server still refuses (NO) is reported and skipped; one
// it does not send at all was expunged meanwhile (reported only if the
// chunk was refused).
func (e *Engine) fetchOne(c *imapclient.Client, u uint32, rd *reader, add func(*pending) error, skip skipFunc, refused bool) error {
	cmd := c.FetchReading(imap.UIDSetNum(imap.UID(u)), fetchItems, rd.reading(map[uint32]bool{u: true}))
	var got, part *pending
	sent := false // a response for u came, with or without its body
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		m, err := rd.read(msg, func(uid uint32) bool { return uid == u && got == nil })
		if err != nil {
			return err // the caller closes the client
		}
		if m.uid != u {
			continue
		}
		sent = true
		switch {
		case m.gotBody && got == nil:
			got = m
			got.fillItems(part)
		case got != nil:
			got.mergeItems(m)
		default:
			if part == nil {
				part = &pending{uid: u}
			}
			part.mergeItems(m)
		}
	}
	err := cmd.Close()
	var ierr *imap.Error
	if err != nil && !errors.As(err, &ierr) {
		return err
	}
	switch {
	case got != nil:
		return e.handle(got, add, skip)
	case err != nil:
		// The server's own words; the status and code are protocol.
		return skip(u, refusalWords(ierr), true)
	case sent:
		// the message is there, but its FETCH response lacks the body
		return skip(u, "the old server sent it without its body", true)
	case refused:
		return skip(u, "the old server did not send it", false)
	}
	return nil
}
