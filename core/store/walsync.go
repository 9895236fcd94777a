package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
)

// Group commit of flag changes and expunges.
//
// Every write commits on the one writer connection with synchronous=FULL:
// SQLite fsyncs the write-ahead log before the commit returns, while the
// transaction still holds the writer, so under load every other write
// (APPEND, delivery, a migration's batch) queues behind that fsync. A
// transaction that changes only flags (STORE, a \Recent claim) or removes
// messages (EXPUNGE) instead commits with synchronous=NORMAL, which is the
// same commit without that fsync, and frees the writer; then writeGrouped
// waits for an fsync of the log made outside the writer (walSync), one
// fsync for every such change committed before it started (group commit;
// a \Recent claim does not wait for it, see writeUnsyncedThen).
// So a STORE or an EXPUNGE is still on disk before it returns
// (acknowledged means durable, as for mail), it no longer holds the writer
// during its fsync, and ten of them at once cost about one fsync. (If that
// fsync fails, the change is committed yet answered as failed: a STORE or
// EXPUNGE done again is then harmless. An append, which must not be
// answered NO and still be there, keeps its fsync at commit.)
//
// Why this is as durable as FULL: in WAL mode FULL and NORMAL differ only in
// that fsync of the log at commit (SQLite syncs the log's header when it
// restarts the log, and the log before and the database after a checkpoint,
// in both modes). The log is appended in order and read back after a crash
// up to its first invalid frame, so an fsync of the log file makes every
// commit written before it durable, whichever connection or file
// descriptor wrote it.

// walSync makes the write-ahead log durable with fsyncs shared by every
// caller waiting at once.
//
// Up to syncDepth fsyncs run at once. A caller whose commit came while an
// fsync was under way (which may not cover it) starts the next one at once
// rather than waiting for that one to end first: a STORE then waits about
// one fsync instead of one and a half. Each fsync covers every request made
// before it started, whichever ends first (an fsync also waits for the
// pages another one is writing), so requests still share fsyncs: those that
// come while syncDepth run wait for the next.
type walSync struct {
	path string // the database's -wal file
	// syncFile is (*os.File).Sync; tests count, hold or fail it.
	syncFile func(*os.File) error

	mu   sync.Mutex
	cond sync.Cond
	// files are the log's descriptors, one per fsync that may run at once
	// (see fsync); busy says which are in use.
	files   [syncDepth]*os.File
	busy    [syncDepth]bool
	asked   uint64 // requests made
	started uint64 // requests an fsync under way or done covers
	done    uint64 // requests an fsync covered
}

// syncDepth is how many fsyncs of the log run at once at most.
const syncDepth = 2

func newWALSync(dbPath string) *walSync {
	w := &walSync{path: dbPath + "-wal", syncFile: (*os.File).Sync}
	w.cond.L = &w.mu
	return w
}

// sync returns once an fsync of the log that started after sync was called
// succeeded: every commit that returned before the call is then durable.
func (w *walSync) sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.asked++
	mine := w.asked
	for w.done < mine {
		slot := slices.Index(w.busy[:], false)
		if w.started >= mine || slot < 0 {
			// An fsync under way covers this request, or as many run as
			// may: wait for one to end.
			w.cond.Wait()
			continue
		}
		w.busy[slot] = true
		upto := w.asked
		w.started = max(w.started, upto)
		w.mu.Unlock()
		err := w.fsync(slot)
		w.mu.Lock()
		w.busy[slot] = false
		w.cond.Broadcast()
		if err != nil {
			// The requests it was to cover are not known durable: their
			// callers start fsyncs of their own.
			w.started = w.done
			return fmt.Errorf("store: sync the log: %w: %w", ErrNotDurable, err)
		}
		w.done = max(w.done, upto)
	}
	return nil
}

// fsync syncs the log file through the descriptor of slot. The descriptors
// are kept open for the store's life and closed only when the log was
// replaced (SQLite deletes it when the last connection closes): closing a
// descriptor would drop the process's POSIX locks on that file (SQLite's
// own are on the database and -shm files, but none is given up here while
// SQLite may use the file). Called by one goroutine at a time per slot
// (busy).
func (w *walSync) fsync(slot int) error {
	cur, err := os.Stat(w.path)
	if errors.Is(err, fs.ErrNotExist) {
		// SQLite removes the log only after checkpointing it into the
		// database and syncing that, when its last connection closes.
		return nil
	} else if err != nil {
		return err
	}
	f := w.files[slot]
	if f != nil {
		if st, err := f.Stat(); err != nil || !os.SameFile(st, cur) {
			f.Close()
			f = nil
		}
	}
	if f == nil {
		// Read-write: Windows flushes only a file opened for writing.
		// Nothing is written through it.
		if f, err = os.OpenFile(w.path, os.O_RDWR, 0); err != nil {
			w.files[slot] = nil
			return err
		}
	}
	w.files[slot] = f
	return w.syncFile(f)
}

// close closes the log's descriptors, after the database was closed and
// once no fsync is under way.
func (w *walSync) close() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for slices.Contains(w.busy[:], true) {
		w.cond.Wait()
	}
	for i, f := range w.files {
		if f != nil {
			f.Close()
			w.files[i] = nil
		}
	}
}

// errPacksInGroupedWrite: writeGrouped is for transactions that name no
// message bytes (their packs must be fsynced before the commit, see Tx.Commit).
var errPacksInGroupedWrite = errors.New("store: a grouped write wrote message bytes")

// writeGrouped is write for a transaction that changes only flags: it
// commits with synchronous=NORMAL on the writer connection, waits until
// walSync made the commit durable, and then tells the watchers (see the
// comment at the top of this file). A transaction that wrote message
// bytes is refused and rolled back. On PostgreSQL (no walSync) it is
// write.
func (s *Store) writeGrouped(ctx context.Context, fn func(tx *sql.Tx, ch *changes) error) error {
	return s.writeGroupedThen(ctx, fn, nil)
}

// writeGroupedThen is writeGrouped that calls ended, when not nil, once the
// transaction ended (committed or not), before waiting for the fsync.
func (s *Store) writeGroupedThen(ctx context.Context, fn func(tx *sql.Tx, ch *changes) error, ended func()) error {
	return s.writeNormal(ctx, fn, ended, true)
}

// writeUnsyncedThen is writeGroupedThen that does not wait for the fsync:
// for a change that may be lost in a power cut, and only there, because
// nothing was promised on it (a \Recent claim, recent.go). It is durable
// with the next fsync of the log, which any STORE, EXPUNGE or APPEND makes.
func (s *Store) writeUnsyncedThen(ctx context.Context, fn func(tx *sql.Tx, ch *changes) error, ended func()) error {
	return s.writeNormal(ctx, fn, ended, false)
}

// writeNormal commits fn with synchronous=NORMAL (commitNormal), and then,
// with durable, waits for walSync.
func (s *Store) writeNormal(ctx context.Context, fn func(tx *sql.Tx, ch *changes) error, ended func(), durable bool) error {
	if ended == nil {
		ended = func() {}
	}
	if s.wal == nil {
		// PostgreSQL: its own commit (and commit_delay) decides.
		err := s.write(ctx, fn)
		ended()
		return err
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		ended()
		return fmt.Errorf("store: begin: %w", err)
	}
	committed, wrote, err := s.commitNormal(ctx, conn, fn)
	ended()
	if committed != nil {
		if err == nil && wrote && durable {
			err = s.wal.sync()
		}
		// Told only after the fsync: until then a crash could lose the
		// change, and no other session (an IDLE) may show it. A failed
		// fsync is told all the same: the change is committed and every
		// read already sees it, so the watchers re-read what is there.
		s.notify(committed)
	}
	return err
}

// commitNormal runs fn in a transaction on conn with synchronous=NORMAL,
// puts FULL back and gives conn back to the pool; if FULL cannot be put
// back the connection is discarded (the pool opens a new one with FULL). It
// returns the changes when the transaction committed, and whether it
// changed any row (one that changed none wrote nothing to the log, so it
// needs no fsync).
func (s *Store) commitNormal(ctx context.Context, conn *sql.Conn, fn func(tx *sql.Tx, ch *changes) error) (committed *changes, wrote bool, err error) {
	bg := context.WithoutCancel(ctx)
	defer func() {
		if _, rerr := conn.ExecContext(bg, `PRAGMA synchronous = FULL`); rerr != nil {
			s.log.Error("store: cannot put synchronous=FULL back; dropping the connection", "err", rerr)
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
	}()
	// The safety level cannot change inside a transaction: set it before.
	if _, err := conn.ExecContext(bg, `PRAGMA synchronous = NORMAL`); err != nil {
		return nil, false, fmt.Errorf("store: %w", err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, false, fmt.Errorf("store: begin: %w", err)
	}
	defer tx.Rollback()
	var before, after int64
	if err := tx.QueryRowContext(ctx, `SELECT total_changes()`).Scan(&before); err != nil {
		return nil, false, fmt.Errorf("store: %w", err)
	}
	ch := &changes{}
	if err := fn(tx, ch); err != nil {
		return nil, false, err
	}
	if len(ch.packs) > 0 {
		return nil, false, errPacksInGroupedWrite
	}
	if err := tx.QueryRowContext(ctx, `SELECT total_changes()`).Scan(&after); err != nil {
		return nil, false, fmt.Errorf("store: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, false, fmt.Errorf("store: commit: %w", err)
	}
	return ch, after != before, nil
}
