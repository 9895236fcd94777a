package store

import (
	"context"
	"database/sql"
)

// readRow runs a query of one row on a reader connection and hands the
// row to scan. On SQLite the wait for a free reader connection ends with
// ctx (a client gone while every reader is busy does not keep its
// goroutine waiting: TestReadWaitsForReaderUntilCtxEnds), and the
// statement runs with readCtx's context, which starts no goroutine to
// watch ctx (TestReadStartsNoGoroutine): SELECT's reads of one row each
// (Mailbox, MailboxByID, RecentFrom) ran the whole query with readCtx's,
// so their wait for a reader ignored ctx. On PostgreSQL the statement
// keeps ctx.
func (s *Store) readRow(ctx context.Context, scan func(*sql.Row) error, query string, args ...any) error {
	if s.d.postgres() {
		return scan(s.r.QueryRowContext(ctx, query, args...))
	}
	c, err := s.r.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return scan(c.QueryRowContext(s.readCtx(ctx), query, args...))
}

// readRows is readRow for a query of many rows: done gives the connection
// back, after rows is closed (FETCH's EachMessageLocated, EachMessage).
func (s *Store) readRows(ctx context.Context, query string, args ...any) (rows *sql.Rows, done func(), err error) {
	if s.d.postgres() {
		rows, err = s.r.QueryContext(ctx, query, args...)
		return rows, func() {}, err
	}
	c, err := s.r.Conn(ctx)
	if err != nil {
		return nil, nil, err
	}
	if rows, err = c.QueryContext(s.readCtx(ctx), query, args...); err != nil {
		c.Close()
		return nil, nil, err
	}
	return rows, func() { c.Close() }, nil
}
