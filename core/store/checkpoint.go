package store

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3"
)

// Checkpoints of SQLite's write-ahead log, off the writer's path.
//
// SQLite copies the log's pages into the database file (a checkpoint) in
// the commit that takes the log past wal_autocheckpoint pages (1,000), on
// the connection that committed: on the writer, while it is held, an fsync
// of the log, the pages written and an fsync of the database, with every
// other write of this process queued behind it (session 14 saw commits of
// 88 µs p50 reach 3.2 ms at load 3-5, up to 56 ms at load 16-19, the p99
// of a closed-loop STORE). The writer connection now runs with
// wal_autocheckpoint = 0 and never checkpoints; a goroutine of the store's
// own (checkpoints) does, on a connection of its own, with the writer free:
//
//   - When the log holds ckptPages pages not yet in the database, and
//     after a quiet moment (ckptQuiet without a commit) when it holds any,
//     a PASSIVE checkpoint: it waits for no one and blocks no one; it
//     copies what no reader still needs, while writes go on.
//   - The log restarts from its beginning only at a write that finds it
//     wholly copied, which a flood of writes never leaves time for: a
//     PASSIVE checkpoint running beside the writes never catches up with
//     them, and the log would grow without end. So when it holds
//     ckptBound pages since its last restart, the checkpointer takes this
//     process's writer (every write waits, as each did for the checkpoint
//     in its commit before) and checkpoints again, RESTART: only the
//     pages written since its last checkpoint, and then it waits, at most
//     ckptWait, for the readers still reading an older snapshot to end
//     (readers that start meanwhile read the database, never wait), so
//     that the next write restarts the log. Readers pinned that long make
//     it give up until the next checkpoint: a reader is never stopped
//     and never waits for a checkpoint. TRUNCATE is never used.
//
// How full the log is comes from the wal-index header at the start of
// the -shm file (mxFrame, the log's pages, and nBackfill, those copied:
// https://sqlite.org/walformat.html), read with one pread when a commit
// happened (the writer connection's commit hook counts them) at most every
// ckptPoll; nothing runs while no one writes. The header is read only when
// its two copies agree, as SQLite itself does.
//
// What it keeps: a checkpoint copies only pages of committed transactions,
// after SQLite fsynced the log (in every mode); the database is fsynced
// before the log may restart. An fsync that fails in it stops the store,
// as a failed commit does (walSync.failedCommit), and no checkpoint runs
// once the store stopped: the log is kept for the next start to recover
// from (keepLog). Another process on the same database (a migration beside
// serve) checkpoints with its own checkpointer; each holds only its own
// writer, so the bound holds while one writes, not two floods at once.

var (
	// ckptPages is the pages in the log not yet in the database that start
	// a checkpoint (SQLite's own wal_autocheckpoint default).
	ckptPages uint32 = 1000
	// ckptBound is the log's pages since its restart past which the
	// checkpointer holds this process's writer for its checkpoint (see
	// above): 32 MiB of 8 KiB pages.
	ckptBound uint32 = 4000
	// ckptQuiet is how long without a commit before a checkpoint of
	// whatever the log holds.
	ckptQuiet = time.Second
	// ckptPoll is how often, while commits come, the header is read.
	ckptPoll = 100 * time.Millisecond
	// ckptWait is how long a RESTART checkpoint waits at most, holding the
	// writer, for the readers of older snapshots to end (the busy timeout
	// of the checkpointer's connection); it gives up after that, and
	// tries again at the next checkpoint.
	ckptWait = 200 * time.Millisecond
)

// checkpointer is the store's checkpoints (see above).
type checkpointer struct {
	db      *sql.DB // its own connection
	shmPath string
	// shm is the -shm file, kept open until the store closed: closing a
	// descriptor of it would drop SQLite's POSIX locks on it.
	shm *os.File
	// commits counts the writer's commits (its commit hook); idle is set
	// while the checkpointer waits for one, woken through wake.
	commits atomic.Uint64
	idle    atomic.Bool
	wake    chan struct{}
	// Counts, for tests: checkpoints run, and those that held the writer.
	runs, held atomic.Int64
	mu         sync.Mutex // shm
	// The thresholds (ckptPages...), as when the store opened.
	pages, bound uint32
	quiet, poll  time.Duration
}

func newCheckpointer(path string) *checkpointer {
	return &checkpointer{shmPath: path + "-shm", wake: make(chan struct{}, 1),
		pages: ckptPages, bound: ckptBound, quiet: ckptQuiet, poll: ckptPoll}
}

// committed is the writer connection's commit hook: it counts the commit,
// and wakes the checkpointer when it waits for one. It runs inside
// SQLite's commit, on the writer: it does nothing else.
func (c *checkpointer) committed() int {
	c.commits.Add(1)
	if c.idle.Load() && c.idle.CompareAndSwap(true, false) {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	return 0 // go on with the commit
}

// walState is the log's pages since its restart and those copied into
// the database, from the -shm file's header; ok is false when it could not
// be read (the file is missing, a write was under way, an unknown format).
func (c *checkpointer) walState() (frames, backfilled uint32, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shm == nil {
		f, err := os.Open(c.shmPath)
		if err != nil {
			return 0, 0, false
		}
		c.shm = f
	}
	var b [100]byte
	if _, err := c.shm.ReadAt(b[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return 0, 0, false
	}
	// Two copies of the 48-byte header, then nBackfill; native byte
	// order; iVersion 3007000.
	if !bytes.Equal(b[0:48], b[48:96]) || binary.NativeEndian.Uint32(b[0:4]) != 3007000 || b[12] == 0 {
		return 0, 0, false
	}
	return binary.NativeEndian.Uint32(b[16:20]), binary.NativeEndian.Uint32(b[96:100]), true
}

// close closes the -shm file, once SQLite's connections are closed.
func (c *checkpointer) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shm != nil {
		c.shm.Close()
		c.shm = nil
	}
}

// checkpoints runs the store's checkpoints until ctx ends (see above).
func (s *Store) checkpoints(ctx context.Context) {
	c := s.ckpt
	seen := c.commits.Load()
	last := time.Now() // of the last commit seen
	var ran time.Time  // the last checkpoint
	t := time.NewTimer(c.poll)
	defer t.Stop()
	for {
		if !waitFor(ctx, t.C) {
			return
		}
		if n := c.commits.Load(); n != seen {
			seen, last = n, time.Now()
			frames, done, ok := c.walState()
			// A header that cannot be read (a write under way, or a
			// format this code does not know) has a checkpoint made every
			// quiet period all the same.
			if (ok && frames-done >= c.pages) || (!ok && time.Since(ran) >= c.quiet) {
				s.checkpoint(ctx)
				ran = time.Now()
			}
			t.Reset(c.poll)
			continue
		}
		if time.Since(last) < c.quiet {
			t.Reset(c.poll)
			continue
		}
		// Quiet: copy what the log holds, then wait for the next commit;
		// or, when a reader kept some of it from being copied, try again
		// after another quiet moment.
		if frames, done, ok := c.walState(); !ok || frames > done {
			ran = time.Now()
			if s.checkpoint(ctx) {
				last = time.Now()
				t.Reset(c.poll)
				continue
			}
		}
		c.idle.Store(true)
		if c.commits.Load() == seen && !waitFor(ctx, c.wake) {
			return
		}
		c.idle.Store(false)
		t.Reset(c.poll)
	}
}

// waitFor waits for ch, and reports false when ctx ended first.
func waitFor[T any](ctx context.Context, ch <-chan T) bool {
	select {
	case <-ctx.Done():
		return false
	case <-ch:
		return true
	}
}

// checkpoint runs a PASSIVE checkpoint on the checkpointer's connection,
// and a RESTART one holding this process's writer when the log holds
// ckptBound pages since its restart (see the top of this file). It
// reports whether the log still holds pages not copied (a reader kept
// them) after a checkpoint that ran.
func (s *Store) checkpoint(ctx context.Context) (left bool) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("store: panic in a checkpoint of the log", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	frames, done, ok := s.checkpointMode(ctx, "PASSIVE")
	if !ok || frames < int(s.ckpt.bound) {
		return ok && done < frames
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return false // closing
	}
	defer conn.Close()
	s.ckpt.held.Add(1)
	frames, done, ok = s.checkpointMode(ctx, "RESTART")
	return ok && done < frames
}

// checkpointMode runs one checkpoint of mode, PASSIVE or RESTART, on the
// checkpointer's connection: the log's pages, those copied, and whether
// it ran.
func (s *Store) checkpointMode(ctx context.Context, mode string) (frames, done int, ok bool) {
	if s.wal.stopped() != nil {
		return 0, 0, false // the log stays as it is for the next start (keepLog)
	}
	var busy int
	err := s.ckpt.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(`+mode+`)`).Scan(&busy, &frames, &done)
	if err != nil {
		if ctx.Err() == nil {
			// An fsync that failed stops the store (failedCommit).
			s.log.Warn("store: a checkpoint of the log failed", "err", s.wal.failedCommit(err))
		}
		return 0, 0, false
	}
	s.ckpt.runs.Add(1)
	return frames, done, true
}

// writerConnector opens the store's writer connection (see openSQLite):
// temporary files in memory, no checkpoint in its commits, and each commit
// counted by the store's checkpointer.
type writerConnector struct {
	dsn string
	d   *sqlite3.SQLiteDriver
}

func newWriterConnector(dsn string, c *checkpointer) *writerConnector {
	return &writerConnector{dsn: dsn, d: &sqlite3.SQLiteDriver{ConnectHook: func(conn *sqlite3.SQLiteConn) error {
		// The statement journal of a multi-row INSERT in memory: on disk
		// it was written to a file and deleted for every batch (43 MB for
		// a 241 MB copy, beside 27 MB of WAL: strace of
		// BenchmarkMigrateProcess).
		if _, err := conn.Exec("PRAGMA temp_store = MEMORY", nil); err != nil {
			return fmt.Errorf("store: temp_store: %w", err)
		}
		// The checkpointer copies the log into the database, not the
		// writer's commits (checkpoint.go).
		if _, err := conn.Exec("PRAGMA wal_autocheckpoint = 0", nil); err != nil {
			return fmt.Errorf("store: wal_autocheckpoint: %w", err)
		}
		conn.RegisterCommitHook(c.committed)
		return nil
	}}}
}

func (w *writerConnector) Connect(context.Context) (driver.Conn, error) { return w.d.Open(w.dsn) }
func (w *writerConnector) Driver() driver.Driver                        { return w.d }
