package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
)

// Group commit of short writes on SQLite's one writer connection.
//
// The short writes of IMAP sessions (a STORE, an APPEND, an EXPUNGE, a
// \Recent claim: writeNormal) each took the writer in turn, with its own
// BEGIN and COMMIT: under ten sessions a STORE waited about 3 ms for the
// writer (session 10's block profile), behind the others' writes, each
// holder possibly waiting for a core while it held it, and every hand-over
// waking the next holder. Now the writes queued at once run in one
// transaction, as PostgreSQL's and InnoDB's group commit do: whoever finds
// the writer free (holds writeBatcher.token) takes every request queued,
// runs each in a savepoint of its own on the writer connection, commits
// once, and answers each; requests made meanwhile queue for the next
// batch, run by one of their own goroutines.
//
// What each request keeps:
//   - Its failure is its own: a request whose fn fails is rolled back to
//     its savepoint and answered with its error; the others commit. When
//     the failure ended the whole transaction (SQLite rolls back on some
//     errors, an interrupted statement, a full disk), nothing committed
//     and the other requests are run again alone (errRunAlone), as they
//     were before group commit.
//   - Its durability: the batch commits with synchronous=NORMAL, and each
//     request then waits for walSync, asks it for a later fsync, or
//     neither, as its mode says (writeNormal): one fsync of the log after
//     the commit covers every request of the batch.
//   - Its marks (marks.go): a batch that would leave a mailbox past its
//     durable marks is rolled back whole and done again as one FULL
//     commit, which raises them (a batch of one by its caller, as before:
//     errPastMark); run again alone, each request of a larger batch could
//     have found the marks not yet raised and paid a FULL commit of its
//     own.
//   - Its context: a request whose ctx ends while it is queued is taken
//     out and answered with ctx's error, its fn never run; once taken into
//     a batch it is answered when the batch ends (its fn is skipped if ctx
//     ended before its turn in the batch).
//   - Its notifications: each request's changes are told by its own caller
//     once committed (and, for mail, durable), as before.
//   - Its panics: a fn that panics is rolled back to its savepoint like
//     one that fails, and the panic is raised again in its own caller
//     (writePanic), so that only its session ends, as before; the others
//     commit. A panic in the batch's own code ends the batch (nothing
//     committed is answered OK) and gives the token back: the writes
//     after it still run.
//
// The fns run on the goroutine leading the batch, not their caller's,
// while their caller waits. That changes nothing a fn may rely on: fns
// ran on the writer connection alone before, and a fn that needed a lock
// its caller or another writer holds would have deadlocked then too.
// PostgreSQL keeps one transaction per write (its own commit_delay
// groups the flushes).
//
// The writes that wait for no fsync (a STORE, a \Recent claim, a login's
// counts: first) commit ahead of the others of their batch (APPEND, COPY,
// MOVE, EXPUNGE, which wait for the fsync of the log after their commit),
// in a transaction of their own, and are answered at once: a STORE queued
// beside an APPEND no longer waits for the APPEND's statements and the
// commit of its pages, then for the writer to be handed back (an
// execution trace of ten IMAP sessions, session 16: a third of a
// closed-loop STORE's wait for the writer). The requests of one batch were
// queued by different callers at once (a caller waits for its answer), so
// no caller's order changes; the log keeps the commits in order, so the
// fsync that makes a later APPEND durable covers the flag change too, as
// before.

// writeBatcher queues writeNormal's requests (SQLite).
type writeBatcher struct {
	// token is held by the goroutine running a batch: a channel of one so
	// that a waiting request can wait for it or for its answer at once.
	token chan struct{}
	mu    sync.Mutex
	queue []*writeReq
	// ran, when set (tests), is called with each batch's size before it
	// runs.
	ran func(n int)
}

func newWriteBatcher() *writeBatcher {
	b := &writeBatcher{token: make(chan struct{}, 1)}
	b.token <- struct{}{}
	return b
}

// writeReq is one write queued for a batch, and its answer.
type writeReq struct {
	ctx context.Context
	fn  func(tx wtx, ch *changes) error
	// first: a write that waits for no fsync, committed ahead of the
	// others of its batch (see the top of this file).
	first bool
	done  chan struct{} // closed once answered
	// The answer: the changes when committed, whether the batch changed a
	// row, or the error.
	ch    *changes
	wrote bool
	err   error
	// panicked is fn's panic, raised again in the caller (batchWrite).
	panicked *writePanic
}

// writePanic is the panic of a request's fn, which ran on the goroutine
// leading its batch: batchWrite raises it again in the request's caller,
// with the stack where fn panicked.
type writePanic struct {
	value any
	stack []byte
}

func (p *writePanic) Error() string {
	return fmt.Sprintf("%v\n\n(in a grouped write, run on the goroutine leading its batch:)\n%s", p.value, p.stack)
}

// errBatchPanicked answers the requests of a batch whose own code
// panicked (not a request's fn): a bug of ours, and its outcome unknown.
var errBatchPanicked = errors.New("store: the grouped write's batch failed (a panic in the store); whether it was committed is not known")

// errRunAlone answers a request its batch could not keep (the
// transaction ended under another request, or it crossed a durable mark
// in a batch of several): its caller runs it again in a transaction of
// its own (commitNormal).
var errRunAlone = errors.New("store: run the write again alone")

// batchWrite queues fn and returns once a batch answered it: the changes
// when committed, whether the batch wrote anything, or the error (ctx's
// when it ended while fn was still queued). first says that its caller
// waits for no fsync after the commit: it commits ahead of the writes of
// its batch that do.
func (s *Store) batchWrite(ctx context.Context, fn func(tx wtx, ch *changes) error, first bool) (*changes, bool, error) {
	b := s.batch
	r := &writeReq{ctx: ctx, fn: fn, first: first, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, r)
	b.mu.Unlock()
	// fn's panic is its caller's (writePanic).
	defer func() {
		if r.panicked != nil {
			panic(r.panicked)
		}
	}()
	for {
		select {
		case <-r.done:
			return r.ch, r.wrote, r.err
		case <-b.token:
			select {
			case <-r.done: // a batch that just ended took it
				b.token <- struct{}{}
				return r.ch, r.wrote, r.err
			default:
			}
			// The writer first (another write may hold it: a delivery, a
			// migration's batch): requests queued meanwhile join this
			// batch.
			conn, err := s.w.Conn(ctx)
			if err != nil {
				// Only the token's holder takes the queue: r is in it.
				b.withdraw(r)
				b.token <- struct{}{} // another waiting request leads
				return nil, false, fmt.Errorf("store: begin: %w", err)
			}
			func() {
				// Given back even when the batch panics (runBatch).
				defer func() { b.token <- struct{}{} }()
				s.runBatch(conn)
			}()
			// The batch took every request queued, this one included.
			<-r.done
			return r.ch, r.wrote, r.err
		case <-ctx.Done():
			if b.withdraw(r) {
				return nil, false, fmt.Errorf("store: begin: %w", ctx.Err())
			}
			// A batch has it: its answer comes when the batch ends.
			<-r.done
			return r.ch, r.wrote, r.err
		}
	}
}

// withdraw takes r out of the queue, and reports whether it was there (no
// batch took it).
func (b *writeBatcher) withdraw(r *writeReq) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := slices.Index(b.queue, r)
	if i >= 0 {
		b.queue = slices.Delete(b.queue, i, i+1)
	}
	return i >= 0
}

// runBatch takes every queued request and runs them on conn, the writer
// connection (see the top of this file), answering each: those that wait
// for no fsync in one transaction, answered once it committed, and then
// the others in one more, on the writer taken again. The caller holds the
// token.
func (s *Store) runBatch(conn *sql.Conn) {
	b := s.batch
	b.mu.Lock()
	reqs := b.queue
	b.queue = nil
	b.mu.Unlock()
	if b.ran != nil {
		b.ran(len(reqs))
	}
	var first, rest []*writeReq
	for _, r := range reqs {
		if r.first {
			first = append(first, r)
		} else {
			rest = append(rest, r)
		}
	}
	if len(first) == 0 || len(rest) == 0 {
		s.commitAnswer(conn, reqs)
		return
	}
	answered := false
	defer func() {
		if !answered {
			// The first commit's code panicked: the rest were not run.
			for _, r := range rest {
				r.ch, r.err = nil, errBatchPanicked
				close(r.done)
			}
		}
	}()
	s.commitAnswer(conn, first)
	answered = true
	// commitNormal gave the writer back: take it again (a delivery or a
	// checkpoint may have it meanwhile, as between two batches).
	conn, err := s.w.Conn(context.Background())
	if err != nil {
		for _, r := range rest {
			r.ch, r.err = nil, fmt.Errorf("store: begin: %w", err)
			close(r.done)
		}
		return
	}
	s.commitAnswer(conn, rest)
}

// commitAnswer runs reqs in one transaction on conn (commitBatch), which
// it gives back, and answers each.
func (s *Store) commitAnswer(conn *sql.Conn, reqs []*writeReq) {
	err := errBatchPanicked
	ended := false
	defer func() {
		for _, r := range reqs {
			if !ended {
				// The batch's own code panicked (runRequests answers a
				// fn's panic): its transaction was rolled back.
				r.ch = nil
			}
			if r.ch == nil && r.err == nil {
				// Not committed, and no answer of its own: the batch's.
				r.err = err
			}
			close(r.done)
		}
	}()
	err = s.commitBatch(conn, reqs)
	ended = true
}

// errNothingToCommit: every request of a batch failed or was skipped.
var errNothingToCommit = errors.New("store: nothing to commit")

// commitBatch runs reqs in one transaction on conn with
// synchronous=NORMAL, each in a savepoint of its own, and commits
// (commitNormal). It answers each request it can: its changes and
// whether the transaction changed a row when it committed, its own
// error, or errRunAlone; those left unanswered get the error it returns.
// A batch that would take a mailbox past its durable marks is run again
// as one FULL commit, which raises them.
func (s *Store) commitBatch(conn *sql.Conn, reqs []*writeReq) error {
	// The batch's statements run without a context to watch (see
	// readCtx): with one, each would start goroutines while the writer is
	// held; a request's ctx is checked before its turn.
	bg := context.Background()
	var ran []*writeReq
	_, wrote, err := s.commitNormal(bg, conn, func(tx wtx, _ *changes) error {
		var rerr error
		ran, rerr = s.runRequests(tx, reqs)
		return rerr
	})
	if errors.Is(err, errPastMark) {
		for _, r := range ran {
			r.ch = nil
		}
		if len(reqs) == 1 {
			reqs[0].err = errPastMark // its caller does it FULL
			return err
		}
		// Durable before anyone sees it, as writeNormal does alone.
		t, berr := s.Begin(bg)
		if berr != nil {
			return berr
		}
		defer t.Rollback()
		if ran, err = s.runRequests(t.tx, ran); err == nil {
			err = t.Commit()
		}
		wrote = true
	}
	switch {
	case err == nil:
		for _, r := range ran {
			r.wrote = wrote
		}
		return nil
	case errors.Is(err, errNothingToCommit), errors.Is(err, errRunAlone):
		return err // every request has its answer
	}
	for _, r := range ran {
		r.ch, r.err = nil, err
	}
	return err
}

// runRequests runs each request of reqs in tx, each in a savepoint of its
// own, and returns those whose changes are in tx (their changes set;
// rolled back with tx unless it commits). A request that fails gets its
// error and its savepoint rolled back. When tx ended under a request (a
// statement SQLite interrupted, a full disk, a fn that ended it), nothing
// in tx can commit: every request not answered with its own error is
// answered errRunAlone, and so is the error.
func (s *Store) runRequests(tx wtx, reqs []*writeReq) (ran []*writeReq, err error) {
	bg := context.Background()
	lost := func(i int) ([]*writeReq, error) {
		for _, o := range append(ran, reqs[i:]...) {
			o.ch, o.err = nil, errRunAlone
		}
		return nil, errRunAlone
	}
	// A lone request needs no savepoint: its failure rolls the whole
	// transaction back (errNothingToCommit), which is all its savepoint
	// would have undone; two statements fewer on the writer for most
	// batches.
	alone := len(reqs) == 1
	for i, r := range reqs {
		r.ch, r.err = nil, nil
		if err := r.ctx.Err(); err != nil {
			r.err = fmt.Errorf("store: begin: %w", err)
			continue
		}
		if !alone {
			if _, err := tx.ExecContext(bg, `SAVEPOINT request`); err != nil {
				return lost(i)
			}
		}
		ch := &changes{}
		err := r.run(tx, ch)
		if err == nil {
			err = s.checkObjects(bg, tx, ch.objects)
		}
		if err == nil {
			err = s.packs.syncAll(ch.packs)
		}
		if err == nil {
			if !alone {
				if _, err := tx.ExecContext(bg, `RELEASE request`); err != nil {
					return lost(i) // fn ended the transaction itself
				}
			}
			r.ch = ch
			ran = append(ran, r)
			continue
		}
		if alone {
			// Rolled back with the transaction (commitNormal, or the FULL
			// retry's Rollback).
			r.err = err
			break
		}
		if _, rerr := tx.ExecContext(bg, `ROLLBACK TO request; RELEASE request`); rerr != nil {
			// SQLite rolled the whole transaction back.
			r.err = err
			return lost(i + 1)
		}
		r.err = err
	}
	if len(ran) == 0 {
		return nil, errNothingToCommit
	}
	return ran, nil
}

// run runs r's fn in tx; a panic of fn is r's answer (writePanic), its
// error here, so that its savepoint is rolled back as for a failure.
func (r *writeReq) run(tx wtx, ch *changes) (err error) {
	defer func() {
		if v := recover(); v != nil {
			r.panicked = &writePanic{value: v, stack: debug.Stack()}
			err = fmt.Errorf("store: the write panicked: %v", v)
		}
	}()
	return r.fn(tx, ch)
}
