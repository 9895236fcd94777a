package store

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// batchSizes records the size of each batch s runs (writeBatcher.ran).
func batchSizes(s *Store) func() []int {
	var mu sync.Mutex
	var sizes []int
	s.batch.ran = func(n int) {
		mu.Lock()
		sizes = append(sizes, n)
		mu.Unlock()
	}
	return func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(sizes)
	}
}

// waitQueued waits until n requests are queued for a batch, and, when
// led, one of them holds the token (it waits for the writer).
func waitQueued(t *testing.T, s *Store, n int, led bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.batch.mu.Lock()
		q := len(s.batch.queue)
		s.batch.mu.Unlock()
		if q == n && (!led || len(s.batch.token) == 0) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", q, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// holdWriter takes the writer connection until the returned func is
// called, so that the writes started meanwhile queue for one batch.
func holdWriter(t *testing.T, s *Store) func() {
	t.Helper()
	c, err := s.w.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return sync.OnceFunc(func() { c.Close() })
}

// flagAsync adds \Flagged to message uid in a goroutine of its own; its
// answer comes on the channel returned.
func flagAsync(ctx context.Context, s *Store, mailboxID int64, uid uint32) chan error {
	done := make(chan error, 1)
	go func() {
		_, err := s.StoreFlags(ctx, mailboxID, []uint32{uid}, FlagsAdd, []string{`\Flagged`})
		done <- err
	}()
	return done
}

// mustAnswer fails t unless done answers nil within 10 s; fail says what
// did not happen.
func mustAnswer(t *testing.T, done <-chan error, fail string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal(fail)
	}
}

// heldWriterStore is a SQLite store with n messages in its INBOX, its
// batches' sizes recorded, and its writer held until release is called
// (at the latest when t ends), so that the writes started meanwhile queue
// for one batch.
func heldWriterStore(t *testing.T, n int) (s *Store, mb *Mailbox, uids []uint32, sizes func() []int, release func()) {
	t.Helper()
	sqliteOnly(t)
	s, mb, uids = inboxStore(t, nil, n)
	sizes = batchSizes(s)
	release = holdWriter(t, s)
	t.Cleanup(release)
	return s, mb, uids, sizes, release
}

func flagsOf(t *testing.T, s *Store, mailboxID int64, uid uint32) string {
	t.Helper()
	m, err := s.Message(context.Background(), mailboxID, uid)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(m.Flags, " ")
}

// failingWrite is a write that sets the flags of message uid to "Bad" and
// then fails with boom (end ""), ends its transaction and fails ("fails"),
// or ends its transaction and returns nil ("ok").
func failingWrite(mailboxID int64, uid uint32, end string, boom error) func(tx wtx, ch *changes) error {
	return func(tx wtx, ch *changes) error {
		ctx := context.Background()
		if _, err := tx.ExecContext(ctx, `UPDATE messages SET flags = 'Bad' WHERE mailbox_id = ? AND uid = ?`, mailboxID, uid); err != nil {
			return err
		}
		switch end {
		case "fails":
			tx.ExecContext(ctx, `ROLLBACK`)
		case "ok":
			tx.ExecContext(ctx, `ROLLBACK`)
			return nil
		}
		return boom
	}
}

// TestGroupCommitFailureIsItsOwn: writes queued at once run in one
// transaction (one batch), and the one that fails is rolled back alone:
// its change is not kept, the others' are, and each gets its own answer.
// When the failing write ends the whole transaction (SQLite rolls back on
// some errors; here fn runs ROLLBACK), the others are run again alone and
// still commit, and a write whose fn ended the transaction is not
// answered OK for changes that were rolled back.
func TestGroupCommitFailureIsItsOwn(t *testing.T) {
	sqliteOnly(t)
	for _, end := range []string{"", "fails", "ok"} {
		t.Run("transaction ended: "+end, func(t *testing.T) {
			s, mb, uids := inboxStore(t, nil, 3)
			ctx := context.Background()
			sizes := batchSizes(s)
			release := holdWriter(t, s)
			defer release()
			boom := errors.New("boom")
			errs := make([]error, 3)
			var wg sync.WaitGroup
			for i := range 3 {
				wg.Go(func() {
					if i != 1 {
						_, errs[i] = s.StoreFlags(ctx, mb.ID, uids[i:i+1], FlagsAdd, []string{`\Flagged`})
						return
					}
					errs[i] = s.writeFlags(ctx, failingWrite(mb.ID, uids[1], end, boom))
				})
			}
			waitQueued(t, s, 3, true)
			release()
			wg.Wait()
			if got := sizes(); len(got) == 0 || got[0] != 3 {
				t.Errorf("batches %v, want the three writes in the first", got)
			}
			for _, i := range []int{0, 2} {
				if errs[i] != nil {
					t.Errorf("write %d beside a failing one: %v", i, errs[i])
				}
				if got := flagsOf(t, s, mb.ID, uids[i]); got != `\Flagged` {
					t.Errorf("write %d beside a failing one: flags %q, want \\Flagged", i, got)
				}
			}
			if end == "ok" {
				if errs[1] == nil {
					t.Error("a write whose transaction was rolled back was answered OK")
				}
			} else if !errors.Is(errs[1], boom) {
				t.Errorf("the failing write: %v, want its own error", errs[1])
			}
			if got := flagsOf(t, s, mb.ID, uids[1]); got != "" {
				t.Errorf("the failing write's change was kept: flags %q", got)
			}
		})
	}
}

// TestGroupCommitCancelQueued: a write whose context ends while it is
// queued returns at once with the context's error and never runs, whether
// it was waiting for its turn or leading the next batch (waiting for the
// writer, which another write holds); the write queued beside it still
// commits.
func TestGroupCommitCancelQueued(t *testing.T) {
	sqliteOnly(t)
	s, mb, uids := inboxStore(t, nil, 3)
	ctx := context.Background()
	release := holdWriter(t, s)
	defer release()
	store := func(ctx context.Context, uid uint32) chan error { return flagAsync(ctx, s, mb.ID, uid) }
	leadCtx, cancelLead := context.WithCancel(ctx)
	lead := store(leadCtx, uids[0])
	waitQueued(t, s, 1, true)
	other := store(ctx, uids[1])
	waitCtx, cancelWait := context.WithCancel(ctx)
	wait := store(waitCtx, uids[2])
	waitQueued(t, s, 3, true)
	for _, c := range []struct {
		name   string
		cancel func()
		done   chan error
	}{{"waiting for its turn", cancelWait, wait}, {"leading the next batch", cancelLead, lead}} {
		c.cancel()
		select {
		case err := <-c.done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("a write %s, cancelled: %v, want context.Canceled", c.name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("a write %s did not return when its context ended", c.name)
		}
	}
	release()
	mustAnswer(t, other, "the write queued beside cancelled ones never ran")
	for i, want := range []string{"", `\Flagged`, ""} {
		if got := flagsOf(t, s, mb.ID, uids[i]); got != want {
			t.Errorf("message %d: flags %q, want %q", i, got, want)
		}
	}
}

// TestGroupCommitPastMark: a batch that would take a mailbox past its
// durable marks (marks.go) is not committed with synchronous=NORMAL: its
// writes are run again alone, the first that crosses the mark as a FULL
// commit that raises it, the others NORMAL below the new mark. Every
// write is kept once, and no mailbox is left past its marks.
func TestGroupCommitPastMark(t *testing.T) {
	sqliteOnly(t)
	s, mb, _ := inboxStore(t, nil, 1)
	ctx := context.Background()
	if _, err := s.w.Exec(`UPDATE mailboxes SET uid_next_mark = uid_next WHERE id = ?`, mb.ID); err != nil {
		t.Fatal(err)
	}
	var full sync.Mutex
	fulls := 0
	s.wal.fullCommitted = func() { full.Lock(); fulls++; full.Unlock() }
	sizes := batchSizes(s)
	release := holdWriter(t, s)
	defer release()
	uids := make([]uint32, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			m, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: []byte("Subject: mark\r\n\r\nx\r\n")})
			if errs[i] = err; err == nil {
				uids[i] = m.UID
			}
		})
	}
	waitQueued(t, s, 3, true)
	release()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := sizes(); len(got) == 0 || got[0] != 3 {
		t.Errorf("batches %v, want the three appends in the first", got)
	}
	slices.Sort(uids)
	if uids[0] == uids[1] || uids[1] == uids[2] {
		t.Errorf("UIDs %v given twice", uids)
	}
	var past int
	if err := s.w.QueryRow(`SELECT count(*) FROM mailboxes WHERE ` + pastMarkWhere).Scan(&past); err != nil {
		t.Fatal(err)
	}
	if past != 0 {
		t.Errorf("%d mailboxes left past their marks", past)
	}
	var n int
	if err := s.w.QueryRow(`SELECT count(*) FROM messages WHERE mailbox_id = ?`, mb.ID).Scan(&n); err != nil || n != 4 {
		t.Errorf("%d messages, %v; want 4", n, err)
	}
	full.Lock()
	defer full.Unlock()
	if fulls != 1 {
		t.Errorf("%d FULL commits, want 1 (the append that crossed the mark)", fulls)
	}
}

// doneCounter is a context that can end (its Done is not nil) and counts
// how often its Done channel was asked for inside a transaction on the
// writer (commitNormal, which a batch runs in): database/sql and the
// SQLite driver ask once or more for each statement run with it, and then
// watch it from goroutines of their own (writeCtx).
type doneCounter struct {
	context.Context
	mu    sync.Mutex
	calls int
}

func (c *doneCounter) Done() <-chan struct{} {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, ".commitNormal") {
			c.mu.Lock()
			c.calls++
			c.mu.Unlock()
			break
		}
		if !more {
			break
		}
	}
	return c.Context.Done()
}

func (c *doneCounter) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// TestWritesDoNotWatchContext: the statements of a short write on SQLite
// (a STORE, an APPEND, an EXPUNGE, a COPY, a MOVE, a \Recent claim, in a
// batch of other sessions' writes; a LOGIN's counts) run on the writer
// without watching the caller's context (writeCtx), and so do the
// transaction's own (BEGIN, its marks): each statement that watched it
// made the goroutine holding the writer hand the statement to another
// goroutine and wait for it. What the write
// does before (its queueing: a request whose ctx ended is not run,
// TestGroupCommitCancelQueued) still watches it.
func TestWritesDoNotWatchContext(t *testing.T) {
	sqliteOnly(t)
	s, mb, uids := inboxStore(t, nil, 4)
	bg := context.Background()
	other, err := s.CreateMailbox(bg, mb.AccountID, "Other", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		name string
		do   func(ctx context.Context) error
	}{
		{"STORE", func(ctx context.Context) error {
			_, err := s.StoreFlags(ctx, mb.ID, uids, FlagsAdd, []string{`\Deleted`, "$Spy"})
			return err
		}},
		{"APPEND", func(ctx context.Context) error {
			_, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: []byte("Subject: spy\r\n\r\nx\r\n")})
			return err
		}},
		{"COPY", func(ctx context.Context) error {
			_, err := s.Copy(ctx, mb.ID, uids[:2], other.ID)
			return err
		}},
		{"MOVE", func(ctx context.Context) error {
			_, err := s.Move(ctx, mb.ID, uids[2:3], other.ID)
			return err
		}},
		{"EXPUNGE", func(ctx context.Context) error {
			gone, err := s.Expunge(ctx, mb.ID, nil)
			if err == nil && len(gone) == 0 {
				err = errors.New("expunged nothing")
			}
			return err
		}},
		{"claim", func(ctx context.Context) error {
			_, err := s.ClaimRecent(ctx, mb.ID, 1<<31)
			return err
		}},
		{"LOGIN's counts", func(ctx context.Context) error {
			keys := []LoginFailureKey{{"src 192.0.2.9/32", 10}}
			check, _, _, err := s.ReserveLoginCheck(ctx, keys, time.Hour, time.Minute)
			if err == nil {
				err = s.EndLoginCheck(ctx, check, keys, nil, time.Hour)
			}
			if err == nil {
				err = s.NoteLoginFailure(ctx, keys, time.Hour)
			}
			if err == nil {
				err = s.ClearLoginFailures(ctx, keys[0].Key)
			}
			return err
		}},
	} {
		ctx, cancel := context.WithCancel(bg)
		spy := &doneCounter{Context: ctx}
		if err := w.do(spy); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		cancel()
		if n := spy.n(); n > 0 {
			t.Errorf("%s: its context's Done asked for %d times in its transaction on the writer, want 0: its statements watch it", w.name, n)
		}
	}
}

// TestLoginCountsJoinBatch: a LOGIN's writes of its counts (writeCounters)
// are short writes grouped with the others queued at once (one commit
// for a STORE and a login's count), where each took the writer alone,
// with a BEGIN and COMMIT of its own, twice a LOGIN.
func TestLoginCountsJoinBatch(t *testing.T) {
	s, mb, uids, sizes, release := heldWriterStore(t, 1)
	ctx := context.Background()
	errs := make(chan error, 2)
	go func() {
		_, err := s.StoreFlags(ctx, mb.ID, uids, FlagsAdd, []string{"$A"})
		errs <- err
	}()
	waitQueued(t, s, 1, true)
	go func() {
		errs <- s.NoteLoginFailure(ctx, []LoginFailureKey{{"src 192.0.2.9/32", 10}}, time.Hour)
	}()
	waitQueued(t, s, 2, true)
	release()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := sizes(); !slices.Equal(got, []int{2}) {
		t.Fatalf("batches %v, want one of 2 (the STORE and the login's count)", got)
	}
	if got := flagsOf(t, s, mb.ID, uids[0]); got != "$A" {
		t.Fatalf("flags %q after the batch", got)
	}
}

// TestFlagsCommitAheadOfMail: a STORE queued in one batch with a write
// that waits for the fsync of the log (an APPEND, COPY, MOVE or EXPUNGE)
// commits ahead of it, in a transaction of its own, and is answered
// before that write's statements run: a STORE no longer waits for an
// APPEND's statements and commit (groupcommit.go). Here the other write's
// fn is held until the STORE was answered; before, it ran first in the
// batch's one transaction and the STORE waited for it. Both are still one
// batch, and both commit.
func TestFlagsCommitAheadOfMail(t *testing.T) {
	s, mb, uids, sizes, release := heldWriterStore(t, 2)
	ctx := context.Background()
	unblock := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(unblock) }) }
	defer free()
	mailRan := make(chan struct{}, 1)
	mailDone := make(chan error, 1)
	go func() {
		mailDone <- s.writeNormal(ctx, func(tx wtx, ch *changes) error {
			mailRan <- struct{}{}
			<-unblock
			_, err := tx.ExecContext(context.Background(), `UPDATE messages SET flags = 'Mail' WHERE mailbox_id = ? AND uid = ?`, mb.ID, uids[1])
			return err
		}, nil, syncWait)
	}()
	waitQueued(t, s, 1, true)
	storeDone := flagAsync(ctx, s, mb.ID, uids[0])
	waitQueued(t, s, 2, true)
	release()
	mustAnswer(t, storeDone, "a STORE queued beside a write that waits for the fsync was not answered before that write's statements ran")
	// Committed: a reader sees it while the other write still runs.
	if got := flagsOf(t, s, mb.ID, uids[0]); got != `\Flagged` {
		t.Errorf("the STORE answered first: flags %q, want \\Flagged", got)
	}
	select {
	case <-mailRan:
	case <-time.After(10 * time.Second):
		t.Fatal("the write behind the STORE never ran")
	}
	free()
	if err := <-mailDone; err != nil {
		t.Fatal(err)
	}
	if got := flagsOf(t, s, mb.ID, uids[1]); got != "Mail" {
		t.Errorf("the write behind the STORE: flags %q, want Mail", got)
	}
	if got := sizes(); !slices.Equal(got, []int{2}) {
		t.Errorf("batches %v, want one of 2", got)
	}
}
