package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-sqlite3"
)

// A copy wait records why an account's copy is not running although it is
// not done, and when it is tried again: the migration engine writes it when
// a job ends without finishing (the old server cannot be reached, the disk
// is full, no old-server password is in memory) and removes it when the
// account's copy runs again. Together with the copy leases it lets any
// process (`mailferry status` beside `serve`) tell running from waiting from
// interrupted.

// Kinds of CopyWait.
const (
	// WaitRetry: the copy failed and is tried again at Until.
	WaitRetry = "retry"
	// WaitDiskFull: the disk is full; the copy is tried again at Until.
	WaitDiskFull = "disk-full"
	// WaitLogin: no old-server password is in memory; the copy resumes at
	// the user's next login (or a bulk run with a master user).
	WaitLogin = "login"
	// WaitNone: the copy runs (or ran); it waits for nothing. A running
	// copy keeps this row, with room for MaxWaitReason bytes of reason, so
	// that its failure is recorded by rewriting the row in place: a full
	// disk may have no room for a new one.
	WaitNone = "none"
)

// MaxWaitReason is the longest reason a copy wait keeps (longer ones are
// cut).
const MaxWaitReason = 400

// CopyWait is one account's copy wait.
type CopyWait struct {
	AccountID int64
	Kind      string
	Reason    string
	// Until is when the copy is tried again (zero: not planned).
	Until time.Time
	// Holder names the engine that will try again (see TakeLease), "" if
	// none.
	Holder string
}

// SetCopyWait records (or replaces) an account's copy wait.
func (s *Store) SetCopyWait(ctx context.Context, w CopyWait) error {
	if w.Kind == "" {
		return fmt.Errorf("%w: copy wait without a kind", ErrInvalid)
	}
	return s.write(ctx, func(tx wtx, _ *changes) error {
		return s.setCopyWait(ctx, tx, w)
	})
}

// setCopyWait is SetCopyWait's work in tx.
func (s *Store) setCopyWait(ctx context.Context, tx wtx, w CopyWait) error {
	var until int64
	if !w.Until.IsZero() {
		until = s.toDB(w.Until).UnixMilli() // read back by other nodes (clock.go)
	}
	// The reason quotes errors, and through them the old server's words:
	// shown to the admin, it is kept printable (no NUL either, which
	// PostgreSQL's text refuses), within the room.
	w.Reason = Printable(w.Reason, MaxWaitReason-len("…"))
	if w.Kind == WaitNone {
		w.Reason = strings.Repeat(" ", MaxWaitReason) // the room, taken now
	}
	_, err := tx.ExecContext(ctx, `
INSERT INTO copy_waits(account_id, kind, reason, until, holder) VALUES (?, ?, ?, ?, ?)
ON CONFLICT(account_id) DO UPDATE SET kind = excluded.kind, reason = excluded.reason,
	until = excluded.until, holder = excluded.holder`,
		w.AccountID, w.Kind, w.Reason, until, w.Holder)
	if isForeignKey(err) {
		return fmt.Errorf("store: copy wait of account %d: %w", w.AccountID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: copy wait of account %d: %w", w.AccountID, err)
	}
	return nil
}

// ClearCopyWait removes an account's copy wait, if any.
func (s *Store) ClearCopyWait(ctx context.Context, accountID int64) error {
	return s.write(ctx, func(tx wtx, _ *changes) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM copy_waits WHERE account_id = ?`, accountID); err != nil {
			return fmt.Errorf("store: clear copy wait of account %d: %w", accountID, err)
		}
		return nil
	})
}

// CopyWaits returns every copy wait by account ID (WaitNone rows too).
func (s *Store) CopyWaits(ctx context.Context) (map[int64]CopyWait, error) {
	ws, err := queryAll(ctx, s.r, func(r rowScanner) (CopyWait, error) {
		var w CopyWait
		var until int64
		err := r.Scan(&w.AccountID, &w.Kind, &w.Reason, &until, &w.Holder)
		if until != 0 {
			w.Until = s.fromDB(time.UnixMilli(until))
		}
		if w.Kind == WaitNone {
			w.Reason = ""
		}
		return w, err
	}, `SELECT account_id, kind, reason, until, holder FROM copy_waits`)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]CopyWait, len(ws))
	for _, w := range ws {
		out[w.AccountID] = w
	}
	return out, nil
}

// Lease is an account's copy lease as recorded (it may have expired).
type Lease struct {
	AccountID int64
	Holder    string
	Expires   time.Time
}

// Leases returns every recorded copy lease by account ID.
func (s *Store) Leases(ctx context.Context) (map[int64]Lease, error) {
	ls, err := queryAll(ctx, s.r, func(r rowScanner) (Lease, error) {
		var l Lease
		var exp int64
		err := r.Scan(&l.AccountID, &l.Holder, &exp)
		// Written on the database's clock (TakeLease), read on this
		// node's: callers compare it with time.Now.
		l.Expires = s.fromDB(time.UnixMilli(exp))
		return l, err
	}, `SELECT account_id, holder, expires FROM copy_leases`)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]Lease, len(ls))
	for _, l := range ls {
		out[l.AccountID] = l
	}
	return out, nil
}

// ErrDiskFull matches (IsDiskFull) a write the disk had no room for.
var ErrDiskFull = errors.New("store: disk full")

// IsDiskFull reports whether err comes from a full disk: ENOSPC from a
// pack (or EDQUOT, a quota reached), SQLITE_FULL from the database or
// PostgreSQL's disk_full,
// however wrapped.
func IsDiskFull(err error) bool {
	var se sqlite3.Error
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrDiskFull), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return true
	case errors.As(err, &se):
		return se.Code == sqlite3.ErrFull
	case pgCode(err) == pgDiskFull:
		return true
	}
	return false
}
