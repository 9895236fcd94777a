package store

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cgoCallsPer returns the fewest calls into C (SQLite) one call of op
// made, over runs: the statements a write runs on the writer, each a few
// calls (prepare or reset, bind, step, column reads), and nothing else of
// the store calls C while op runs (ChangePoll off; the lazy fsync of the
// log is a system call, not a call into C). The fewest, because a
// statement prepared for the first time on a connection costs more calls
// than one taken from the statement cache.
func cgoCallsPer(t *testing.T, runs int, op func(i int)) int64 {
	t.Helper()
	var got []int64
	for i := range runs {
		before := runtime.NumCgoCall()
		op(i)
		got = append(got, runtime.NumCgoCall()-before)
	}
	return slices.Min(got)
}

// TestLoneWriteCalls: a STORE or an EXPUNGE that finds the writer free
// commits in a batch of its own. Its batch's statements (the safety level
// around it, BEGIN, whether it wrote, the test of the durable marks,
// COMMIT) and the write's own ran with a savepoint around the write
// (nothing beside it to keep apart), the marks' test and the count of
// changes as two statements, and a read of the mailbox's account before
// the update of its MODSEQ: a lone STORE of one message made 36 calls
// into SQLite (runtime.NumCgoCall), a lone UID EXPUNGE of one message 44.
// Now none of those four statements is run.
func TestLoneWriteCalls(t *testing.T) {
	sqliteOnly(t)
	s, mb, uids := inboxStore(t, nil, 24)
	ctx := context.Background()
	calls := cgoCallsPer(t, 20, func(i int) {
		op := FlagsAdd
		if i%2 == 1 {
			op = FlagsRemove
		}
		if _, err := s.StoreFlags(ctx, mb.ID, uids[:1], op, []string{`\Flagged`}); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%d calls into C for a lone STORE of one message", calls)
	if calls > 26 {
		t.Errorf("a lone STORE of one message made %d calls into SQLite, want at most 26 (36 with its savepoint, a separate marks' test and its mailbox's read)", calls)
	}
	if _, err := s.StoreFlags(ctx, mb.ID, uids[4:], FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	calls = cgoCallsPer(t, 20, func(i int) {
		gone, err := s.Expunge(ctx, mb.ID, uids[4+i:5+i])
		if err != nil || len(gone) != 1 {
			t.Fatalf("expunge: %v, %v", gone, err)
		}
	})
	t.Logf("%d calls into C for a lone UID EXPUNGE of one message", calls)
	if calls > 34 {
		t.Errorf("a lone UID EXPUNGE of one message made %d calls into SQLite, want at most 34 (44 with its savepoint, a separate marks' test and its mailbox's read)", calls)
	}
}

// TestLoneWriteFailsAlone: a write alone in its batch runs without a
// savepoint; when it fails, or ends the transaction itself, its changes
// are undone all the same and it is not answered OK, the writer is left at
// synchronous=FULL, and the next write commits.
func TestLoneWriteFailsAlone(t *testing.T) {
	sqliteOnly(t)
	for _, end := range []string{"", "fails", "ok"} {
		t.Run("transaction ended: "+end, func(t *testing.T) {
			s, mb, uids := inboxStore(t, nil, 2)
			ctx := context.Background()
			sizes := batchSizes(s)
			boom := errors.New("boom")
			err := s.writeFlags(ctx, failingWrite(mb.ID, uids[0], end, boom))
			if got := sizes(); len(got) != 1 || got[0] != 1 {
				t.Errorf("batches %v, want one of 1", got)
			}
			if end == "ok" {
				if err == nil {
					t.Error("a write whose transaction was rolled back was answered OK")
				}
			} else if !errors.Is(err, boom) {
				t.Errorf("the failing write: %v, want its own error", err)
			}
			if got := flagsOf(t, s, mb.ID, uids[0]); got != "" {
				t.Errorf("the failing write's change was kept: flags %q", got)
			}
			if got := writerSynchronous(t, s); got != 2 {
				t.Errorf("writer synchronous = %d after a failed lone write, want 2 (FULL)", got)
			}
			if _, err := s.StoreFlags(ctx, mb.ID, uids[1:], FlagsAdd, []string{`\Seen`}); err != nil {
				t.Fatal(err)
			}
			if got := flagsOf(t, s, mb.ID, uids[1]); got != `\Seen` {
				t.Errorf("the next write: flags %q, want \\Seen", got)
			}
		})
	}
}

// TestStoreExpungeAccount: STORE and EXPUNGE take the mailbox's account
// from the update of its MODSEQ (no read of it before): a watcher of the
// mailbox is told of each, a STORE or EXPUNGE that finds no message in a
// mailbox that is there changes nothing and is answered OK, and one on a
// mailbox that is gone is answered ErrNotFound, as before.
func TestStoreExpungeAccount(t *testing.T) {
	s, mb, uids := inboxStore(t, nil, 3)
	ctx := context.Background()
	w := s.WatchMailbox(mb.AccountID, mb.ID)
	defer w.Close()
	told := func(what string, since uint64) {
		t.Helper()
		if !w.Changed(since) {
			t.Errorf("the mailbox's watcher was not told of the %s", what)
		}
	}
	res, err := s.StoreFlagsUnchangedSince(ctx, mb.ID, uids[:1], FlagsAdd, []string{`\Deleted`}, nil)
	if err != nil || res.ModSeq == 0 {
		t.Fatalf("store: %+v, %v", res, err)
	}
	told("STORE", res.ModSeq-1)
	gone, err := s.Expunge(ctx, mb.ID, uids[:1])
	if err != nil || len(gone) != 1 {
		t.Fatalf("expunge: %v, %v", gone, err)
	}
	told("EXPUNGE", res.ModSeq)
	if res, err := s.StoreFlagsUnchangedSince(ctx, mb.ID, uids[:1], FlagsAdd, []string{`\Seen`}, nil); err != nil || len(res.Messages) != 0 || res.ModSeq != 0 {
		t.Errorf("STORE of an expunged UID: %+v, %v; want nothing and no error", res, err)
	}
	if gone, err := s.Expunge(ctx, mb.ID, uids[:1]); err != nil || len(gone) != 0 {
		t.Errorf("EXPUNGE of an expunged UID: %v, %v; want nothing and no error", gone, err)
	}
	other, err := s.CreateMailbox(ctx, mb.AccountID, "Gone", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox(ctx, mb.AccountID, "Gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StoreFlags(ctx, other.ID, uids[1:2], FlagsAdd, []string{`\Seen`}); !errors.Is(err, ErrNotFound) {
		t.Errorf("STORE into a deleted mailbox: %v, want ErrNotFound", err)
	}
	if _, err := s.Expunge(ctx, other.ID, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("EXPUNGE of a deleted mailbox: %v, want ErrNotFound", err)
	}
}

// BenchmarkLoneStore: STOREs of one message one after the other on one
// connection, each alone in its batch (the paced STORE of the IMAP
// latency benchmark, without IMAP): the writer's cost of a lone STORE.
// cpu-µs/op is the process's CPU (getrusage) per STORE, the lazy fsyncs
// of the log included.
func BenchmarkLoneStore(b *testing.B) {
	s, mb, uids := inboxStore(b, nil, 4)
	ctx := context.Background()
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		op := FlagsAdd
		if i%2 == 1 {
			op = FlagsRemove
		}
		if _, err := s.StoreFlags(ctx, mb.ID, uids[:1], op, []string{`\Flagged`}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}

// TestLoneWriteStartsNoGoroutine: a lone STORE (the grouped write of one
// flag change, its batch led by its own caller) starts no goroutine,
// whatever its caller's context. With the batch's transaction an sql.Tx
// it started 5: database/sql's watcher of the Tx's context (BeginTx wraps
// it in a WithCancel whatever it is) and one watcher per statement that
// returns rows (the count of changes, the message's row, the MODSEQ's
// update, the marks' test), each a wake-up of another thread while the
// writer is held. The flag's later fsync (walSync.later, a timer within
// flagSyncBound) is not counted: the STOREs here come faster than it.
func TestLoneWriteStartsNoGoroutine(t *testing.T) {
	sqliteOnly(t)
	noCheckpoints(t)
	s, mb, uids := inboxStore(t, &Options{ChangePoll: -1}, 4)
	bg := context.Background()
	cctx, cancel := context.WithCancel(bg)
	defer cancel()
	for _, ctx := range []context.Context{bg, cctx} {
		i := 0
		n := fewestGoroutines(50, func() {
			op := FlagsAdd
			if i%2 == 1 {
				op = FlagsRemove
			}
			i++
			got, err := s.StoreFlags(ctx, mb.ID, uids[:1], op, []string{`$K`})
			if err != nil || len(got) != 1 || slices.Contains(got[0].Flags, "$K") != (op == FlagsAdd) {
				t.Fatalf("STORE: %v, %v", got, err)
			}
		})
		if n != 0 {
			t.Errorf("a lone STORE (context can end: %v) started %.2f goroutines, want 0", ctx != bg, n)
		}
	}
}

// TestWriterNeverPooledInTransaction: a grouped write's transaction that
// is not committed and whose ROLLBACK fails (writerRollback made to end
// nothing) leaves its connection inside the transaction: it is dropped,
// not given back to the pool, so the next write begins on a fresh
// connection, and the failed write's change is never committed with it.
func TestWriterNeverPooledInTransaction(t *testing.T) {
	sqliteOnly(t)
	s, mb, uids := inboxStore(t, nil, 2)
	ctx := context.Background()
	boom := errors.New("boom")
	writerRollback = `SELECT 1`
	err := s.writeFlags(ctx, failingWrite(mb.ID, uids[0], "", boom))
	writerRollback = `ROLLBACK`
	if !errors.Is(err, boom) {
		t.Fatalf("failing write: %v, want boom", err)
	}
	if _, err := s.StoreFlags(ctx, mb.ID, uids[1:2], FlagsAdd, []string{`\Flagged`}); err != nil {
		t.Fatalf("next write: %v", err)
	}
	for i, want := range []string{"", `\Flagged`} {
		m, err := s.Message(ctx, mb.ID, uids[i])
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(m.Flags, " "); got != want {
			t.Errorf("message %d: flags %q, want %q", i, got, want)
		}
	}
}
