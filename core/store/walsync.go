package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"
)

// Group commit of flag changes and expunges.
//
// Every write commits on the one writer connection with synchronous=FULL:
// SQLite fsyncs the write-ahead log before the commit returns, while the
// transaction still holds the writer, so under load every other write
// (APPEND, delivery, a migration's batch) queues behind that fsync. A
// transaction that changes only flags (STORE, a \Recent claim) or removes
// messages (EXPUNGE) instead commits with synchronous=NORMAL, which is the
// same commit without that fsync, and frees the writer; the log is then
// fsynced outside the writer (walSync), one fsync for every such change
// committed before it started (group commit).
//
// What is durable when:
//   - An EXPUNGE waits for that fsync (writeGrouped): on disk before its
//     OK, as mail is. (If the fsync fails, the expunge is committed yet
//     answered as failed: an EXPUNGE done again is then harmless.)
//   - A change of flags only (STORE, the \Seen a FETCH sets) is answered
//     once committed, and made durable by an fsync of the log at most
//     flagSyncBound later, or sooner by any later fsync of the log
//     (writeFlags, walSync.later). A power cut within that bound may lose
//     it, as Dovecot's mail_fsync=optimized loses flag changes it never
//     fsyncs, and PostgreSQL's synchronous_commit=off loses commits of its
//     last 600 ms; nothing else is lost with it, and the mailbox stays
//     consistent (it is the state before the change). It is never
//     reordered after a later durable write: the log is appended in order
//     and every fsync of it covers all that was written before, so the OK
//     of a later APPEND (SQLite's own fsync at commit), EXPUNGE or COPY
//     means the flag change is on disk too (STORE \Deleted then EXPUNGE:
//     once EXPUNGE is OK, both are durable).
//   - A \Recent claim waits for no fsync and starts none
//     (writeUnsyncedThen, recent.go): nothing is promised on it.
//   - An append, which must not be answered NO and still be there, keeps
//     its fsync at commit.
//
// Why a later fsync of the log covers an earlier commit: in WAL mode FULL
// and NORMAL differ only in that fsync of the log at commit (SQLite syncs
// the log's header when it restarts the log, and the log before and the
// database after a checkpoint, in both modes). The log is appended in
// order and read back after a crash up to its first invalid frame, so an
// fsync of the log file makes every commit written before it durable,
// whichever connection or file descriptor wrote it.

// flagSyncBound is how long after its OK a flag change may be not yet on
// disk (see above).
const flagSyncBound = 100 * time.Millisecond

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
	// lazy is the request of the last commit answered before its fsync
	// (later); an fsync made at most lazyDelay after it covers it.
	lazy      uint64
	lazyDelay time.Duration
	lazyTimer *time.Timer
	armed     bool      // lazyTimer will fire
	fires     time.Time // when, if armed
	// retry is how long after a failed lazy fsync it is tried again
	// (doubling up to lazyRetryMax while they fail; 0 after a success).
	retry  time.Duration
	closed bool
	log    *slog.Logger
}

// syncDepth is how many fsyncs of the log run at once at most.
const syncDepth = 2

func newWALSync(dbPath string, log *slog.Logger) *walSync {
	w := &walSync{path: dbPath + "-wal", syncFile: (*os.File).Sync, lazyDelay: flagSyncBound, log: log}
	w.cond.L = &w.mu
	return w
}

// later notes a commit answered before an fsync covers it, and has one
// made within lazyDelay, unless another fsync (an EXPUNGE's, a later
// one of these) covers it first.
func (w *walSync) later() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.asked++
	w.lazy = w.asked
	w.armLocked(w.lazyDelay)
}

// armLocked has lazySync run within d, unless it will already (or the
// store closed). (A retry of a failed fsync armed for later is brought
// forward by a new flag change: that one is promised lazyDelay.)
func (w *walSync) armLocked(d time.Duration) {
	at := time.Now().Add(d)
	if w.closed || w.armed && !w.fires.After(at) {
		return
	}
	w.armed, w.fires = true, at
	if w.lazyTimer == nil {
		w.lazyTimer = time.AfterFunc(d, w.lazySync)
	} else {
		w.lazyTimer.Reset(d)
	}
}

// lazyRetryMax bounds the wait between the tries of a lazy fsync that
// keeps failing.
const lazyRetryMax = 10 * time.Second

// lazySync makes the commits noted by later durable, if no fsync did yet.
func (w *walSync) lazySync() {
	w.mu.Lock()
	w.armed = false
	pending := !w.closed && w.done < w.lazy
	w.mu.Unlock()
	if !pending {
		return
	}
	err := w.sync()
	if err == nil || errors.Is(err, errWALClosed) {
		w.mu.Lock()
		w.retry = 0
		w.mu.Unlock()
		return
	}
	// The flag changes were answered OK: they stay committed, and the
	// next fsync of the log (any EXPUNGE, STORE) covers them; so does
	// this one tried again, later and later while it fails, should no
	// other write come (a store gone quiet after its last STORE). A disk
	// that fails fsyncs fails those too, in words.
	w.mu.Lock()
	w.retry = min(max(2*w.retry, w.lazyDelay), lazyRetryMax)
	retry := w.retry
	if w.done < w.lazy {
		w.armLocked(retry)
	}
	w.mu.Unlock()
	w.log.Error("store: flag changes not made durable; trying again", "err", err, "in", retry)
}

// settle makes every commit noted by later durable now (the store is
// closing).
func (w *walSync) settle() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	pending := w.done < w.lazy
	w.mu.Unlock()
	if !pending {
		return nil
	}
	return w.sync()
}

// errWALClosed: the store closed.
var errWALClosed = errors.New("store: closed")

// sync returns once an fsync of the log that started after sync was called
// succeeded: every commit that returned before the call is then durable.
func (w *walSync) sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.asked++
	mine := w.asked
	for w.done < mine {
		if w.closed {
			return errWALClosed
		}
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
	w.closed = true
	if w.lazyTimer != nil {
		w.lazyTimer.Stop()
	}
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

// writeGrouped is write for a transaction that removes messages or
// changes flags, and names no message bytes: it commits with
// synchronous=NORMAL on the writer connection, waits until walSync made
// the commit durable, and then tells the watchers (see the comment at the
// top of this file). A transaction that wrote message bytes is refused
// and rolled back. On PostgreSQL (no walSync) it is write.
func (s *Store) writeGrouped(ctx context.Context, fn func(tx *sql.Tx, ch *changes) error) error {
	return s.writeNormal(ctx, fn, nil, syncWait)
}

// writeFlags is writeGrouped for a change of flags only: it tells the
// watchers and returns once committed, and has walSync make it durable
// within flagSyncBound (walSync.later).
func (s *Store) writeFlags(ctx context.Context, fn func(tx *sql.Tx, ch *changes) error) error {
	return s.writeNormal(ctx, fn, nil, syncSoon)
}

// writeUnsyncedThen is writeGrouped that neither waits for an fsync nor
// asks for one, and calls ended, when not nil, once the transaction ended
// (committed or not): for a change that may be lost in a power cut, and
// only there, because nothing was promised on it (a \Recent claim,
// recent.go). It is durable with the next fsync of the log, which any
// STORE, EXPUNGE or APPEND makes.
func (s *Store) writeUnsyncedThen(ctx context.Context, fn func(tx *sql.Tx, ch *changes) error, ended func()) error {
	return s.writeNormal(ctx, fn, ended, syncNone)
}

// syncMode says what a commit with synchronous=NORMAL does about the fsync
// of the log.
type syncMode int

const (
	syncWait syncMode = iota // waits for it (EXPUNGE)
	syncSoon                 // has one made within flagSyncBound (STORE)
	syncNone                 // nothing (a \Recent claim)
)

// writeNormal commits fn with synchronous=NORMAL (commitNormal), and then
// waits for walSync, asks it for a later fsync, or neither (mode).
func (s *Store) writeNormal(ctx context.Context, fn func(tx *sql.Tx, ch *changes) error, ended func(), mode syncMode) error {
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
		switch {
		case err != nil || !wrote:
		case mode == syncWait:
			err = s.wal.sync()
		case mode == syncSoon:
			s.wal.later()
		}
		// An expunge is told only after its fsync: until then a crash
		// could lose it, and no other session (an IDLE) may show it. A
		// failed fsync is told all the same: the change is committed and
		// every read already sees it, so the watchers re-read what is
		// there. A flag change is told at once, as it is answered.
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
