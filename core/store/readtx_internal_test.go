package store

import (
	"context"
	"errors"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"
)

// goroutinesCreated is how many goroutines this process has started.
func goroutinesCreated() uint64 {
	m := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(m)
	return m[0].Value.Uint64()
}

// fewestGoroutines is the goroutines started per run of f, the fewest of
// up to ten tries of runs runs (the store's own goroutines, and the
// runtime's, only add).
func fewestGoroutines(runs int, f func()) float64 {
	best := -1.0
	for try := 0; try < 10 && best != 0; try++ {
		before := goroutinesCreated()
		for range runs {
			f()
		}
		n := float64(goroutinesCreated()-before) / float64(runs)
		if best < 0 || n < best {
			best = n
		}
		time.Sleep(10 * time.Millisecond)
	}
	return best
}

// TestReadStartsNoGoroutine: the reads of every IMAP poll (Delta), FETCH
// (EachMessageLocated) and SELECT (Mailbox, MailboxByID, RecentFrom), and
// a Snapshot with a context that cannot end, start no goroutine, whatever
// the caller's context for all but Snapshot. Before readTx, database/sql's
// Tx started one per read transaction and one per statement of it: 4 per
// Delta, 3 per Snapshot; and a one-row read with a context that can end
// 1 (database/sql's watcher of its rows).
func TestReadStartsNoGoroutine(t *testing.T) {
	sqliteOnly(t)
	noCheckpoints(t)
	s, mb, uids := inboxStore(t, nil, 12)
	bg := context.Background()
	// A change after modseq 1, so that Delta runs all its statements.
	if _, err := s.StoreFlags(bg, mb.ID, uids[3:4], FlagsAdd, []string{"$K"}); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(bg)
	defer cancel()
	each := func(m *Message) error { return nil }
	for _, ctx := range []context.Context{bg, cctx} {
		reads := map[string]func() error{
			"Delta": func() error {
				d, err := s.Delta(ctx, mb.ID, 1)
				if err == nil && len(d.Changed) == 0 {
					t.Fatal("Delta since modseq 1 found no change")
				}
				return err
			},
			"EachMessageLocated": func() error {
				return s.EachMessageLocated(ctx, mb.ID, uids[0], uids[9], true, each)
			},
			// SELECT's reads of one row each.
			"Mailbox": func() error {
				_, err := s.Mailbox(ctx, mb.AccountID, "INBOX")
				return err
			},
			"MailboxByID": func() error {
				_, err := s.MailboxByID(ctx, mb.ID)
				return err
			},
			"RecentFrom": func() error {
				_, err := s.RecentFrom(ctx, mb.ID)
				return err
			},
		}
		if ctx == bg {
			reads["Snapshot"] = func() error {
				_, err := s.Snapshot(ctx, mb.ID, 1)
				return err
			}
		}
		for name, read := range reads {
			n := fewestGoroutines(50, func() {
				if err := read(); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			})
			if n != 0 {
				t.Errorf("%s (context can end: %v): %.2f goroutines started per read, want 0", name, ctx != bg, n)
			}
		}
		if ctx == cctx {
			ended, stop := context.WithCancel(bg)
			stop()
			for name, read := range reads {
				ctx = ended // the reads' closures read ctx
				if err := read(); !errors.Is(err, context.Canceled) {
					t.Errorf("%s with an ended context: %v, want context.Canceled", name, err)
				}
			}
		}
	}
}

// TestReadWaitsForReaderUntilCtxEnds: a read that waits for a reader
// connection (all of them busy) ends when its context does (its client
// went away), instead of waiting for one to free: a poll's Delta, SELECT's
// reads of one row (Mailbox, MailboxByID, RecentFrom) and FETCH's and
// SEARCH's reads of a range of messages (EachMessageLocated, EachMessage).
// The last five ran with readCtx's context, which never ends, and waited
// the readers' 5 s before readRow and readRows (session 17).
func TestReadWaitsForReaderUntilCtxEnds(t *testing.T) {
	sqliteOnly(t)
	s, mb, uids := inboxStore(t, &Options{ChangePoll: -1, Readers: 2}, 3)
	bg := context.Background()
	each := func(*Message) error { return nil }
	reads := map[string]func(context.Context) error{
		"Delta": func(ctx context.Context) error {
			_, err := s.Delta(ctx, mb.ID, 1)
			return err
		},
		"Mailbox": func(ctx context.Context) error {
			_, err := s.Mailbox(ctx, mb.AccountID, "INBOX")
			return err
		},
		"MailboxByID": func(ctx context.Context) error {
			_, err := s.MailboxByID(ctx, mb.ID)
			return err
		},
		"RecentFrom": func(ctx context.Context) error {
			_, err := s.RecentFrom(ctx, mb.ID)
			return err
		},
		"EachMessage": func(ctx context.Context) error {
			return s.EachMessage(ctx, mb.ID, uids[0], uids[2], true, each)
		},
		"EachMessageLocated": func(ctx context.Context) error {
			return s.EachMessageLocated(ctx, mb.ID, uids[0], uids[2], true, each)
		},
	}
	for name, read := range reads {
		if err := read(bg); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var held []*readTx
	for range 2 {
		rt, err := s.beginRead(bg)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, rt)
	}
	release := time.AfterFunc(5*time.Second, func() {
		for _, rt := range held {
			rt.end()
		}
	})
	defer func() {
		if release.Stop() {
			for _, rt := range held {
				rt.end()
			}
		}
	}()
	for name, read := range reads {
		ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
		start := time.Now()
		err := read(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s with every reader busy and a context that ends after 100 ms: %v after %v; want context.DeadlineExceeded before the readers free (5 s)", name, err, time.Since(start).Round(time.Millisecond))
		}
	}
}

// TestReadTxNeverPooledInTransaction: a reader connection goes back to
// the pool outside any transaction, after a read that panicked, after one
// whose context ended during it, and after one whose end failed to end
// SQLite's transaction (the connection is then closed, not pooled: its
// snapshot would show the next read an old state and hold the log).
func TestReadTxNeverPooledInTransaction(t *testing.T) {
	sqliteOnly(t)
	const readers = 3
	s, mb, _ := inboxStore(t, &Options{ChangePoll: -1, Readers: readers}, 3)
	bg := context.Background()
	// allOutside holds every reader connection at once and checks that
	// none is inside a transaction.
	allOutside := func(when string) {
		t.Helper()
		var cs []*readTx
		defer func() {
			for _, rt := range cs {
				rt.c.Close()
			}
		}()
		for range readers {
			c, err := s.r.Conn(bg)
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, &readTx{c: c})
			if err := c.Raw(func(dc any) error {
				if !dc.(*sqlite3.SQLiteConn).AutoCommit() {
					t.Errorf("%s: a pooled reader connection is inside a transaction", when)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	read := func(ctx context.Context, during func()) {
		rt, err := s.beginRead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer rt.end()
		var n int
		if err := rt.QueryRowContext(s.readCtx(ctx), `SELECT count(*) FROM messages WHERE mailbox_id = ?`, mb.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		during()
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		read(bg, func() { panic("in a read") })
	}()
	allOutside("after a panic")

	ctx, cancel := context.WithCancel(bg)
	read(ctx, cancel)
	allOutside("after a read whose context ended")

	readTxEnd = "SELECT 1" // ends nothing
	t.Cleanup(func() { readTxEnd = "ROLLBACK" })
	rt, err := s.beginRead(bg)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := rt.QueryRowContext(bg, `SELECT count(*) FROM messages`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := rt.end(); err == nil {
		t.Error("end of a read transaction left open reported no error")
	}
	allOutside("after an end that left the transaction open")
	readTxEnd = "ROLLBACK"
	// The pool still reads (a new connection in the dropped one's place).
	if _, err := s.Delta(bg, mb.ID, 1); err != nil {
		t.Fatal(err)
	}
}
