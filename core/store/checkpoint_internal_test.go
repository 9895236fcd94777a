package store

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// withCheckpoints sets the checkpointer's thresholds for one test, before
// its store opens.
func withCheckpoints(t *testing.T, pages, bound uint32, poll, quiet time.Duration) {
	t.Helper()
	p, b, po, q := ckptPages, ckptBound, ckptPoll, ckptQuiet
	ckptPages, ckptBound, ckptPoll, ckptQuiet = pages, bound, poll, quiet
	t.Cleanup(func() { ckptPages, ckptBound, ckptPoll, ckptQuiet = p, b, po, q })
}

// noCheckpoints keeps the checkpointer of the stores the test opens from
// running (a simulated power cut reads the log's size as what is on disk).
func noCheckpoints(t *testing.T) {
	withCheckpoints(t, 1<<31, 1<<31, time.Hour, time.Hour)
}

// junkStore is a store with a table of blobs to fill its log with: each
// junkWrite is a short write (group commit, synchronous=NORMAL) of n
// pages or more.
func junkStore(t *testing.T) *Store {
	t.Helper()
	sqliteOnly(t)
	s, _, _ := inboxStore(t, nil, 1)
	if _, err := s.w.Exec(`CREATE TABLE junk (b BLOB)`); err != nil {
		t.Fatal(err)
	}
	return s
}

func junkWrite(t testing.TB, s *Store, n int) {
	err := s.writeFlags(context.Background(), func(tx wtx, _ *changes) error {
		for range n {
			if _, err := tx.ExecContext(context.Background(), `INSERT INTO junk (b) VALUES (randomblob(8000))`); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// TestCommitRunsNoCheckpoint: the writer's commits never copy the log into
// the database (wal_autocheckpoint = 0 on the writer connection); with the
// checkpointer kept from running, a log of far more than SQLite's 1,000
// pages is still wholly uncopied and never restarted.
func TestCommitRunsNoCheckpoint(t *testing.T) {
	noCheckpoints(t)
	s := junkStore(t)
	before := s.ckpt.runs.Load()
	for range 150 {
		junkWrite(t, s, 10) // 10 pages or more each
	}
	frames, done, ok := s.ckpt.walState()
	if !ok {
		t.Fatal("cannot read the log's state from the -shm file")
	}
	t.Logf("log: %d pages, %d copied into the database", frames, done)
	if frames < 1500 || done != 0 {
		t.Errorf("log of %d pages with %d copied after 1,500 pages of commits: a commit ran a checkpoint (want all 1,500 in the log, none copied)", frames, done)
	}
	if n := s.ckpt.runs.Load() - before; n != 0 {
		t.Errorf("%d checkpoints ran, want none", n)
	}
}

// TestCheckpointsKeepLogBounded: under a flood of writes from several
// sessions, with readers reading all along, the checkpointer keeps the log
// bounded (it holds the writer when PASSIVE checkpoints beside the writes
// cannot let it restart), and copies all of it once the writes stop.
func TestCheckpointsKeepLogBounded(t *testing.T) {
	withCheckpoints(t, 100, 400, 5*time.Millisecond, 100*time.Millisecond)
	s := junkStore(t)
	const writers, writes, pages = 4, 300, 4 // 4,800 pages, 12 times the bound
	var maxFrames atomic.Uint32
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() { // watches the log
		for {
			if f, _, ok := s.ckpt.walState(); ok && f > maxFrames.Load() {
				maxFrames.Store(f)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	for range 2 {
		bg.Go(func() { // readers, short as a session's
			for {
				var n int
				if err := s.r.QueryRow(`SELECT coalesce(sum(length(b)), 0) FROM (SELECT b FROM junk ORDER BY rowid DESC LIMIT 1)`).Scan(&n); err != nil {
					t.Error(err)
					return
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		})
	}
	var w sync.WaitGroup
	for range writers {
		w.Go(func() {
			for range writes {
				junkWrite(t, s, pages)
			}
		})
	}
	w.Wait()
	close(stop)
	bg.Wait()
	st, err := os.Stat(s.wal.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("log at most %d pages (file %d bytes) for %d pages written; %d checkpoints, %d holding the writer", maxFrames.Load(), st.Size(), writers*writes*pages, s.ckpt.runs.Load(), s.ckpt.held.Load())
	// The bound, plus what the writers add while the checkpointer waits
	// for a core and runs: a log that never restarted would hold all
	// 4,800 and more (each write also changes pages of the table's tree).
	// The file's size is its most since it was made (the sampling may
	// miss a peak): 24 bytes of header per 8 KiB page.
	if got := st.Size() / (24 + 8192); got >= writers*writes*pages/2 {
		t.Errorf("the log grew to %d pages for %d written: not bounded (bound %d)", got, writers*writes*pages, ckptBound)
	}
	if s.ckpt.runs.Load() == 0 {
		t.Error("no checkpoint ran")
	}
	// Quiet: everything is copied.
	deadline := time.Now().Add(30 * time.Second)
	for {
		f, d, ok := s.ckpt.walState()
		if ok && f == d {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the writes the log holds %d pages, %d copied: the quiet checkpoint did not run", f, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCheckpointFsyncFailureStops: when SQLite's fsync of the log fails in
// a checkpoint (the checkpointer's, off the writer), the store stops
// (ErrStopped), as after a commit's (walSync.failedCommit): the pages the
// kernel could not write may be gone, and nothing after could be trusted
// as durable. The fsync is failed by the shim of
// TestFullCommitFsyncFailureStops, in a child process.
func TestCheckpointFsyncFailureStops(t *testing.T) {
	sqliteOnly(t)
	withFailingFsync(t, "TestCheckpointFsyncFailureStops", checkpointFsyncFails)
}

func checkpointFsyncFails(t *testing.T, trigger string) {
	noCheckpoints(t) // this test runs the one checkpoint
	s := junkStore(t)
	junkWrite(t, s, 20) // committed, not yet fsynced (synchronous=NORMAL)
	if err := os.WriteFile(trigger, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s.checkpoint(context.Background())
	os.Remove(trigger)
	select {
	case <-s.Stopped():
	default:
		t.Fatal("the store did not stop after SQLite's fsync of the log failed in a checkpoint (is the shim loaded?)")
	}
	t.Logf("stopped: %v", s.StoppedErr())
	err := s.writeFlags(context.Background(), func(tx wtx, _ *changes) error {
		_, err := tx.ExecContext(context.Background(), `INSERT INTO junk (b) VALUES (x'00')`)
		return err
	})
	if !errors.Is(err, ErrStopped) {
		t.Fatalf("a write after the checkpoint's failed fsync: %v; want ErrStopped", err)
	}
	if f, d, ok := s.ckpt.walState(); !ok || d != 0 {
		t.Errorf("the log: %d pages, %d copied (read: %v); want none copied after the failed fsync", f, d, ok)
	}
}
