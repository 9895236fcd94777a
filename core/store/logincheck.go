package store

import (
	"context"
	"database/sql"
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
// checks under way plus this one fit its capacity. Per key, in the
// login_failures row:
//   - checking is the number of checks under way, valid until
//     checking_until (the last reservation's time plus the lease): a
//     process that died mid-check holds its places only that long;
//   - a row is deleted once its failures have decayed and no check is
//     under way (checking_until passed).
//
// A refused reservation says whether checks under way filled the key
// (busy: waiting for their outcome may let the login in, as the
// per-process buckets wait) or its failures alone did.

// ReserveLoginCheck takes a place among the checks of each of keys, in one
// write, or none when a key has no whole attempt left: then refused is
// that key's index in keys, and busy says whether checks under way (not
// only failures) fill it. refused is -1 when the places were taken; the
// caller must then end the check with EndLoginCheck. lease bounds how
// long a place counts if EndLoginCheck never comes (a process that died).
//
// The read and the write are one transaction that every write of the
// counts waits for (SQLite's one writer; on PostgreSQL an advisory lock
// of their own, writeCounters), so reservations at once on several
// processes see each other.
func (s *Store) ReserveLoginCheck(ctx context.Context, keys []LoginFailureKey, refill, lease time.Duration) (refused int, busy bool, err error) {
	if refill <= 0 || lease <= 0 {
		return -1, false, fmt.Errorf("%w: login check refill %v, lease %v", ErrInvalid, refill, lease)
	}
	for _, k := range keys {
		if k.Key == "" || len(k.Key) > MaxLoginFailureKey || k.Capacity <= 0 {
			return -1, false, fmt.Errorf("%w: login failure key of %d bytes, capacity %d", ErrInvalid, len(k.Key), k.Capacity)
		}
	}
	refused = -1
	err = s.writeCounters(ctx, func(tx *sql.Tx) error {
		t, err := s.dbNow(ctx, tx)
		if err != nil {
			return err
		}
		now, r := t.UnixMilli(), max(refill.Milliseconds(), 1)
		until := now + max(lease.Milliseconds(), 1)
		for i, k := range keys {
			var expires, checking, checkingUntil int64
			err := tx.QueryRowContext(ctx, `SELECT expires, checking, checking_until FROM login_failures WHERE key = ?`, k.Key).
				Scan(&expires, &checking, &checkingUntil)
			if errors.Is(err, sql.ErrNoRows) {
				expires, checking, checkingUntil = 0, 0, 0
			} else if err != nil {
				return fmt.Errorf("store: login checks: %w", err)
			}
			if checkingUntil <= now {
				checking = 0
			}
			failures := float64(max(expires-now, 0)) / float64(r)
			if failures+float64(checking)+1 > float64(k.Capacity) {
				refused, busy = i, checking > 0
				return errNoAttemptLeft
			}
			_, err = tx.ExecContext(ctx, `
INSERT INTO login_failures(key, expires, checking, checking_until) VALUES (?, 0, 1, ?)
ON CONFLICT(key) DO UPDATE SET checking = ?, checking_until = ?`,
				k.Key, until, checking+1, until)
			if err != nil {
				return fmt.Errorf("store: login checks: %w", err)
			}
		}
		return nil
	})
	if errors.Is(err, errNoAttemptLeft) {
		return refused, busy, nil
	}
	return -1, false, err
}

// errNoAttemptLeft rolls back a reservation that a key refused.
var errNoAttemptLeft = errors.New("store: no login attempt left")

// EndLoginCheck ends a check ReserveLoginCheck let in: it gives back its
// place among the checks of each of reserved, counts one failure against
// each of failed (as NoteLoginFailure), and forgets the failures of each
// of clear (a success: the account's, from that source). One write.
func (s *Store) EndLoginCheck(ctx context.Context, reserved []string, failed []LoginFailureKey, clear []string, refill time.Duration) error {
	if err := checkFailureKeys(failed, refill); err != nil {
		return err
	}
	return s.writeCounters(ctx, func(tx *sql.Tx) error {
		t, err := s.dbNow(ctx, tx)
		if err != nil {
			return err
		}
		now := t.UnixMilli()
		for _, k := range reserved {
			if _, err := tx.ExecContext(ctx, `UPDATE login_failures SET checking = CASE WHEN checking > 0 THEN checking - 1 ELSE 0 END WHERE key = ?`, k); err != nil {
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
		return sweepLoginFailures(ctx, tx, now)
	})
}

// sweepLoginFailures deletes rows with neither failures nor checks left,
// at most loginFailurePrune of them.
func sweepLoginFailures(ctx context.Context, tx *sql.Tx, now int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM login_failures WHERE key IN (
	SELECT key FROM login_failures WHERE expires <= ? AND (checking_until <= ? OR checking = 0) LIMIT ?)`, now, now, loginFailurePrune); err != nil {
		return fmt.Errorf("store: login failures: %w", err)
	}
	return nil
}

// writeCounters runs fn, which writes only login_failures, in a
// transaction. On PostgreSQL it runs on the readers' pool under an
// advisory lock that only these writes take (every write of
// login_failures comes here): they run one at a time, as fn's reads and
// writes need, without waiting for the writer connection or the writer
// lock, which a migration's batch may hold (a login must not wait for
// one). On SQLite it commits on the writer connection with
// synchronous=NORMAL (commitNormal), without waiting for the log's fsync:
// a crash may forget the last counts, as it forgets the per-process
// buckets (no mail depends on them), and a login does not hold the writer
// for a disk flush.
func (s *Store) writeCounters(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.d.postgres() {
		tx, err := s.r.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("store: begin: %w", err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, pgLockLogins); err != nil {
			return fmt.Errorf("store: begin: login counts lock: %w", err)
		}
		if err := fn(tx); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("store: commit: %w", err)
		}
		return nil
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	_, _, err = s.commitNormal(ctx, conn, func(tx *sql.Tx, _ *changes) error { return fn(tx) })
	return err
}
