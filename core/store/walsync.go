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

	"github.com/mattn/go-sqlite3"
)

// Group commit of mail and flag changes.
//
// A write commits on the one writer connection with synchronous=FULL:
// SQLite fsyncs the write-ahead log before the commit returns, while the
// transaction still holds the writer, so under load every other write
// queues behind that fsync (session 9 traced a STORE waiting 5.5 ms of its
// 7.4 ms for the writer, held mostly by APPENDs' fsyncs). The writes of an
// IMAP session instead commit with synchronous=NORMAL, which is the same
// commit without that fsync, and free the writer: an APPEND
// (AppendMessage), COPY and MOVE, an EXPUNGE, a change of flags (STORE, a
// \Recent claim). The log is then fsynced outside the writer (walSync),
// one fsync for every such change committed before it started (group
// commit). Deliveries, the relay queue, a migration's batches
// (BeginMailbox) and the rest keep FULL.
//
// What is durable when:
//   - An APPEND, COPY, MOVE or EXPUNGE waits for that fsync
//     (writeGrouped): on disk before its OK, and told to the other
//     sessions' IDLE only then.
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
//     of a later APPEND, EXPUNGE or COPY means the flag change is on disk
//     too (STORE \Deleted then EXPUNGE: once EXPUNGE is OK, both are
//     durable).
//   - A \Recent claim waits for no fsync and starts none
//     (writeUnsyncedThen, recent.go): nothing is promised on it.
//
// Seen before durable: another session reads a NORMAL commit (a NOOP, a
// SELECT, another process) before its fsync. A power cut then loses what
// it saw; the UIDs and MODSEQs it saw are never given again, because a
// NORMAL commit only shows numbers below per-mailbox marks made durable
// before (marks.go, which also says what a lost EXPUNGE does).
//
// A failed fsync stops the store (ErrStopped, Store.Stopped), as
// PostgreSQL stops since 2018 ("fsyncgate"): after a failed fsync the
// kernel may have dropped the pages it could not write and a later fsync
// succeeds without them, so nothing after it could be trusted as durable.
// The command that waited for it is answered neither OK (not durable) nor
// NO (for an APPEND already seen, a client told NO appends again: a
// duplicate if the first copy survives); the IMAP front end ends the
// connection with an untagged BYE, the Core fails (serve exits non-zero),
// and the next start recovers what the log holds on disk. Every write
// until then is refused with ErrStopped; reads go on.
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
	armed     bool // lazyTimer will fire
	closed    bool
	// failed is set by the first fsync that failed, for good: every sync
	// after it fails with it (see stopped), and stop is closed.
	failed error
	stop   chan struct{}
	// fullCommitted, when set (tests), is called after each commit made
	// durable by SQLite's own fsync (Tx.Commit, synchronous=FULL).
	fullCommitted func()
	log           *slog.Logger
}

// syncDepth is how many fsyncs of the log run at once at most.
const syncDepth = 2

func newWALSync(dbPath string, log *slog.Logger) *walSync {
	w := &walSync{path: dbPath + "-wal", syncFile: (*os.File).Sync, lazyDelay: flagSyncBound, log: log, stop: make(chan struct{})}
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
	if w.closed || w.armed {
		return
	}
	w.armed = true
	if w.lazyTimer == nil {
		w.lazyTimer = time.AfterFunc(w.lazyDelay, w.lazySync)
	} else {
		w.lazyTimer.Reset(w.lazyDelay)
	}
}

// lazySync makes the commits noted by later durable, if no fsync did yet.
func (w *walSync) lazySync() {
	w.mu.Lock()
	w.armed = false
	pending := !w.closed && w.done < w.lazy
	w.mu.Unlock()
	if !pending {
		return
	}
	// The flag changes were answered OK; an fsync that fails stops the
	// store (sync logs it).
	w.sync()
}

// usable reports whether the store is neither closed nor stopped.
func (w *walSync) usable() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.closed && w.failed == nil
}

// Stopped is closed when the store stopped after a failed fsync of its
// SQLite log (ErrStopped; Stopped's error says which): the process must
// then stop, and be started again to recover from the log on disk. Never
// closed on PostgreSQL.
func (s *Store) Stopped() <-chan struct{} {
	if s.wal == nil {
		return nil
	}
	return s.wal.stop
}

// StoppedErr is why the store stopped (wrapping ErrStopped), or nil.
func (s *Store) StoppedErr() error { return s.wal.stopped() }

// stopped returns the failure of the fsync that stopped the store, or nil.
func (w *walSync) stopped() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
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

// logDurable returns once every commit made before the call is durable: at
// once on PostgreSQL (durable at commit), after an fsync of the log on
// SQLite. For what deletes bytes on the strength of what it read (Compact).
func (s *Store) logDurable() error {
	if s.wal == nil {
		return nil
	}
	return s.wal.sync()
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
		if w.failed != nil {
			return w.failed
		}
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
			// What the log held may not be on disk, and no later fsync
			// can tell (after a failed fsync the kernel may have dropped
			// the pages it could not write, and a second fsync then
			// succeeds): the store stops (stopped).
			return w.failLocked(err)
		}
		w.done = max(w.done, upto)
	}
	return nil
}

// failLocked stops the store after err, a failed fsync of the log (see
// sync), and returns ErrStopped. w.mu is held.
func (w *walSync) failLocked(err error) error {
	if w.failed == nil {
		w.failed = fmt.Errorf("%w: %w", ErrStopped, err)
		close(w.stop)
		w.log.Error("store: an fsync of the database's log failed; the store refuses every write until it is opened again (restart the server)", "log", w.path, "err", err)
	}
	return w.failed
}

// failedCommit stops the store when err, a commit's, says SQLite's own
// fsync failed (a FULL commit syncs the log before it returns; any commit
// may sync the log's header when it restarts it): the pages the kernel
// could not write may be gone, earlier commits' among them, and the next
// fsync on SQLite's descriptor succeeds (Linux reports a writeback error
// once per open file), so a later commit answered OK (an SMTP 250) could
// lie beyond a hole in the log that recovery stops at. It returns err, or
// ErrStopped beside it.
func (w *walSync) failedCommit(err error) error {
	var se sqlite3.Error
	if w == nil || !errors.As(err, &se) || (se.ExtendedCode != sqlite3.ErrIoErrFsync && se.ExtendedCode != sqlite3.ErrIoErrDirFsync) {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return errors.Join(err, w.failLocked(err))
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

// ShortWrites is how many short writes (a STORE, an APPEND, COPY, MOVE or
// EXPUNGE of a session, a \Recent claim, a LOGIN's counts: each a turn of
// the writer, or a transaction of its own on PostgreSQL) this Store was
// asked for, for tests and benchmarks that count them.
func (s *Store) ShortWrites() int64 { return s.shortWrites.Load() }

// writeGrouped is write for a transaction of mail (an APPEND, COPY, MOVE
// or EXPUNGE): it commits with synchronous=NORMAL on the writer
// connection, waits until walSync made the commit durable, and then tells
// the watchers (see the comment at the top of this file). On PostgreSQL
// (no walSync) it is write.
func (s *Store) writeGrouped(ctx context.Context, fn func(tx wtx, ch *changes) error) error {
	return s.writeNormal(ctx, fn, nil, syncWait)
}

// writeFlags is writeGrouped for a change of flags only: it tells the
// watchers and returns once committed, and has walSync make it durable
// within flagSyncBound (walSync.later).
func (s *Store) writeFlags(ctx context.Context, fn func(tx wtx, ch *changes) error) error {
	return s.writeNormal(ctx, fn, nil, syncSoon)
}

// writeUnsyncedThen is writeGrouped that neither waits for an fsync nor
// asks for one, and calls ended, when not nil, once the transaction ended
// (committed or not): for a change that may be lost in a power cut, and
// only there, because nothing was promised on it (a \Recent claim,
// recent.go). It is durable with the next fsync of the log, which any
// STORE, EXPUNGE or APPEND makes.
func (s *Store) writeUnsyncedThen(ctx context.Context, fn func(tx wtx, ch *changes) error, ended func()) error {
	return s.writeNormal(ctx, fn, ended, syncNone)
}

// writeCtx is the context the statements of a write run by writeNormal
// run with: ctx without its end on SQLite, readCtx's rule for reads. With a
// ctx that can end, database/sql starts a goroutine to watch each
// statement's rows (Rows.awaitDone) and the SQLite driver runs each
// statement and each step of its rows in a goroutine of its own while the
// calling one waits (mattn/go-sqlite3 SQLiteStmt.exec, SQLiteRows.Next):
// two hand-overs per statement, each waiting for a core under load, and
// all of them while the writer is held, in a batch of other sessions'
// writes (groupcommit.go). An execution trace of ten IMAP sessions
// (session 12) showed a third of the writer's busy time spent so. ctx is
// still honoured where it can be: a request whose ctx ended is not run
// (batchWrite, runRequests), and a statement on the writer waits for no
// lock of this process. PostgreSQL statements keep ctx (one there can
// wait for a row lock).
func (s *Store) writeCtx(ctx context.Context) context.Context { return s.readCtx(ctx) }

// syncMode says what a commit with synchronous=NORMAL does about the fsync
// of the log.
type syncMode int

const (
	syncWait syncMode = iota // waits for it (APPEND, COPY, MOVE, EXPUNGE)
	syncSoon                 // has one made within flagSyncBound (STORE)
	syncNone                 // nothing (a \Recent claim)
)

// writeNormal commits fn with synchronous=NORMAL, in one transaction with
// the other writes queued at once (group commit, groupcommit.go), and then
// waits for walSync, asks it for a later fsync, or neither (mode). A
// transaction that would take a mailbox past its durable marks (marks.go)
// is rolled back and run again (fn twice) as an ordinary FULL write, which
// raises them.
func (s *Store) writeNormal(ctx context.Context, fn func(tx wtx, ch *changes) error, ended func(), mode syncMode) error {
	s.shortWrites.Add(1)
	if ended == nil {
		ended = func() {}
	}
	if s.wal == nil {
		// PostgreSQL: its own commit (and commit_delay) decides.
		err := s.write(ctx, fn)
		ended()
		return err
	}
	if err := s.wal.stopped(); err != nil {
		ended()
		return err
	}
	// With the writes queued beside it (groupcommit.go).
	committed, wrote, err := s.batchWrite(ctx, fn, mode != syncWait)
	if errors.Is(err, errRunAlone) {
		var conn *sql.Conn
		if conn, err = s.w.Conn(ctx); err != nil {
			ended()
			return fmt.Errorf("store: begin: %w", err)
		}
		committed, wrote, err = s.commitNormal(ctx, conn, fn)
	}
	if errors.Is(err, errPastMark) {
		err = s.write(ctx, fn) // durable before anyone sees it
		ended()
		return err
	}
	ended()
	if committed != nil {
		switch {
		case err != nil || !wrote:
		case mode == syncWait:
			err = s.wal.sync()
		case mode == syncSoon:
			s.wal.later()
		}
		// Mail is told only after its fsync: until then a crash could
		// lose it, and no other session (an IDLE) is pushed to show it.
		// A failed fsync is told all the same: the change is committed
		// and every read already sees it, so the watchers re-read what
		// is there. A flag change is told at once, as it is answered.
		s.notify(committed)
	}
	return err
}

// commitNormal runs fn in a transaction on conn with synchronous=NORMAL,
// puts FULL back and gives conn back to the pool; if FULL cannot be put
// back the connection is discarded (the pool opens a new one with FULL):
// so is one still inside a transaction after a ROLLBACK that failed, as
// SQLite refuses to change the safety level inside one
// (TestWriterNeverPooledInTransaction). It returns the changes when the transaction committed, and
// whether it changed any row (one that changed none wrote nothing to the
// log, so it needs no fsync). Message bytes the transaction names are made
// durable before it commits, as Tx.Commit does; one that would leave a
// mailbox past its marks is rolled back (errPastMark).
//
// The transaction is BEGIN IMMEDIATE ... COMMIT on conn itself (writerTx),
// not an sql.Tx: database/sql's BeginTx wraps its context in a WithCancel
// and starts a goroutine to watch it (Tx.awaitDone), whatever the context,
// and every statement of the Tx that returns rows then starts one more
// (Rows.awaitDone): 5 goroutines per STORE (its BEGIN, the count of
// changes, the message's row, the MODSEQ's update, the marks' test), each
// a wake-up of another thread while the writer is held
// (TestLoneWriteStartsNoGoroutine). readTx did the same for the reads.
// Its own statements run without watching ctx (writeCtx): each would
// otherwise be handed to a goroutine of database/sql's or the driver's
// while the writer is held; fn runs its statements with the context it
// chooses.
func (s *Store) commitNormal(ctx context.Context, conn *sql.Conn, fn func(tx wtx, ch *changes) error) (committed *changes, wrote bool, err error) {
	bg := context.WithoutCancel(ctx)
	inTx := false
	wt := &writerTx{c: conn}
	defer func() {
		if inTx {
			// Not committed (an error, or a panic of the batch's code):
			// rolled back, as sql.Tx's deferred Rollback did.
			wt.closeRows()
			conn.ExecContext(bg, writerRollback)
		}
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
	// The writer's _txlock: the write lock is taken at once, as BeginTx
	// did on this connection.
	if _, err := conn.ExecContext(bg, writerBegin); err != nil {
		return nil, false, fmt.Errorf("store: begin: %w", err)
	}
	inTx = true
	var before int64
	if err := conn.QueryRowContext(bg, `SELECT total_changes()`).Scan(&before); err != nil {
		return nil, false, fmt.Errorf("store: %w", err)
	}
	ch := &changes{}
	if err := fn(wt, ch); err != nil {
		return nil, false, err
	}
	after, past, err := changesPastMark(bg, wt)
	if err != nil {
		return nil, false, err
	} else if past {
		return nil, false, errPastMark
	}
	err = s.checkObjects(bg, wt, ch.objects)
	if err == nil {
		err = s.packs.syncAll(ch.packs)
	}
	if err == nil {
		// writeNormal looked before; an fsync of the log may have failed
		// since: nothing more is committed (walsync.go).
		err = s.wal.stopped()
	}
	if err != nil {
		return nil, false, err
	}
	wt.closeRows()
	if _, err := conn.ExecContext(bg, `COMMIT`); err != nil {
		// SQLite may keep the transaction open after a failed COMMIT (a
		// busy lock, a full disk): the deferred ROLLBACK ends it, as the
		// driver's Tx.Commit does.
		if IsDiskFull(err) {
			s.packs.room.release() // as Tx.Commit
		}
		return nil, false, s.wal.failedCommit(fmt.Errorf("store: commit: %w", err))
	}
	inTx = false
	return ch, after != before, nil
}

// writerTx is commitNormal's transaction on the writer connection c: its
// statements run on c, and the rows they leave open (a request's fn that
// panicked, or returned before closing them) are closed before the
// COMMIT or ROLLBACK (closeRows), as sql.Tx closes them when it ends:
// database/sql's Conn.Close waits for every rows of the connection to be
// closed, for ever (TestGroupCommitPanicIsItsCallers, rows left open).
type writerTx struct {
	c    *sql.Conn
	rows []*sql.Rows
	row  []*sql.Row
}

func (t *writerTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.c.ExecContext(ctx, query, args...)
}

func (t *writerTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := t.c.QueryContext(ctx, query, args...)
	if err == nil {
		t.rows = append(t.rows, rows)
	}
	return rows, err
}

func (t *writerTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	row := t.c.QueryRowContext(ctx, query, args...)
	t.row = append(t.row, row)
	return row
}

// closeRows closes the rows of every query run so far: a Rows again (a
// no-op when closed), a Row by a Scan into nothing (which closes its rows;
// one scanned already is left as it was).
func (t *writerTx) closeRows() {
	for _, r := range t.rows {
		r.Close()
	}
	for _, r := range t.row {
		r.Scan()
	}
	t.rows, t.row = t.rows[:0], t.row[:0]
}

// writerBegin begins commitNormal's transaction: the writer's _txlock
// (store.go).
const writerBegin = `BEGIN IMMEDIATE`

// writerRollback ends commitNormal's transaction when it does not commit
// (a variable for TestWriterNeverPooledInTransaction, which makes it
// fail).
var writerRollback = `ROLLBACK`

// keptLogs holds one connection of each store closed after it stopped
// (keepLog), for the life of the process.
var keptLogs struct {
	sync.Mutex
	conns []*sql.Conn
}

// keepLog keeps the log of a store that stopped after a failed fsync
// (ErrStopped) as it is on disk, for the next start to recover from, as
// after a crash: Close calls it before it closes the connections. SQLite's
// last connection to close checkpoints the log into the database file and
// deletes it; after a failed fsync that would copy pages as read back
// (what the kernel kept of them, or what the disk had: a checkpoint does
// not check the frames' checksums, as the recovery at open does) and
// leave no log to recover from. PostgreSQL does not checkpoint either
// after such a failure: it stops and replays its log at the next start.
// So one reader connection stays open (it holds its shared lock on the
// database, and the others' close finds it and leaves the log) until the
// process ends, which it is to do once stopped (Store.Stopped). db is the
// pool to take it from: the readers, or the writer when Open failed before
// there were readers (closeAtOpen).
func (s *Store) keepLog(db *sql.DB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := db.Conn(ctx)
	if err == nil {
		// A connection that read once has its shared lock (WAL mode keeps
		// it until the connection closes).
		_, err = c.ExecContext(ctx, `SELECT count(*) FROM sqlite_schema`)
	}
	if err != nil {
		s.log.Error("store: cannot keep the log of the stopped store from being checkpointed at Close", "err", err)
		if c != nil {
			c.Close()
		}
		return
	}
	keptLogs.Lock()
	keptLogs.conns = append(keptLogs.conns, c)
	keptLogs.Unlock()
	s.log.Warn("store: the log of the stopped store is left for the next start to recover from; one connection to the database stays open until the process ends", "log", s.wal.path)
}
