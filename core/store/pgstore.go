package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// The PostgreSQL engine keeps the same tables as SQLite (pgschema.go) in a
// database that several processes, on several machines, share. What
// SQLite gives one machine, it gets so:
//
//   - One writer at a time per account: a write transaction first takes
//     one transaction-scoped advisory lock (pg_advisory_xact_lock), the
//     same for every node, and holds it until it commits or rolls back.
//     So the store's read-then-write steps (the next UID, the next MODSEQ,
//     a lease) run as if alone, as under SQLite's BEGIN IMMEDIATE, and
//     UIDs and MODSEQs stay strictly increasing per mailbox whatever the
//     number of writers. Reads take no lock. A transaction that writes
//     messages into one account's mailboxes only (BeginMailbox: an APPEND,
//     a migration's batch) takes that lock shared and then the account's
//     own lock (beginAccountWrite), so that two accounts' appends on two
//     nodes do not wait for each other; every other write (expunge, which
//     may delete a blob row another account's append would name, the
//     queue's claims, sweeps, schema) takes it exclusive and so runs
//     alone. Appends of several accounts touch shared blob rows only by
//     INSERT ... ON CONFLICT and a reference count raised in a row lock,
//     never lowered or deleted outside the exclusive lock; one append
//     takes its blob rows in key order (appendMany), so two accounts'
//     batches naming the same bodies in other orders cannot deadlock. A
//     deadlock or serialization failure that still happens is told as
//     ErrConflict (conflict.go): the transaction may be run again.
//   - Other processes' commits: a write transaction that changed
//     something sends, as it commits, one NOTIFY naming the accounts it
//     changed; every Store LISTENs on its own connection and tells its
//     watchers (what SQLite's data_version polling does, at once).
//     Notifications lost while that connection was down are made up for
//     by telling every watcher when it is back.
//   - A node that vanishes holding a lock (a VM paused, a network cut)
//     holds it only until PostgreSQL sees its connection dead: each
//     connection asks the server for TCP keepalives after 30 s of silence
//     (pgKeepaliveSettings; the server's default is the OS's, two hours),
//     and to give up on data the node has not acknowledged for a minute
//     (tcp_user_timeout, PostgreSQL 12 and later: keepalives are sent only
//     on an idle connection, and a node frozen while the server's last
//     answer was on its way would hold on for the retransmissions' 15
//     minutes), so every other node's writes and logins wait about a
//     minute, not hours. A node whose process stopped (SIGSTOP, a
//     debugger, a VM frozen while its kernel still answers the probes) is
//     told by idle_in_transaction_session_timeout instead: the server ends
//     a session idle inside a transaction for pgIdleInTx (its transaction
//     rolls back, its locks go); no transaction of ours waits that long
//     between two statements, but `store copy`'s into an empty target,
//     which stages message bytes between them and is exempt (SET LOCAL,
//     copier.beginTarget).
//   - Message bytes stay in the pack files beside Open's path, so that
//     today several Stores share bytes only through one directory.

// pgKeepaliveSettings make the server probe a silent connection after
// 30 s, every 10 s, and drop it after 3 probes unanswered: a node that
// vanished holding a lock releases it within about a minute. (Ignored by
// the server on a Unix socket, where a dead peer is seen at once.)
const pgKeepaliveSettings = `SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3`

// pgIdleInTx is how long a session may sit idle inside a transaction
// before the server ends it (see above): a stopped process's locks are
// freed then. A variable for tests.
var pgIdleInTx = 60 * time.Second

// pgUserTimeoutSetting makes the server drop a connection whose peer has
// left data it sent unacknowledged for a minute (PostgreSQL 12 and later;
// ignored on a Unix socket, and logged by the server, not failed, where
// the OS lacks TCP_USER_TIMEOUT).
const pgUserTimeoutSetting = `SET tcp_user_timeout = 60000`

// pgDurableCommits makes a connection's commits durable before they
// return where the server, database or role says synchronous_commit = off
// (a tuned or managed server's default, which returns, and shows, a commit
// up to 3 × wal_writer_delay before its WAL is flushed): an APPEND's OK, an
// SMTP 250 and the UIDs and MODSEQs other sessions see are promised at
// commit (marks.go covers SQLite only). Any other value (local, on,
// remote_write, remote_apply) is durable on this server and stands.
const pgDurableCommits = `SELECT set_config('synchronous_commit', 'on', false) WHERE current_setting('synchronous_commit') = 'off'`

// pgMajor is the major version in a server_version parameter ("15.4
// (Debian 15.4-1)" is 15), or 0.
func pgMajor(version string) int {
	i := 0
	for i < len(version) && '0' <= version[i] && version[i] <= '9' {
		i++
	}
	n, _ := strconv.Atoi(version[:i])
	return n
}

// pgChannel is the LISTEN/NOTIFY channel of the store's changes.
const pgChannel = "mailferry_changes"

// openPostgres opens the store with its metadata in the PostgreSQL
// database at opts.DatabaseURL and its message bytes in packs beside path,
// or in object storage (opts.Objects).
func openPostgres(path string, opts *Options) (*Store, error) {
	if err := CheckDatabaseURL(opts.DatabaseURL); err != nil {
		return nil, err
	}
	redacted := RedactDatabaseURL(opts.DatabaseURL)
	cfg, err := pgx.ParseConfig(opts.DatabaseURL)
	if err != nil {
		// pgx's parse errors may quote the URL; say which, redacted.
		return nil, fmt.Errorf("%w: database URL %s cannot be used", ErrInvalid, redacted)
	}
	if err := mkdirPrivate(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	cfg.AfterConnect = func(ctx context.Context, pc *pgconn.PgConn) error {
		if err := pc.Exec(ctx, pgKeepaliveSettings).Close(); err != nil {
			return fmt.Errorf("store: %s: ask for TCP keepalives: %w", redacted, err)
		}
		idle := fmt.Sprintf("SET idle_in_transaction_session_timeout = %d", pgIdleInTx.Milliseconds())
		if err := pc.Exec(ctx, idle).Close(); err != nil {
			return fmt.Errorf("store: %s: set a bound on idle transactions: %w", redacted, err)
		}
		if err := pc.Exec(ctx, pgDurableCommits).Close(); err != nil {
			return fmt.Errorf("store: %s: ask for durable commits: %w", redacted, err)
		}
		if pgMajor(pc.ParameterStatus("server_version")) >= 12 {
			if err := pc.Exec(ctx, pgUserTimeoutSetting).Close(); err != nil {
				return fmt.Errorf("store: %s: ask for a TCP user timeout: %w", redacted, err)
			}
		}
		return nil
	}
	s := newStore(postgresDialect, redacted, opts)
	var id [8]byte
	rand.Read(id[:])
	s.self = hex.EncodeToString(id[:])

	s.w = sql.OpenDB(pgConnector{stdlib.GetConnector(*cfg)})
	s.w.SetMaxOpenConns(1)
	s.w.SetConnMaxIdleTime(0)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	fail := func(err error) (*Store, error) {
		cancel()
		s.w.Close()
		if s.r != nil {
			s.r.Close()
		}
		if s.counts != nil {
			s.counts.Close()
		}
		if s.packs != nil {
			s.packs.close()
		}
		if s.objects != nil {
			s.objects.close()
		}
		return nil, err
	}
	octx, ocancel := context.WithTimeout(ctx, 30*time.Second)
	defer ocancel()
	if err := s.w.PingContext(octx); err != nil {
		return fail(fmt.Errorf("store: open %s: %w", redacted, err))
	}
	if err := s.upgradePostgres(octx); err != nil {
		return fail(err)
	}
	if s.packs, err = openPacks(path+"-packs", packSize(opts)); err != nil {
		return fail(err)
	}
	if opts.Objects != nil {
		if s.objects, err = openObjects(opts.Objects); err != nil {
			return fail(err)
		}
	}
	s.r = sql.OpenDB(pgConnector{stdlib.GetConnector(*cfg)})
	n := opts.Readers
	if n <= 0 {
		n = 4
	}
	s.r.SetMaxOpenConns(n)
	s.r.SetMaxIdleConns(n)
	// The login counts' writes wait for one lock of every node (a flood
	// of logins, a node frozen holding it): on a connection of their own,
	// so that reads never wait behind them for a connection.
	s.counts = sql.OpenDB(pgConnector{stdlib.GetConnector(*cfg)})
	s.counts.SetMaxOpenConns(1)
	s.counts.SetMaxIdleConns(1)
	if opts.ChangePoll >= 0 {
		conn, err := s.listen(octx, cfg)
		if err != nil {
			return fail(err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.listenOthers(ctx, cfg, conn)
		}()
	}
	return s, nil
}

// listen opens the connection that LISTENs for other Stores' commits.
func (s *Store) listen(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: listen on %s: %w", s.where, err)
	}
	if _, err := conn.Exec(ctx, `LISTEN `+pgChannel); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("store: listen on %s: %w", s.where, err)
	}
	return conn, nil
}

// listenOthers tells watchers of other Stores' commits until ctx ends
// (Close). When the connection breaks it tells every watcher (commits may
// have been missed) and connects again, waiting up to 5 s between tries;
// a panic is logged with its stack and the listening goes on.
func (s *Store) listenOthers(ctx context.Context, cfg *pgx.ConnConfig, conn *pgx.Conn) {
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		if conn == nil {
			var err error
			if conn, err = s.listen(ctx, cfg); err != nil {
				if ctx.Err() == nil {
					s.log.Warn("store: cannot see other processes' commits", "err", err)
				}
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
				wait = min(2*wait, 5*time.Second)
				continue
			}
			wait = 100 * time.Millisecond
			s.notifyAll()
		}
		if err := s.listenOnce(ctx, conn); err != nil && ctx.Err() == nil {
			s.log.Warn("store: lost sight of other processes' commits; reconnecting", "err", err)
		}
		conn.Close(context.Background())
		conn = nil
	}
}

// listenOnce tells watchers of the notifications conn receives, until it
// fails or ctx ends.
func (s *Store) listenOnce(ctx context.Context, conn *pgx.Conn) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("store: panic watching other processes' commits", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("store: panic: %v", r)
		}
	}()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		from, ch, all := parseChangeNote(n.Payload)
		switch {
		case from == s.self:
			// Told already, as it committed.
		case all:
			s.notifyAll()
		default:
			s.notify(ch)
		}
	}
}

// maxNote bounds a notification's payload (PostgreSQL's limit is 8000
// bytes); a change to more accounts than fit is told to every watcher.
const maxNote = 4000

// changeNote is the payload of the NOTIFY for ch sent by the Store self:
// "self a1,a2,...[ d][ q]", or "self *" for a change too wide to name.
// A write that changed nothing watched still notes "self", for watchers of
// everything (account 0), as SQLite's data_version tells of any commit.
func changeNote(self string, ch *changes) string {
	var b strings.Builder
	b.WriteString(self)
	b.WriteByte(' ')
	first := true
	for id := range ch.accounts {
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(strconv.FormatInt(id, 10))
		if b.Len() > maxNote {
			return self + " *"
		}
	}
	if ch.domains {
		b.WriteString(" d")
	}
	if ch.queue {
		b.WriteString(" q")
	}
	return b.String()
}

// parseChangeNote reads a changeNote. A payload it cannot read (another
// version's) is told to every watcher.
func parseChangeNote(p string) (from string, ch *changes, all bool) {
	f := strings.Fields(p)
	if len(f) == 0 {
		return "", nil, true
	}
	from, ch = f[0], &changes{}
	for i, w := range f[1:] {
		switch {
		case w == "*":
			return from, nil, true
		case w == "d":
			ch.domains = true
		case w == "q":
			ch.queue = true
		case i == 0:
			for _, a := range strings.Split(w, ",") {
				id, err := strconv.ParseInt(a, 10, 64)
				if err != nil || id <= 0 {
					return from, nil, true
				}
				ch.account(id)
			}
		default:
			return from, nil, true
		}
	}
	// Nothing named: watchers of everything are told (notify tells
	// account 0's watchers of any change it is given).
	if len(ch.accounts) == 0 && !ch.domains && !ch.queue {
		ch.domains = true
	}
	return from, ch, false
}

// beginAccountWrite is beginWrite for a transaction that writes one
// account's mailboxes only (BeginMailbox): on PostgreSQL it takes the
// writer lock shared, so that transactions of other accounts run beside
// it while every whole-store writer (beginWrite) still waits for it and
// excludes it, then the account's own lock, which its other writers
// take too. Account IDs that coincide modulo 2^31 share a lock: they
// only wait for each other.
func (s *Store) beginAccountWrite(ctx context.Context, tx wtx, accountID int64) error {
	if !s.d.postgres() {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock_shared(?)`, pgLockWrite); err != nil {
		return fmt.Errorf("store: begin: writer lock: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(CAST(? AS INTEGER), CAST(? AS INTEGER))`, pgLockAccount, int32(accountID&0x7fff_ffff)); err != nil {
		return fmt.Errorf("store: begin: account %d writer lock: %w", accountID, err)
	}
	return nil
}

// beginWrite does what a write transaction must before its first
// statement: on PostgreSQL, wait for the one writer lock (see above).
func (s *Store) beginWrite(ctx context.Context, tx wtx) error {
	if !s.d.postgres() {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, pgLockWrite); err != nil {
		return fmt.Errorf("store: begin: writer lock: %w", err)
	}
	return nil
}

// noteCommit sends, in the committing transaction, the NOTIFY telling
// other Stores of ch (PostgreSQL only; it is delivered once tx commits).
func (s *Store) noteCommit(ctx context.Context, tx wtx, ch *changes) error {
	if !s.d.postgres() {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_notify(?, ?)`, pgChannel, changeNote(s.self, ch)); err != nil {
		return fmt.Errorf("store: commit: notify: %w", err)
	}
	return nil
}

// readCtx is the context a short SQLite read's statements run with: ctx
// without its end, for the same reason as beginRead's. With a ctx that can
// end database/sql starts a goroutine for each statement's rows to watch
// it (Rows.awaitDone), and the driver registers and runs each step under
// a watcher: an IMAP FETCH's read of its rows and each poll's Delta paid
// that for every statement, and the goroutine's start wakes another
// thread (a futex or eventfd write, and a core to wait for under load).
// ctx is still honoured: the callers check it before they start and
// between rows (eachScanned), and a read of SQLite never waits for a
// lock. PostgreSQL statements keep ctx (a statement there can wait).
func (s *Store) readCtx(ctx context.Context) context.Context {
	if s.d.postgres() {
		return ctx
	}
	return context.WithoutCancel(ctx)
}
