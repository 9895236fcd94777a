package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// \Recent (RFC 3501 2.3.2) is the one flag that is not a message's but a
// session's: a message is recent to the first IMAP session that has its
// mailbox selected (read-write) once it arrived, and to no other. The store
// keeps, per mailbox, the highest UID some session claimed (mailbox_recent);
// messages above it are recent to whoever claims them next: a session's
// poll (ClaimRecent, TryClaimRecent), or an APPEND into the mailbox its
// session has selected, in the APPEND's own transaction
// (AppendMessageRecent, Tx.ClaimRecent).

// RecentFrom returns the highest UID of a mailbox already claimed as
// recent: messages above it are recent and unclaimed.
func (s *Store) RecentFrom(ctx context.Context, mailboxID int64) (uint32, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("store: recent: %w", err)
	}
	var last uint32
	err := s.readRow(ctx, func(r *sql.Row) error { return r.Scan(&last) },
		`SELECT coalesce((SELECT last_uid FROM mailbox_recent WHERE mailbox_id = ?), 0)`, mailboxID)
	if err != nil {
		return 0, fmt.Errorf("store: recent: %w", err)
	}
	return last, nil
}

// ClaimRecent claims the messages of a mailbox up to UID upTo as recent to
// the caller and returns the highest UID claimed before: the caller's
// recent messages are those with a UID above it and up to upTo (none if it
// is upTo or more). Two callers never claim the same message.
//
// A claim that finds nothing left to claim (the usual case: every session
// on the mailbox tries to claim each new message, one wins) reads only and
// never waits for the writer: claims only raise last_uid. The claims of
// one mailbox in this process take turns (Store.claims), so that of the
// sessions that see a new message at once only the first takes the writer
// and the others, after it committed, find nothing left and only read:
// without the turns each of them queued for the writer (behind every
// APPEND's and EXPUNGE's fsync) only to find its claim lost, and the
// FETCH or STORE whose end it was answered only then.
//
// A claim that changes something commits without holding the writer for an
// fsync, as a STORE does, and, unlike a STORE, does not wait for an fsync
// either (writeUnsyncedThen): the command whose end made the claim (a FETCH,
// a STORE, an APPEND) is not held up by a disk flush for it. A claim lost in
// a power cut is safe: after the restart the messages are recent to the
// first session that selects their mailbox, which is what RFC 3501 2.3.2
// asks when it is not known whether a session was told ("that message
// SHOULD be considered recent"); the sessions told before are gone. No
// message, flag or UID depends on it, and the next fsync of the log (any
// STORE, EXPUNGE or APPEND) makes it durable.
func (s *Store) ClaimRecent(ctx context.Context, mailboxID int64, upTo uint32) (uint32, error) {
	last, _, err := s.claimRecent(ctx, mailboxID, upTo, true)
	return last, err
}

// TryClaimRecent is ClaimRecent that never waits for a write: when the
// claim would have to wait (another claim of the mailbox in this process
// is under way, or the writer is busy: an APPEND's commit holds it for
// its fsync) it claims nothing and returns done false, and the caller
// tells its client of the new messages later (a FETCH, STORE or SEARCH
// need not report them, RFC 3501 5.2). A claim that finds nothing left to
// claim only reads and is done.
func (s *Store) TryClaimRecent(ctx context.Context, mailboxID int64, upTo uint32) (last uint32, done bool, err error) {
	return s.claimRecent(ctx, mailboxID, upTo, false)
}

func (s *Store) claimRecent(ctx context.Context, mailboxID int64, upTo uint32, wait bool) (uint32, bool, error) {
	if last, err := s.RecentFrom(ctx, mailboxID); err != nil {
		return 0, false, err
	} else if last >= upTo {
		return last, true, nil
	}
	turn := &s.claims[uint64(mailboxID)%uint64(len(s.claims))]
	if !wait {
		// The writer is a pool of one connection: one in use is a write
		// under way (racy, but a claim that loses the race only waits for
		// that one write, as every claim did before).
		if s.w.Stats().InUse > 0 || !turn.TryLock() {
			return 0, false, nil
		}
	} else {
		turn.Lock()
	}
	locked := true
	unlock := func() {
		if locked {
			locked = false
			turn.Unlock()
		}
	}
	defer unlock()
	// Again in turn: the claim just before may have taken these messages.
	if last, err := s.RecentFrom(ctx, mailboxID); err != nil {
		return 0, false, err
	} else if last >= upTo {
		return last, true, nil
	}
	var last uint32
	wctx := s.writeCtx(ctx)
	// The turn ends at the commit: the next claimer reads it then.
	err := s.writeUnsyncedThen(ctx, func(tx wtx, ch *changes) error {
		var err error
		last, err = claimRecentTx(wctx, tx, mailboxID, upTo)
		return err
	}, unlock)
	return last, err == nil, err
}

// claimRecentTx claims a mailbox's messages up to UID upTo in tx and
// returns the highest UID claimed before (see ClaimRecent). The writers
// it runs among are one at a time (SQLite's one writer; on PostgreSQL
// the account's lock, which every write of the mailbox takes), so the
// read and the raise are one step.
func claimRecentTx(ctx context.Context, tx wtx, mailboxID int64, upTo uint32) (uint32, error) {
	var last uint32
	err := tx.QueryRowContext(ctx, `SELECT last_uid FROM mailbox_recent WHERE mailbox_id = ?`, mailboxID).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		last = 0
	} else if err != nil {
		return 0, fmt.Errorf("store: claim recent: %w", err)
	}
	if last >= upTo {
		return last, nil
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO mailbox_recent(mailbox_id, last_uid) SELECT id, ? FROM mailboxes WHERE id = ?
		ON CONFLICT(mailbox_id) DO UPDATE SET last_uid = max(mailbox_recent.last_uid, excluded.last_uid)`, upTo, mailboxID)
	if err != nil {
		return 0, fmt.Errorf("store: claim recent: %w", err)
	}
	return last, nil
}

// ClaimRecent claims a mailbox's messages up to UID upTo as recent in the
// transaction, as Store.ClaimRecent does, and returns the highest UID
// claimed before: for an APPEND of several messages (MULTIAPPEND) into
// the mailbox its session has selected read-write (AppendMessageRecent).
func (t *Tx) ClaimRecent(mailboxID int64, upTo uint32) (uint32, error) {
	if err := t.inScope(mailboxID); err != nil {
		return 0, err
	}
	last, err := claimRecentTx(t.ctx, t.tx, mailboxID, upTo)
	return last, conflict(err)
}

// AppendMessageRecent is AppendMessage for a session that appends to the
// mailbox it has selected read-write: in the APPEND's own transaction it
// claims the mailbox's messages up to the new one as recent to that
// session (ClaimRecent's claim), and returns, beside the message, the
// highest UID claimed before. The session's recent messages from this
// claim are those above it and up to the new message's UID. So the new
// message's claim is no write of its own after the APPEND (a turn of the
// writer, behind the other sessions' writes), and no other session can
// claim it first: it is theirs to see only once committed, claimed.
// RFC 3501 2.3.2 lets the appending session be the one: it is the first
// to be told of the message (in its APPEND's response).
func (s *Store) AppendMessageRecent(ctx context.Context, mailboxID int64, m *NewMessage) (*Message, uint32, error) {
	return s.appendMessageThen(ctx, mailboxID, m, true)
}

// RecentCount counts a mailbox's messages that are recent and unclaimed
// (STATUS RECENT).
func (s *Store) RecentCount(ctx context.Context, mailboxID int64) (uint32, error) {
	var n uint32
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE mailbox_id = ?
		AND uid > coalesce((SELECT last_uid FROM mailbox_recent WHERE mailbox_id = ?), 0)`, mailboxID, mailboxID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: recent: %w", err)
	}
	return n, nil
}
