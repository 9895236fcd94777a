package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// Clocks. Leases (copy leases, the relay queue's claims) and the object
// sweep's mark compare times written by one process with the clock of
// another. On one machine (SQLite) they share the wall clock. Nodes on
// several machines (PostgreSQL) may not: a node whose clock runs ahead
// would take a lease that has not expired, or deliver a queue item another
// node is delivering. So, on PostgreSQL:
//
//   - a lease's expiry and a claim's "due" and "until" are read from and
//     written in the database's clock (clock_timestamp(), read in the
//     transaction that takes the lease: dbNow);
//   - the nodes' beats and a copy wait's "until" are written in the
//     database's clock, and leases, waits and beats are read back on this
//     node's (fromDB), since their readers compare them with time.Now;
//   - the sweep's mark is written in the database's clock, and the time a
//     staged object's PUT began is this node's clock corrected by its
//     offset to the database's (measured at each dbNow, and again when it
//     is older than clockRefresh: now).
//
// On SQLite both are the Store's clock (Store.clock, time.Now unless a
// test skews it).

// clockRefresh is how old the measured offset to the database's clock may
// be before now measures it again.
const clockRefresh = time.Minute

// clock is a Store's view of the time.
type clock struct {
	wall func() time.Time // this node's clock; time.Now but in tests

	mu       sync.Mutex
	offset   time.Duration // database's clock minus wall, PostgreSQL only
	measured time.Time     // wall time of the last measure; zero: never
}

func newClock() *clock { return &clock{wall: time.Now} }

// querier is what *sql.DB and *sql.Tx have in common for a one-row query.
type querier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// dbNow is the database's time, read with q (in a transaction, after its
// locks: the time at which the transaction acts). On SQLite it is the
// Store's clock.
func (s *Store) dbNow(ctx context.Context, q querier) (time.Time, error) {
	if !s.d.postgres() {
		return s.clk.wall(), nil
	}
	before := s.clk.wall()
	var us int64
	if err := q.QueryRowContext(ctx, `SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)`).Scan(&us); err != nil {
		return time.Time{}, fmt.Errorf("store: database clock: %w", err)
	}
	after := s.clk.wall()
	db := time.UnixMicro(us)
	mid := before.Add(after.Sub(before) / 2)
	s.clk.mu.Lock()
	s.clk.offset, s.clk.measured = db.Sub(mid), after
	s.clk.mu.Unlock()
	return db, nil
}

// now is the time on the database's clock as this node best knows it
// without asking: the wall clock, on PostgreSQL corrected by the offset
// measured last (measured again, with a bounded wait, when it is older
// than clockRefresh or was never measured).
func (s *Store) now() time.Time {
	if !s.d.postgres() {
		return s.clk.wall()
	}
	s.clk.mu.Lock()
	stale := s.clk.measured.IsZero() || s.clk.wall().Sub(s.clk.measured) > clockRefresh
	s.clk.mu.Unlock()
	if stale {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		db, err := s.dbNow(ctx, s.r)
		cancel()
		if err == nil {
			return db
		}
		// Not again at every call while the database cannot answer.
		s.clk.mu.Lock()
		s.clk.measured = s.clk.wall()
		s.clk.mu.Unlock()
		s.log.Warn("store: cannot read the database's clock; using the last offset", "err", err)
	}
	s.clk.mu.Lock()
	defer s.clk.mu.Unlock()
	return s.clk.wall().Add(s.clk.offset)
}

// toDB turns a time on this node's clock into the database's (the same on
// SQLite), to the second: the relay queue's unit.
func (s *Store) toDB(t time.Time) time.Time {
	if !s.d.postgres() {
		return t
	}
	return t.Add(s.now().Sub(s.clk.wall()).Round(time.Second))
}

// fromDB turns a time on the database's clock into this node's, to the
// second.
func (s *Store) fromDB(t time.Time) time.Time {
	if !s.d.postgres() {
		return t
	}
	return t.Add(s.clk.wall().Sub(s.now()).Round(time.Second))
}
