package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrLeased: another holder (another process) holds the account's copy
// lease; the account is being copied by it.
var ErrLeased = errors.New("store: account being copied by another process")

// ErrMaildropLocked: another POP3 session, in this process or another,
// holds the account's maildrop lock.
var ErrMaildropLocked = errors.New("store: maildrop in use by another POP3 session")

// A lease says who holds an account for a job now: a copy (copy_leases)
// or a POP3 session (maildrop_locks). Processes on one data directory, and
// nodes on one PostgreSQL database, share it through the database: the
// holder takes it, renews it while it works and releases it after, so two
// never hold the same account at once. A lease not renewed expires (its
// holder crashed or froze), and another may take it.
//
// Copy leases: the migration engine takes one before copying an account,
// so two processes never copy the same account at once. Maildrop locks:
// a POP3 session holds one from its login to its end (RFC 1939 section
// 8), on every node.
//
// Leases are timed by the database's clock on PostgreSQL (nodes on several
// machines need not agree on the time), by the wall clock, which processes
// on one machine share, on SQLite (clock.go).

// A leaseKind is a table of leases, with the words of its errors.
type leaseKind struct {
	table string // copy_leases or maildrop_locks
	what  string // for errors: "lease", "maildrop lock"
	held  error  // the error when another holder has it
}

var (
	copyLease    = leaseKind{table: "copy_leases", what: "lease", held: ErrLeased}
	maildropLock = leaseKind{table: "maildrop_locks", what: "maildrop lock", held: ErrMaildropLocked}
)

// TakeLease gives the account's copy lease to holder for ttl, unless
// another holder has it and it has not expired: that is ErrLeased. Taking a
// lease one holds already renews it.
func (s *Store) TakeLease(ctx context.Context, accountID int64, holder string, ttl time.Duration) error {
	return s.take(ctx, copyLease, accountID, holder, ttl)
}

// LockMaildrop gives the account's POP3 maildrop lock to holder (a
// session) for ttl, unless another holder has it and it has not expired:
// that is ErrMaildropLocked. Taking a lock one holds already renews it.
func (s *Store) LockMaildrop(ctx context.Context, accountID int64, holder string, ttl time.Duration) error {
	return s.take(ctx, maildropLock, accountID, holder, ttl)
}

// RenewMaildrop makes holder's maildrop lock of the account last ttl from
// now. Unlike LockMaildrop it never takes a lock holder does not have:
// when the lock is gone (the account was deleted, perhaps made again
// under the same ID) or another holder took it once it lapsed, that is
// ErrMaildropLocked.
//
// On SQLite the renewal is committed with the other writes queued beside
// it and no fsync of its own (writeUnsyncedThen): each POP3 session renews
// every third of the TTL, and a FULL commit each time was an fsync per
// session every 40 s. Nothing is promised on a renewal: a power cut that
// loses it also ends every session on the machine (SQLite serves one),
// and the lock it leaves expires sooner, which only frees the maildrop
// earlier. The next fsync of the log (any delivery's, STORE's, QUIT's
// expunge) makes it durable.
func (s *Store) RenewMaildrop(ctx context.Context, accountID int64, holder string, ttl time.Duration) error {
	wctx := s.writeCtx(ctx)
	return s.writeUnsyncedThen(ctx, func(tx wtx, _ *changes) error {
		now, err := s.dbNow(wctx, tx)
		if err != nil {
			return fmt.Errorf("store: maildrop lock of account %d: %w", accountID, err)
		}
		res, err := tx.ExecContext(wctx, `UPDATE maildrop_locks SET expires = ? WHERE account_id = ? AND holder = ?`,
			now.Add(ttl).UnixMilli(), accountID, holder)
		if err != nil {
			return fmt.Errorf("store: maildrop lock of account %d: %w", accountID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: maildrop lock of account %d: %w", accountID, err)
		} else if n == 0 {
			return fmt.Errorf("%w: the lock of account %d is no longer %s's", ErrMaildropLocked, accountID, holder)
		}
		return nil
	}, nil)
}

// UnlockMaildrop gives the account's maildrop lock back, if holder has it.
func (s *Store) UnlockMaildrop(ctx context.Context, accountID int64, holder string) error {
	return s.release(ctx, maildropLock, accountID, holder)
}

func (s *Store) take(ctx context.Context, k leaseKind, accountID int64, holder string, ttl time.Duration) error {
	if holder == "" || ttl <= 0 {
		return fmt.Errorf("%w: %s holder %q, ttl %v", ErrInvalid, k.what, holder, ttl)
	}
	return s.write(ctx, func(tx wtx, _ *changes) error {
		return s.takeTx(ctx, tx, k, accountID, holder, ttl)
	})
}

// takeTx is take's work in tx.
func (s *Store) takeTx(ctx context.Context, tx wtx, k leaseKind, accountID int64, holder string, ttl time.Duration) error {
	now, err := s.dbNow(ctx, tx)
	if err != nil {
		return fmt.Errorf("store: %s of account %d: %w", k.what, accountID, err)
	}
	res, err := tx.ExecContext(ctx, `
INSERT INTO `+k.table+`(account_id, holder, expires) VALUES (?, ?, ?)
ON CONFLICT(account_id) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
WHERE `+k.table+`.holder = excluded.holder OR `+k.table+`.expires <= ?`,
		accountID, holder, now.Add(ttl).UnixMilli(), now.UnixMilli())
	if err != nil {
		if isForeignKey(err) {
			return fmt.Errorf("store: %s of account %d: %w", k.what, accountID, ErrNotFound)
		}
		return fmt.Errorf("store: %s of account %d: %w", k.what, accountID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: %s of account %d: %w", k.what, accountID, err)
	} else if n == 0 {
		var other string
		var until int64
		if err := tx.QueryRowContext(ctx, `SELECT holder, expires FROM `+k.table+` WHERE account_id = ?`, accountID).Scan(&other, &until); err != nil {
			return fmt.Errorf("store: %s of account %d: %w", k.what, accountID, err)
		}
		return fmt.Errorf("%w (%s, %s until %s)", k.held, other, k.what, time.UnixMilli(until).Format(time.TimeOnly))
	}
	return nil
}

// StartCopy begins a run of an account's copy in one commit (one fsync on
// SQLite, where it was three): it takes the account's copy lease for
// holder as TakeLease does, records that the copy waits for nothing
// (SetCopyWait with WaitNone, the room for a reason taken) and, unless
// state is "", sets the account's migration state to state with no error
// (SetAccountMigration). All or nothing: refused (ErrLeased) or failed,
// it changes nothing.
func (s *Store) StartCopy(ctx context.Context, accountID int64, holder string, ttl time.Duration, state string) error {
	if holder == "" || ttl <= 0 {
		return fmt.Errorf("%w: lease holder %q, ttl %v", ErrInvalid, holder, ttl)
	}
	return s.write(ctx, func(tx wtx, ch *changes) error {
		if err := s.takeTx(ctx, tx, copyLease, accountID, holder, ttl); err != nil {
			return err
		}
		if err := s.setCopyWait(ctx, tx, CopyWait{AccountID: accountID, Kind: WaitNone, Holder: holder}); err != nil {
			return err
		}
		if state == "" {
			return nil
		}
		return setAccountMigration(ctx, tx, ch, accountID, state, "")
	})
}

// MailboxDone marks a mailbox copied up to old UID UID: SetMailboxMigration
// (MigDone, UID) of a mailbox that needed nothing more (an empty old
// folder), left by the copy for the run's last commit (EndCopy).
type MailboxDone struct {
	ID  int64
	UID uint32
}

// EndCopy ends a run of an account's copy in one commit (one fsync, where
// it was two, and one more for each of done): it marks the mailboxes of
// done copied (as SetMailboxMigration(MigDone, UID) does; one deleted
// meanwhile is passed over), unless state is "" it sets the account's
// migration state and error (SetAccountMigration), and it gives back
// holder's copy lease (ReleaseLease). All or nothing; a process that dies
// before it leaves the run as it was, running under a dead holder's lease,
// which the next run takes (Resume), with those mailboxes still to copy.
func (s *Store) EndCopy(ctx context.Context, accountID int64, holder, state, errText string, done ...MailboxDone) error {
	return s.write(ctx, func(tx wtx, ch *changes) error {
		for _, m := range done {
			if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET mig_state = ?, mig_last_uid = max(mig_last_uid, ?) WHERE id = ? AND account_id = ?`,
				MigDone, m.UID, m.ID, accountID); err != nil {
				return fmt.Errorf("store: %w", err)
			}
		}
		if state != "" {
			if err := setAccountMigration(ctx, tx, ch, accountID, state, errText); err != nil {
				return err
			}
		}
		return releaseTx(ctx, tx, copyLease, accountID, holder)
	})
}

// TakeLeaseFrom gives the account's copy lease to holder for ttl if dead
// holds it (a holder the caller knows is gone: its process died before the
// lease expired), else it is TakeLease.
func (s *Store) TakeLeaseFrom(ctx context.Context, accountID int64, holder, dead string, ttl time.Duration) error {
	if holder == "" || dead == "" || ttl <= 0 {
		return fmt.Errorf("%w: lease holder %q from %q, ttl %v", ErrInvalid, holder, dead, ttl)
	}
	err := s.write(ctx, func(tx wtx, _ *changes) error {
		now, err := s.dbNow(ctx, tx)
		if err != nil {
			return fmt.Errorf("store: lease of account %d: %w", accountID, err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE copy_leases SET holder = ?, expires = ? WHERE account_id = ? AND holder = ?`,
			holder, now.Add(ttl).UnixMilli(), accountID, dead)
		if err != nil {
			return fmt.Errorf("store: lease of account %d: %w", accountID, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.TakeLease(ctx, accountID, holder, ttl)
}

// ReleaseLease gives the account's copy lease back, if holder has it.
func (s *Store) ReleaseLease(ctx context.Context, accountID int64, holder string) error {
	return s.release(ctx, copyLease, accountID, holder)
}

func (s *Store) release(ctx context.Context, k leaseKind, accountID int64, holder string) error {
	return s.write(ctx, func(tx wtx, _ *changes) error {
		return releaseTx(ctx, tx, k, accountID, holder)
	})
}

func releaseTx(ctx context.Context, tx wtx, k leaseKind, accountID int64, holder string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+k.table+` WHERE account_id = ? AND holder = ?`, accountID, holder); err != nil {
		return fmt.Errorf("store: release %s of account %d: %w", k.what, accountID, err)
	}
	return nil
}
