package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Failed logins shared by every process on the database, so that nodes
// serving one domain limit guesses as one server (core/auth keeps its fast
// per-process buckets in front of these). Each key (a source, a network,
// an account from a source: the caller's names) has one row: the time
// its failures will have decayed to none, one failure lasting refill.
// So:
//   - the failures counted against a key now are (expires - now) / refill;
//   - a failure moves expires to max(expires, now) + refill, never beyond
//     now + capacity × refill (a full bucket is as bad as a fuller one);
//   - rows whose failures have decayed are deleted by the next failures' writes, at most
//     loginFailurePrune by each (a write after a flood decayed must not
//     hold the writer for the whole flood's rows: one million took 2.6 s
//     on SQLite), so the table holds the keys that failed within
//     capacity × refill, bounded by the failures a
//     flood may make in that time, and what the writes since have not yet
//     pruned (each prunes more than the 3 rows it may add);
//   - times are the database's clock (clock.go).
//
// Reading costs one indexed query. Core/auth reserves a place among a
// key's checks before each check and ends it after (logincheck.go): two
// small writes per login.

// MaxLoginFailureKey bounds a key's length; longer keys are refused.
const MaxLoginFailureKey = 512

// loginFailurePrune is how many decayed rows one write deletes at most.
const loginFailurePrune = 1000

// LoginFailureKey is a key whose failed logins are counted, and its
// capacity: how many failures it may have in a row.
type LoginFailureKey struct {
	Key      string
	Capacity int
}

// LoginFailures returns the failed logins counted against each of keys now
// (decayed by one per refill; fractional), for the keys that have any.
func (s *Store) LoginFailures(ctx context.Context, keys []string, refill time.Duration) (map[string]float64, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	if refill <= 0 {
		return nil, fmt.Errorf("%w: login failures refill %v", ErrInvalid, refill)
	}
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	now := s.now()
	type row struct {
		key     string
		expires int64
	}
	rows, err := queryAll(ctx, s.r, func(sc rowScanner) (row, error) {
		var r row
		return r, sc.Scan(&r.key, &r.expires)
	}, `SELECT key, expires FROM login_failures WHERE key IN (?`+strings.Repeat(", ?", len(keys)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("login failures: %w", err)
	}
	out := map[string]float64{}
	for _, r := range rows {
		if d := time.UnixMilli(r.expires).Sub(now); d > 0 {
			out[r.key] = float64(d) / float64(refill)
		}
	}
	return out, nil
}

// checkFailureKeys refuses an empty or over-long key, a capacity below 1,
// or a refill period that is not positive.
func checkFailureKeys(keys []LoginFailureKey, refill time.Duration) error {
	if refill <= 0 {
		return fmt.Errorf("%w: login failures refill %v", ErrInvalid, refill)
	}
	for _, k := range keys {
		if k.Key == "" || len(k.Key) > MaxLoginFailureKey || k.Capacity <= 0 {
			return fmt.Errorf("%w: login failure key of %d bytes, capacity %d", ErrInvalid, len(k.Key), k.Capacity)
		}
	}
	return nil
}

// NoteLoginFailure counts one failed login against each of keys, in one
// write, and deletes the rows whose failures have decayed.
func (s *Store) NoteLoginFailure(ctx context.Context, keys []LoginFailureKey, refill time.Duration) error {
	if err := checkFailureKeys(keys, refill); err != nil {
		return err
	}
	return s.writeCounters(ctx, func(ctx context.Context, tx wtx) error {
		t, err := s.dbNow(ctx, tx)
		if err != nil {
			return err
		}
		now := t.UnixMilli()
		if err := sweepLoginFailures(ctx, tx, now); err != nil {
			return err
		}
		return noteFailures(ctx, tx, keys, now, refill)
	})
}

// noteFailures counts one failure against each of keys at now (Unix
// milliseconds), in tx.
func noteFailures(ctx context.Context, tx wtx, keys []LoginFailureKey, now int64, refill time.Duration) error {
	r := max(refill.Milliseconds(), 1)
	for _, k := range keys {
		limit := now + int64(k.Capacity)*r
		_, err := tx.ExecContext(ctx, `
INSERT INTO login_failures(key, expires) VALUES (?, ?)
ON CONFLICT(key) DO UPDATE SET expires = CASE
	WHEN (CASE WHEN login_failures.expires > ? THEN login_failures.expires ELSE ? END) + ? > ? THEN ?
	ELSE (CASE WHEN login_failures.expires > ? THEN login_failures.expires ELSE ? END) + ? END`,
			k.Key, min(now+r, limit),
			now, now, r, limit, limit,
			now, now, r)
		if err != nil {
			return fmt.Errorf("store: login failures: %w", err)
		}
	}
	return nil
}

// ClearLoginFailures forgets the failed logins of key (a login that
// succeeded).
func (s *Store) ClearLoginFailures(ctx context.Context, key string) error {
	return s.writeCounters(ctx, func(ctx context.Context, tx wtx) error {
		// Its checks under way (login_checks, logincheck.go) stay.
		if _, err := tx.ExecContext(ctx, `UPDATE login_failures SET expires = 0 WHERE key = ?`, key); err != nil {
			return fmt.Errorf("store: login failures: %w", err)
		}
		return nil
	})
}
