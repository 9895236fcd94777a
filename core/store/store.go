// Package store is Mailferry's mail store: domains, accounts, mailboxes,
// messages, content-addressed message bytes, flags, UIDs, per-account and
// per-mailbox migration state and the relay queue, kept in one SQLite
// database or, with Options.DatabaseURL, in PostgreSQL (pgstore.go: the
// same statements and invariants; what differs is said there).
//
// Invariants:
//   - The store knows no protocol. It keeps bytes, names and numbers; the IMAP
//     front end, the migration engine and the relay give them meaning.
//   - Message bytes are blobs keyed by a hash of them (BLAKE3 in a new
//     store, SHA-256 in one from before: blobkey.go), with a reference
//     count kept by triggers; a message row only names its blob. The bytes
//     live in append-only pack files beside the database (see pack.go),
//     or with Options.Objects in S3-compatible object storage, one object
//     per blob (see object.go). What was stored is served unchanged, byte
//     for byte.
//   - A transaction naming message bytes commits only once every one of
//     them is on disk. Bytes a failed write or fsync may have lost are
//     never reported durable, even if a later fsync of the same file
//     succeeds: the transaction fails with ErrNotDurable, commits nothing,
//     and the same bytes stored again go to a new pack.
//   - Within a mailbox a UID is never reused and UIDNEXT only grows, also
//     across a power cut that loses commits other sessions saw (marks.go;
//     the same for MODSEQs). A mailbox
//     may be created with a given UIDVALIDITY and UIDNEXT, and messages may be
//     appended with given UIDs (the migration engine keeps the old server's).
//   - Every change to a mailbox's messages raises its HIGHESTMODSEQ and gives
//     the changed messages that MODSEQ; every message that leaves a mailbox
//     (expunge, move, RENAME of INBOX) is remembered with the MODSEQ of its
//     going (expunge.go), so Delta and Expunged tell what changed since any
//     MODSEQ.
//   - Every write is one transaction on the single writer connection
//     (BEGIN IMMEDIATE, WAL; on PostgreSQL one advisory lock that every
//     process's writers take, shared by the writes of one account's
//     mailboxes, which take that account's lock besides: BeginMailbox,
//     pgstore.go); readers use a separate pool and never block it. The
//     one exception: on PostgreSQL, the counts of failed logins and of
//     logins being checked (loginfail.go, logincheck.go) are written on
//     a connection of their own (not the readers': logins waiting for
//     the lock would take every read's) under an advisory lock of their
//     own, so that a login never waits for a migration's batch; on SQLite they commit
//     without waiting for an fsync (they hold no mail).
//     A write returns only once it is on disk: the log is fsynced at commit
//     (synchronous=FULL), or, on SQLite, for an append, copy, move or
//     expunge, by an fsync shared with the other such changes of the
//     moment, made after the commit freed the writer (group commit,
//     walsync.go); a change of flags only is answered at its commit and
//     durable within 100 ms. An append makes its message bytes durable
//     before it takes the writer (AppendMessage, messagebytes.go). A
//     failed fsync of the log stops the store (ErrStopped).
//   - Watchers are told of a change only after its transaction committed
//     and, for a grouped change, after the fsync that makes it durable,
//     also of one committed by another process on the same database (seen
//     within Options.ChangePoll, see watch.go; on PostgreSQL at once,
//     by LISTEN/NOTIFY).
//   - Times that processes compare (copy leases, the relay queue's
//     claims, the object sweep's mark) are the database's clock on
//     PostgreSQL, so nodes whose clocks disagree stay correct (clock.go).
//   - Failed logins are counted per key for every process on the
//     database (loginfail.go); the table holds only keys that failed
//     within their capacity × refill.
//   - An account is copied by one process at a time: the copier holds its
//     lease (see lease.go). Why a copy waits (to retry, for disk space, for
//     a login) is recorded beside it (wait.go).
//   - A full disk is told apart (IsDiskFull) and leaves the database room:
//     the packs directory keeps a reserve file, given back when a pack
//     write fails for a full disk (reserve.go).
//   - Mail is readable by Mailferry's user only: the database (and so its
//     -wal and -shm, which SQLite makes with its mode), the packs
//     directory, the packs and their lock file are made 0600 or 0700
//     whatever the umask, and the packs directory is made 0700 if it is
//     looser. A data directory Open creates (with any missing parent) is
//     0700; one that exists, and a database file that exists, are left as
//     they are.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3" // SQLite driver
)

// Errors returned by the store. Callers test them with errors.Is.
var (
	ErrNotFound    = errors.New("store: not found")
	ErrExists      = errors.New("store: already exists")
	ErrBadPassword = errors.New("store: wrong password")
	// ErrPasswordPending: the account was made with HashLater and its
	// hash is not stored yet (FinishPassword); no password opens it here.
	ErrPasswordPending = errors.New("store: password not stored yet")
	ErrInvalid         = errors.New("store: invalid argument")
	// ErrNotDurable is a temporary failure: message bytes could not be
	// made durable (a write or fsync of their pack failed), so nothing
	// naming them was committed. Stage or append the message again.
	ErrNotDurable = errors.New("store: message bytes not durable")
	// ErrStopped: an fsync of the SQLite database's log failed after a
	// commit that other sessions may already see, so what is on disk is
	// not known (walsync.go). The command that waited for it is neither
	// done nor undone (answer it neither OK nor NO: a client told NO
	// appends again, and the first copy may well be there); the store
	// refuses every write from then on. Restart the process: opening the
	// store again recovers what the log holds on disk, as PostgreSQL
	// does after a failed fsync.
	ErrStopped = errors.New("store: stopped after a failed fsync of the database's log; restart to recover")
)

// Options tunes a Store. A nil *Options means defaults.
type Options struct {
	// Logger receives the store's diagnostics; nil means slog.Default().
	Logger *slog.Logger
	// Summarize, when set, is called on the bytes of every appended message
	// and its results are kept beside the message (see Message.Envelope and
	// Message.Structure), so readers need not parse the message again. The
	// store treats both as opaque. A Summarize that fails returns nils: a
	// message that cannot be parsed is stored all the same.
	Summarize func(raw []byte) (envelope, structure []byte)
	// Readers is the size of the read connection pool; 0 means 4.
	Readers int
	// WriterCacheKiB bounds the page cache of the connection that writes
	// (SQLite), in KiB; 0 means sqliteCacheKiB, as every connection's.
	// SQLite's cache grows with the pages a connection touches up to its
	// bound, so the writer's grows with the database: `mailferry
	// migrate` sets a small one, so that its peak RSS does not grow with
	// the mailbox's size (README, "mailferry migrate, the whole process").
	// PostgreSQL: no effect.
	WriterCacheKiB int
	// PackSize is the size at which a pack file of message bytes is full
	// and the next one is started; 0 means 256 MiB.
	PackSize int64
	// MaxHashes bounds the password hashes (argon2id, 19 MiB each) computed
	// at once, by logins and account creation alike, so that a login flood
	// cannot exhaust memory; 0 means the number of CPUs, at most 4.
	MaxHashes int
	// LoginCache is how long a password verified at login is remembered
	// in memory (as an HMAC under a per-process random key, logincache.go),
	// so that the account's next logins with that same password skip the
	// argon2id hash; 0 means DefaultLoginCache (5 minutes), negative none.
	LoginCache time.Duration
	// Objects, when set, keeps new message bytes in S3-compatible object
	// storage instead of pack files (object.go); bytes stored in packs
	// before stay there and are read as before. The bucket is made if it
	// is missing; Open fails, in words, if the object storage cannot be
	// used.
	Objects *ObjectStorage
	// ChangePoll is how often, while anyone watches, the store checks
	// whether another process (a `mailferry migrate` beside `serve`)
	// committed to the database, and then tells every watcher; 0 means
	// DefaultChangePoll, a negative value never. On PostgreSQL other
	// processes' commits are told at once (LISTEN/NOTIFY, pgstore.go);
	// a negative value turns that off too.
	ChangePoll time.Duration
	// DatabaseURL, when set (postgres://user:password@host/database),
	// keeps the metadata in that PostgreSQL database instead of the
	// SQLite file at Open's path; the message bytes stay in the pack
	// files beside that path. It is never logged whole
	// (RedactDatabaseURL).
	DatabaseURL string
	// Exclusive opens the store only while no other Store, in any
	// process, has it open, and keeps every other open out until Close
	// (ErrInUse, see inuse.go): `store copy` reads its source so, since
	// the source must not change while it is copied.
	Exclusive bool
}

// DefaultChangePoll is Options.ChangePoll's default.
const DefaultChangePoll = 200 * time.Millisecond

// Store is an open mail store. It is safe for concurrent use.
type Store struct {
	w, r *sql.DB
	// counts is PostgreSQL's pool of one connection for the shared login
	// counts' writes (logincheck.go writeCounters): logins waiting for
	// their lock wait there, not on the readers' connections. Nil on
	// SQLite.
	counts    *sql.DB
	d         *dialect
	where     string // the SQLite file, or the redacted database URL
	log       *slog.Logger
	summarize func([]byte) ([]byte, []byte)
	packs     *packs
	wal       *walSync      // group commit of flag changes and expunges (walsync.go)
	ckpt      *checkpointer // SQLite's checkpoints (checkpoint.go)
	// sweepMarked, when set (tests), is called by the object sweep once
	// its mark is committed, before it reads which objects are named.
	sweepMarked func()
	commits     atomic.Int64 // transactions committed through Tx.Commit (Commits)
	shortWrites atomic.Int64 // writeNormal's writes (ShortWrites)
	reads       atomic.Int64 // read transactions begun (ReadTransactions)
	objects     *objects     // nil: message bytes go to packs

	mu       sync.Mutex
	watchers map[int64]map[*Watcher]struct{} // by account ID; 0 = all accounts

	// claims has the \Recent claims of a mailbox take turns (recent.go),
	// by mailbox ID modulo its size.
	claims [16]sync.Mutex

	// batch queues the short writes run in one transaction
	// (groupcommit.go); nil on PostgreSQL.
	batch *writeBatcher

	hashes *hashing           // bounds concurrent password hashing (account.go)
	logins *loginCache        // verified logins remembered in memory (logincache.go)
	cancel context.CancelFunc // stops the goroutines below
	wg     sync.WaitGroup     // pollOthers, listenOthers
	self   string             // this Store among the PostgreSQL engine's listeners (pgstore.go)
	clk    *clock             // the time leases and sweeps compare (clock.go)
	inUse  *os.File           // holds the lock of lockInUse until Close
	id     string             // the store's identity (identity.go)
	b3     bool               // new blob keys are BLAKE3's (blobkey.go)

	// With object storage (epoch.go): when this process opened the store,
	// what stops its epochs, and why its sweep deletes nothing.
	opened    time.Time
	placeNow  string // where the database is (place.go)
	epochStop func()
	heldMu    sync.Mutex
	held      error
}

// Engine names the engine keeping the store's metadata: EngineSQLite or
// EnginePostgres.
func (s *Store) Engine() string { return s.d.engine }

// Database says where the metadata is: the SQLite file, or the PostgreSQL
// URL with its password hidden.
func (s *Store) Database() string { return s.where }

// Blobs says where new message bytes go: "S3 http(s)://endpoint/bucket",
// or "packs in <directory>".
func (s *Store) Blobs() string {
	if s.objects != nil {
		return "S3 " + s.objects.String()
	}
	return "packs in " + s.packs.dir
}

// Open opens (creating if needed) the store in the SQLite file at path and
// brings its schema up to date.
func Open(path string, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	if err := mkdirPrivate(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	lock, err := lockInUse(path, opts.Exclusive)
	if err != nil {
		return nil, err
	}
	var s *Store
	if opts.DatabaseURL != "" {
		s, err = openPostgres(path, opts)
	} else {
		s, err = openSQLite(path, opts)
	}
	if err != nil {
		lock.Close()
		return nil, err
	}
	s.inUse = lock
	if err := s.identify(context.Background()); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// identify reads (or makes) the store's ID and, with object storage,
// checks that the bucket is this store's, marking it so if it may be
// (identity.go), before anything reads or writes a blob.
func (s *Store) identify(ctx context.Context) error {
	if err := s.loadID(ctx); err != nil {
		return err
	}
	if err := s.loadKeyForm(ctx); err != nil {
		return err
	}
	if s.objects == nil {
		return nil
	}
	if err := s.claimBucket(ctx); err != nil {
		return err
	}
	if err := s.notePlace(ctx); err != nil {
		return err
	}
	// Told at once, not at the first sweep: another database of this
	// store uses the bucket, or this one moved (epoch.go, place.go).
	// Serving goes on all the same.
	if _, _, err := s.checkEpochs(ctx); errors.Is(err, ErrDiverged) {
		s.log.Warn("store: this store deletes nothing in its bucket", "err", err)
	} else if err != nil {
		s.log.Warn("store: could not check the bucket's epochs; the sweep checks again", "err", err)
	}
	s.startEpochs()
	return nil
}

// sqliteCacheKiB is the page cache of each SQLite connection, in KiB
// (PRAGMA cache_size), but the writer's with Options.WriterCacheKiB.
const sqliteCacheKiB = 16000

// openSQLite opens the store with its metadata in the SQLite file at path.
func openSQLite(path string, opts *Options) (*Store, error) {
	// SQLite would create the database 0644 (less the umask), and its
	// -wal and -shm files with the database's mode.
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := newStore(sqliteDialect, path, opts)
	s.wal = newWALSync(path, s.log)
	s.batch = newWriteBatcher()
	common := url.Values{
		"_busy_timeout": {strconv.FormatInt(sqliteBusyTimeout.Milliseconds(), 10)},
		"_foreign_keys": {"on"},
		// FULL: a commit is on disk (WAL fsynced) before it returns, so
		// mail acknowledged to a client (APPEND, SMTP 250) survives a power
		// loss; NORMAL would only survive a process crash.
		"_synchronous": {"FULL"},
		"_cache_size":  {strconv.Itoa(-sqliteCacheKiB)},
		// Prepared statements are kept per connection, not made anew per query.
		"_stmt_cache_size": {"64"},
	}
	wq := url.Values{"_txlock": {"immediate"}}
	for k, v := range common {
		wq[k] = v
	}
	if opts.WriterCacheKiB > 0 {
		wq.Set("_cache_size", strconv.Itoa(-opts.WriterCacheKiB))
	}
	var err error
	s.ckpt = newCheckpointer(path)
	s.w = sql.OpenDB(newWriterConnector("file:"+uriPath(path)+"?"+wq.Encode(), s.ckpt))
	s.w.SetMaxOpenConns(1)
	s.w.SetConnMaxIdleTime(0)
	// page_size only takes effect before the file switches to WAL.
	if err := toWAL(s.w); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := s.upgrade(); err != nil {
		s.closeAtOpen()
		return nil, err
	}
	// New UIDs and MODSEQs start above any a client may have seen before a
	// power cut (marks.go).
	if err := s.jumpToMarks(); err != nil {
		s.closeAtOpen()
		return nil, err
	}
	if s.packs, err = openPacks(path+"-packs", packSize(opts)); err != nil {
		s.w.Close()
		return nil, err
	}
	if opts.Objects != nil {
		if s.objects, err = openObjects(opts.Objects); err != nil {
			s.packs.close()
			s.w.Close()
			return nil, err
		}
	}
	s.r, err = sql.Open("sqlite3", "file:"+uriPath(path)+"?"+common.Encode())
	if err != nil {
		if s.objects != nil {
			s.objects.close()
		}
		s.packs.close()
		s.w.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	n := opts.Readers
	if n <= 0 {
		n = 4
	}
	s.r.SetMaxOpenConns(n)
	// All n stay open when idle: database/sql keeps 2 by default, so with
	// more than 2 reads at once (ten IMAP sessions) a read's connection was
	// closed when it ended and the next read opened a new one, paying the
	// open, its pragmas and the schema again and losing its prepared
	// statements (_stmt_cache_size): a FETCH under load spent a tenth of its
	// time there.
	s.r.SetMaxIdleConns(n)
	// The checkpointer's own connection (checkpoint.go).
	cq := url.Values{}
	for k, v := range common {
		cq[k] = v
	}
	// A RESTART checkpoint waits this long at most for the readers of the
	// log to end while it holds the writer (checkpoint.go).
	cq.Set("_busy_timeout", strconv.FormatInt(ckptWait.Milliseconds(), 10))
	if s.ckpt.db, err = sql.Open("sqlite3", "file:"+uriPath(path)+"?"+cq.Encode()); err != nil {
		s.r.Close()
		if s.objects != nil {
			s.objects.close()
		}
		s.packs.close()
		s.w.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s.ckpt.db.SetMaxOpenConns(1)
	s.ckpt.db.SetConnMaxIdleTime(0)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.checkpoints(ctx)
	}()
	if poll := opts.ChangePoll; poll >= 0 {
		if poll == 0 {
			poll = DefaultChangePoll
		}
		last, err := s.dataVersion(ctx)
		if err != nil {
			cancel()
			s.Close()
			return nil, err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.pollOthers(ctx, poll, last)
		}()
	}
	return s, nil
}

// newStore is the Store both engines open, yet without its databases.
func newStore(d *dialect, where string, opts *Options) *Store {
	s := &Store{
		d:         d,
		where:     where,
		log:       opts.Logger,
		summarize: opts.Summarize,
		watchers:  map[int64]map[*Watcher]struct{}{},
		hashes:    newHashing(opts.MaxHashes),
		logins:    newLoginCache(opts.LoginCache),
		clk:       newClock(),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

func packSize(opts *Options) int64 {
	if opts.PackSize <= 0 {
		return 256 << 20
	}
	return opts.PackSize
}

// mkdirPrivate creates dir, and any missing parent, 0700 whatever the
// umask. A directory that exists is left as it is: it may be a user's.
func mkdirPrivate(dir string) error {
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return nil
	}
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrNotExist) {
		if parent := filepath.Dir(dir); parent != dir {
			if err := mkdirPrivate(parent); err != nil {
				return err
			}
			err = os.Mkdir(dir, 0o700)
		}
	}
	if errors.Is(err, fs.ErrExist) {
		if st, serr := os.Stat(dir); serr == nil && st.IsDir() {
			return nil
		}
	}
	if err != nil || runtime.GOOS == "windows" {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// createPrivate creates the empty file path 0600 whatever the umask, unless
// it exists (a file that exists is left as it is).
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	} else if err != nil {
		return err
	}
	if err := chmodPrivate(f, 0o600); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// chmodPrivate sets f's permissions to perm, which the umask may have
// narrowed. Windows has no such permissions.
func chmodPrivate(f *os.File, perm fs.FileMode) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	return f.Chmod(perm)
}

// Close closes the database. Watchers are closed too.
func (s *Store) Close() error {
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
	}
	s.mu.Lock()
	for _, set := range s.watchers {
		for w := range set {
			w.closeLocked()
		}
	}
	s.watchers = map[int64]map[*Watcher]struct{}{}
	s.mu.Unlock()
	if s.objects != nil {
		s.stopEpochs()
	}
	// Flag changes answered before their fsync: on disk now.
	serr := s.wal.settle()
	if s.wal != nil && serr == nil && s.wal.usable() {
		// Everything is durable: no gap at the next Open (marks.go).
		// Failing, it leaves only a gap.
		if err := s.lowerMarks(); err != nil {
			s.log.Warn("store: durable marks left raised; the next open skips some UIDs", "err", err)
		}
	}
	if s.wal.stopped() != nil {
		s.keepLog(s.r)
	}
	var cerr error
	if s.ckpt != nil && s.ckpt.db != nil {
		cerr = s.ckpt.db.Close()
	}
	err := errors.Join(serr, cerr, s.r.Close(), s.w.Close())
	if s.ckpt != nil {
		s.ckpt.close()
	}
	if s.counts != nil {
		err = errors.Join(err, s.counts.Close())
	}
	s.wal.close()
	s.packs.close()
	if s.objects != nil {
		s.objects.close()
	}
	if s.inUse != nil {
		s.inUse.Close()
	}
	return err
}

// write runs fn in one write transaction and, after it committed, tells the
// watchers of the changes fn recorded.
func (s *Store) write(ctx context.Context, fn func(tx wtx, ch *changes) error) error {
	t, err := s.Begin(ctx)
	if err != nil {
		return err
	}
	defer t.Rollback()
	if err := fn(t.tx, t.ch); err != nil {
		return err
	}
	return t.Commit()
}

// closeAtOpen closes the writer of a store whose Open failed in a commit
// (a schema step, jumpToMarks). When SQLite's fsync of the log failed in
// it (the store stopped, failedCommit), the log is kept for the next
// start's recovery, as Close keeps it (keepLog): closing the last
// connection would checkpoint the frames read back after the failure.
func (s *Store) closeAtOpen() {
	if s.wal.stopped() != nil {
		s.keepLog(s.w)
	}
	s.w.Close()
}

// execAlone runs one write statement on the writer as a commit of its own
// (FULL on SQLite): the store's marks, epochs and sweep marks, written
// outside write. SQLite's own fsync of the log failing in it stops the
// store (failedCommit), as in every other commit: else Close would
// checkpoint frames read back after the failed fsync into the database
// and delete the log (keepLog).
func (s *Store) execAlone(ctx context.Context, q string, args ...any) error {
	if _, err := s.w.ExecContext(ctx, q, args...); err != nil {
		return s.wal.failedCommit(err)
	}
	return nil
}

// txStmt is a statement a write runs again and again in its transaction
// (one per message), run through the SQLite driver's cache of prepared
// statements (_stmt_cache_size; pgx's on PostgreSQL): tx.PrepareContext
// bypasses that cache and compiles the statement anew with each call, on
// the writer connection, in every STORE, EXPUNGE, COPY and MOVE (about
// 10 µs each in a profile of BenchmarkStoreAlone: two a STORE).
// wtx is what a write's statements run on: an *sql.Tx (Begin, write's
// FULL commits, PostgreSQL), or on SQLite's grouped writes the writer
// connection inside the batch's BEGIN ... COMMIT (*sql.Conn, see
// commitNormal: database/sql's Tx starts a goroutine per transaction and
// per statement that returns rows).
type wtx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type txStmt struct {
	tx wtx
	q  string
}

func (s txStmt) ExecContext(ctx context.Context, args ...any) (sql.Result, error) {
	return s.tx.ExecContext(ctx, s.q, args...)
}

func (s txStmt) QueryRowContext(ctx context.Context, args ...any) *sql.Row {
	return s.tx.QueryRowContext(ctx, s.q, args...)
}

// rowScanner is what *sql.Row and *sql.Rows have in common.
type rowScanner interface{ Scan(...any) error }

// queryAll runs a read query and scans every row with scan.
func queryAll[T any](ctx context.Context, db *sql.DB, scan func(rowScanner) (T, error), q string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return out, nil
}

func now() int64 { return time.Now().Unix() }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sqliteBusyTimeout is how long a connection waits for a lock another
// holds (busy_timeout) before "database is locked".
const sqliteBusyTimeout = 10 * time.Second

// toWAL switches a new database file to WAL (and its page size first,
// which counts only before). Several processes opening a new file at once
// (serve and migrate started together) each ask: while the file is still
// in rollback mode, one holding its read lock and asking for the write
// lock that another reader also waits for is answered "database is
// locked" at once (SQLite's deadlock rule, before the busy timeout), so
// the loser asks again, for as long as the busy timeout.
func toWAL(w *sql.DB) error {
	deadline := time.Now().Add(sqliteBusyTimeout)
	for {
		_, err := w.Exec(`PRAGMA page_size = 8192; PRAGMA journal_mode = WAL`)
		var se sqlite3.Error
		if err == nil || !errors.As(err, &se) || se.Code != sqlite3.ErrBusy || time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Duration(1+rand.IntN(10)) * time.Millisecond)
	}
}
