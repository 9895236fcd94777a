package migrate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

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

// Batches grow as a mailbox's copy goes on. Each commit rewrites in the
// WAL every index page it touches, and the blobs index's keys (hashes)
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
