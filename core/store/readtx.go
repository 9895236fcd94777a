package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/mattn/go-sqlite3"
)

// readTx is a read transaction: its statements see one state of the
// database throughout (Snapshot, Delta). Begin it with beginRead and end
// it with end, deferred, on every path.
//
// On SQLite it is BEGIN ... ROLLBACK on a reader connection held as a
// *sql.Conn, not an sql.Tx: database/sql's BeginTx wraps the context of
// every Tx in a WithCancel and starts a goroutine to watch it
// (Tx.awaitDone), whatever the caller's context, and every statement's
// rows in a Tx then start one more (Rows.awaitDone), since the Tx's
// context can end: a Delta, the poll of every IMAP command, started 4
// goroutines, each a wake-up of another thread and, under load, a wait
// for a core (TestReadStartsNoGoroutine). A *sql.Conn's statements start
// none when their context cannot end (readCtx). The caller's context is
// still honoured where a SQLite read can wait: for a free reader
// connection (TestReadWaitsForReaderUntilCtxEnds), and by the callers
// before and between statements.
//
// On PostgreSQL it stays an sql.Tx (REPEATABLE READ, READ ONLY): there
// a statement can wait on the server and the driver's Tx cancels it and
// rolls back when ctx ends, which a BEGIN on a Conn would have to do
// itself, and a network round trip per statement dwarfs a goroutine.
type readTx struct {
	tx *sql.Tx   // PostgreSQL
	c  *sql.Conn // SQLite
}

// readTxEnd is the statement that ends a SQLite read transaction (a
// variable for TestReadTxNeverPooledInTransaction, which makes it fail).
var readTxEnd = "ROLLBACK"

// beginRead starts a read transaction that sees one state of the
// database throughout, as SQLite's read transactions do: on PostgreSQL a
// read-only REPEATABLE READ one (its default sees each statement's).
//
// On SQLite its BEGIN runs on the caller's goroutine (readCtx): with a ctx
// that can end the driver runs each statement under a watcher goroutine,
// and under load each such hand-over waits for a core (an execution trace
// of ten IMAP sessions showed a FETCH's poll waiting 0.9 ms on average for
// its BEGIN). A SQLite read does not wait for any lock; it waits, with
// ctx, only for one of the reader connections.
func (s *Store) beginRead(ctx context.Context) (*readTx, error) {
	s.reads.Add(1)
	if s.d.postgres() {
		tx, err := s.r.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
		if err != nil {
			return nil, err
		}
		return &readTx{tx: tx}, nil
	}
	c, err := s.r.Conn(ctx)
	if err != nil {
		return nil, err
	}
	rt := &readTx{c: c}
	if _, err := c.ExecContext(context.WithoutCancel(ctx), "BEGIN"); err != nil {
		rt.end()
		return nil, err
	}
	return rt, nil
}

// QueryContext runs a query in the transaction. On SQLite, give it a
// context from readCtx unless the statement may run long enough to be
// worth a watcher goroutine that interrupts it when ctx ends.
func (rt *readTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if rt.tx != nil {
		return rt.tx.QueryContext(ctx, query, args...)
	}
	return rt.c.QueryContext(ctx, query, args...)
}

// QueryRowContext is QueryContext for one row.
func (rt *readTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if rt.tx != nil {
		return rt.tx.QueryRowContext(ctx, query, args...)
	}
	return rt.c.QueryRowContext(ctx, query, args...)
}

// end ends the transaction (a rollback: it wrote nothing) and gives its
// connection back, which then is never inside a transaction: if the
// ROLLBACK failed and SQLite still holds the transaction open (its
// snapshot would pin the log against checkpoints and show the next read
// an old state), the connection is closed instead of pooled. Every rows
// of the transaction must be closed before (database/sql's Conn.Close
// waits for them). end reports why the connection was dropped, if it was
// (callers defer it and have their answer already).
func (rt *readTx) end() error {
	if rt.tx != nil {
		rt.tx.Rollback()
		return nil
	}
	// Not the caller's ctx: a ROLLBACK with an ended one would not run.
	_, rbErr := rt.c.ExecContext(context.Background(), readTxEnd)
	err := rt.c.Raw(func(dc any) error {
		if c, ok := dc.(*sqlite3.SQLiteConn); ok && !c.AutoCommit() {
			// database/sql closes a connection whose Raw returns
			// ErrBadConn instead of pooling it.
			return fmt.Errorf("store: read transaction still open after %s (%v): connection dropped: %w", readTxEnd, rbErr, driver.ErrBadConn)
		}
		return nil
	})
	if cerr := rt.c.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, sql.ErrConnDone) {
		err = nil // dropped by database/sql already (a driver.ErrBadConn)
	}
	return err
}
