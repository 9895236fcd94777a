package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Logins being checked, shared by every process on the database beside
// their failures (loginfail.go), so that guesses checked at once on
// several nodes are limited as one: each login takes a place among its
// keys' checks before its password is checked (ReserveLoginCheck) and
// gives it back when the check ended (EndLoginCheck), counting a failure
// then if it failed. A key admits a check while its failures plus the
// checks under way plus this one fit its capacity.
//   - A check is one row per key in login_checks, under one random ID,
//     each row with its own end (the reservation's time plus the lease):
//     a process that died mid-check holds its places that long and no
//     longer, however many checks of the same keys come and go meanwhile
//     (one count per key with one end for all, as before, was pushed
//     back by every new check: under a steady stream of logins a dead
//     process's places counted for ever).
//   - Rows whose end passed are deleted by the next ends, at most
//     loginFailurePrune by each.
//
// A refused reservation says whether checks under way (not only
// failures) fill the key (busy: waiting for their outcome may let the
// login in, as the per-process buckets wait).

// ReserveLoginCheck takes a place among the checks of each of keys, in one
// write, or none when a key has no whole attempt left: then refused is
// that key's index in keys, and busy says whether checks under way (not
// only failures) fill it. refused is -1 when the places were taken; the
// caller must then end the check with EndLoginCheck and check, its ID.
// lease bounds how long the places count if EndLoginCheck never comes (a
// process that died). A key given twice is refused (ErrInvalid).
//
// The read and the write are one transaction that every write of the
// counts waits for (SQLite's one writer; on PostgreSQL an advisory lock
// of their own, writeCounters), so reservations at once on several
// processes see each other.
func (s *Store) ReserveLoginCheck(ctx context.Context, keys []LoginFailureKey, refill, lease time.Duration) (check int64, refused int, busy bool, err error) {
	if refill <= 0 || lease <= 0 {
		return 0, -1, false, fmt.Errorf("%w: login check refill %v, lease %v", ErrInvalid, refill, lease)
	}
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if k.Key == "" || len(k.Key) > MaxLoginFailureKey || k.Capacity <= 0 {
			return 0, -1, false, fmt.Errorf("%w: login failure key of %d bytes, capacity %d", ErrInvalid, len(k.Key), k.Capacity)
		}
		if seen[k.Key] {
			return 0, -1, false, fmt.Errorf("%w: login failure key given twice", ErrInvalid)
		}
		seen[k.Key] = true
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, -1, false, fmt.Errorf("store: login checks: %w", err)
	}
	check = int64(binary.BigEndian.Uint64(b[:])>>1) | 1 // positive, never 0
	refused = -1
	err = s.writeCounters(ctx, func(ctx context.Context, tx wtx) error {
		t, err := s.dbNow(ctx, tx)
		if err != nil {
			return err
		}
		now, r := t.UnixMilli(), max(refill.Milliseconds(), 1)
		until := now + max(lease.Milliseconds(), 1)
		for i, k := range keys {
			var expires, checking int64
			err := tx.QueryRowContext(ctx, `SELECT expires FROM login_failures WHERE key = ?`, k.Key).Scan(&expires)
			if errors.Is(err, sql.ErrNoRows) {
				expires = 0
			} else if err != nil {
				return fmt.Errorf("store: login checks: %w", err)
			}
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM login_checks WHERE key = ? AND expires > ?`, k.Key, now).Scan(&checking); err != nil {
				return fmt.Errorf("store: login checks: %w", err)
			}
			failures := float64(max(expires-now, 0)) / float64(r)
			if failures+float64(checking)+1 > float64(k.Capacity) {
				refused, busy = i, checking > 0
				return errNoAttemptLeft
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO login_checks(id, key, expires) VALUES (?, ?, ?)`, check, k.Key, until); err != nil {
				return fmt.Errorf("store: login checks: %w", err)
			}
		}
		return nil
	})
	if errors.Is(err, errNoAttemptLeft) {
		return 0, refused, busy, nil
	}
	if err != nil {
		return 0, -1, false, err
	}
	return check, -1, false, nil
}

// errNoAttemptLeft rolls back a reservation that a key refused.
var errNoAttemptLeft = errors.New("store: no login attempt left")

// EndLoginCheck ends check, a check ReserveLoginCheck let in (0: none):
// it gives back its places, counts one failure against each of failed
// (as NoteLoginFailure), and forgets the failures of each of clear (a
// success: the account's, from that source). One write.
func (s *Store) EndLoginCheck(ctx context.Context, check int64, failed []LoginFailureKey, clear []string, refill time.Duration) error {
	if err := checkFailureKeys(failed, refill); err != nil {
		return err
	}
	return s.writeCounters(ctx, func(ctx context.Context, tx wtx) error {
		t, err := s.dbNow(ctx, tx)
		if err != nil {
			return err
		}
		now := t.UnixMilli()
		if check != 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM login_checks WHERE id = ?`, check); err != nil {
				return fmt.Errorf("store: login checks: %w", err)
			}
		}
		if err := noteFailures(ctx, tx, failed, now, refill); err != nil {
			return err
		}
		for _, k := range clear {
			if _, err := tx.ExecContext(ctx, `UPDATE login_failures SET expires = 0 WHERE key = ?`, k); err != nil {
				return fmt.Errorf("store: login failures: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM login_checks WHERE expires <= ? AND id IN (
	SELECT id FROM login_checks WHERE expires <= ? LIMIT ?)`, now, now, loginFailurePrune); err != nil {
			return fmt.Errorf("store: login checks: %w", err)
		}
		return sweepLoginFailures(ctx, tx, now)
	})
}

// sweepLoginFailures deletes rows of login_failures whose failures have
// decayed, at most loginFailurePrune of them. (Rows with checking and
// checking_until are spared until then: no process of this version writes
// them, an older one on the same database may.)
func sweepLoginFailures(ctx context.Context, tx wtx, now int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM login_failures WHERE key IN (
	SELECT key FROM login_failures WHERE expires <= ? AND (checking_until <= ? OR checking = 0) LIMIT ?)`, now, now, loginFailurePrune); err != nil {
		return fmt.Errorf("store: login failures: %w", err)
	}
	return nil
}

// writeCounters runs fn, which writes only login_failures and
// login_checks, in a transaction. On PostgreSQL it runs on a connection
// of its own (Store.counts; not the readers', which logins waiting here
// would take from every read of this node) under an advisory lock that
// only these writes take (every write of the counts comes here): they
// run one at a time, as fn's reads and writes need, without waiting for
// the writer connection or the writer lock, which a migration's batch
// may hold (a login must not wait for one). On SQLite it is one of the
// short writes grouped on the writer connection (writeNormal, with the
// STOREs, APPENDs and claims queued beside it: one commit for them all,
// where it took the writer alone, with a BEGIN and COMMIT of its own,
// twice a LOGIN), committed with synchronous=NORMAL and without waiting
// for the log's fsync: a crash may forget the last counts, as it forgets
// the per-process buckets (no mail depends on them), and a login does not
// hold the writer for a disk flush.
//
// fn runs its statements with the ctx it is given: on SQLite ctx without
// its end (writeCtx), so that the writer is not held while database/sql
// and the driver hand each statement to goroutines of their own.
func (s *Store) writeCounters(ctx context.Context, fn func(ctx context.Context, tx wtx) error) error {
	if s.d.postgres() {
		tx, err := s.counts.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("store: begin: %w", err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, pgLockLogins); err != nil {
			return fmt.Errorf("store: begin: login counts lock: %w", err)
		}
		if err := fn(ctx, tx); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("store: commit: %w", err)
		}
		return nil
	}
	wctx := s.writeCtx(ctx)
	return s.writeNormal(ctx, func(tx wtx, _ *changes) error { return fn(wctx, tx) }, nil, syncNone)
}
