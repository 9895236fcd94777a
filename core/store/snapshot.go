package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// UIDState is one message's UID, flags and MODSEQ.
type UIDState struct {
	UID    uint32
	Flags  []string
	ModSeq uint64
}

// Snapshot is a consistent view of a mailbox's message list, as the IMAP
// front end needs it to number messages and to tell sessions of changes.
type Snapshot struct {
	HighestModSeq uint64
	UIDNext       uint32
	UIDValidity   uint32
	// Unchanged is true when the mailbox's HIGHESTMODSEQ still equals the
	// sinceModSeq asked for (not 0); UIDs and Changed are then nil.
	Unchanged bool
	// UIDs are all the mailbox's UIDs, ascending.
	UIDs []uint32
	// Changed are the messages with a MODSEQ above sinceModSeq (all of them
	// when sinceModSeq is 0), in UID order.
	Changed []UIDState
}

// Snapshot reads, in one read transaction, a mailbox's HIGHESTMODSEQ, its
// UIDs and the flags of the messages changed after sinceModSeq. Every
// change (append, flag change, expunge, copy in, move out) raises the
// mailbox's HIGHESTMODSEQ, so a caller that kept the previous value learns
// of all changes since.
func (s *Store) Snapshot(ctx context.Context, mailboxID int64, sinceModSeq uint64) (*Snapshot, error) {
	tx, err := s.beginRead(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: begin read: %w", err)
	}
	defer tx.end()
	var snap Snapshot
	err = tx.QueryRowContext(ctx, `SELECT highest_modseq, uid_next, uid_validity FROM mailboxes WHERE id = ?`, mailboxID).
		Scan(&snap.HighestModSeq, &snap.UIDNext, &snap.UIDValidity)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("mailbox %d: %w", mailboxID, ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if sinceModSeq != 0 && snap.HighestModSeq == sinceModSeq {
		snap.Unchanged = true
		return &snap, nil
	}
	if !s.d.postgres() {
		if ok, err := snap.readPacked(ctx, tx, mailboxID, sinceModSeq); err != nil || ok {
			if err != nil {
				return nil, err
			}
			return &snap, nil
		}
	}
	rows, err := tx.QueryContext(ctx, `SELECT uid, flags, modseq FROM messages WHERE mailbox_id = ? ORDER BY uid`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var uid uint32
		var flags string
		var modseq uint64
		if err := rows.Scan(&uid, &flags, &modseq); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		snap.add(uid, modseq, flags, sinceModSeq)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &snap, nil
}

func (snap *Snapshot) add(uid uint32, modseq uint64, flags string, sinceModSeq uint64) {
	snap.UIDs = append(snap.UIDs, uid)
	if modseq > sinceModSeq {
		st := UIDState{UID: uid, ModSeq: modseq}
		if flags != "" {
			st.Flags = strings.Split(flags, " ")
		}
		snap.Changed = append(snap.Changed, st)
	}
}

// packedSnapshotQuery reads a mailbox's count of messages and, as one
// string, each one's "uid modseq flags" line in UID order, from the index
// messages_snapshot.
const packedSnapshotQuery = `SELECT count(*), group_concat(uid || ' ' || modseq || ' ' || flags, char(10)) FROM (SELECT uid, modseq, flags FROM messages WHERE mailbox_id = ? ORDER BY uid)`

// readPacked (SQLite) reads every message's UID, MODSEQ and flags as one string
// built by SQLite ("uid modseq flags...", a line each), which costs one
// call into SQLite for the mailbox instead of one per message (about 2 µs
// each, most of a SELECT's time in a large mailbox). It reports false,
// having added nothing, when the string does not parse into exactly the
// mailbox's count of messages, each UID above the one before (flags hold
// neither spaces nor line breaks, but a row that broke the format would be
// told by its count); the caller then reads the rows one by one.
func (snap *Snapshot) readPacked(ctx context.Context, tx *readTx, mailboxID int64, sinceModSeq uint64) (bool, error) {
	var n int
	var packed sql.NullString
	err := tx.QueryRowContext(ctx, packedSnapshotQuery, mailboxID).
		Scan(&n, &packed)
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	if n == 0 {
		return true, nil
	}
	type row struct {
		uid    uint32
		modseq uint64
		flags  string
	}
	rows := make([]row, 0, n)
	rest := packed.String
	for rest != "" {
		line := rest
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		f1, after, ok1 := strings.Cut(line, " ")
		f2, flags, ok2 := strings.Cut(after, " ")
		uid, err1 := strconv.ParseUint(f1, 10, 32)
		modseq, err2 := strconv.ParseUint(f2, 10, 64)
		if !ok1 || !ok2 || err1 != nil || err2 != nil || (len(rows) > 0 && uint32(uid) <= rows[len(rows)-1].uid) {
			return false, nil
		}
		rows = append(rows, row{uint32(uid), modseq, flags})
	}
	if len(rows) != n {
		return false, nil
	}
	snap.UIDs = make([]uint32, 0, n)
	for _, r := range rows {
		snap.add(r.uid, r.modseq, r.flags, sinceModSeq)
	}
	return true, nil
}

// deltaMailboxQuery reads a mailbox's HIGHESTMODSEQ, UIDNEXT, UIDVALIDITY
// and count of messages, kept in its row by triggers on messages (schema
// step message_count): counting the mailbox's messages instead read an
// index entry per message on every poll of every session
// (TestDeltaCountsNoMessages).
const deltaMailboxQuery = `SELECT highest_modseq, uid_next, uid_validity, message_count FROM mailboxes WHERE id = ?`

// deltaChangedQuery reads the messages of a mailbox changed after a MODSEQ
// by the index messages_modseq, in no order.
const deltaChangedQuery = `SELECT uid, flags, modseq FROM messages WHERE mailbox_id = ? AND modseq > ?`

// deltaExpungedQuery reads the UIDs expunged from a mailbox after a MODSEQ
// by the index expunged_modseq, in no order.
const deltaExpungedQuery = `SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ?`

// deltaStatements are the statements Delta runs, and the only ones
// (TestDeltaCountsNoMessages reads their query plans).
var deltaStatements = []string{deltaMailboxQuery, deltaChangedQuery, deltaExpungedQuery}

// Delta is what changed in a mailbox after a MODSEQ (see Store.Delta).
type Delta struct {
	HighestModSeq uint64
	UIDNext       uint32
	UIDValidity   uint32
	// Unchanged is true when HIGHESTMODSEQ still equals the MODSEQ asked
	// for; Messages, Changed and Expunged are then empty.
	Unchanged bool
	// Messages is the number of messages in the mailbox now.
	Messages int
	// Changed are the messages (new, or with new flags) with a MODSEQ
	// above the one asked for, in UID order.
	Changed []UIDState
	// Expunged are the UIDs expunged after the MODSEQ asked for, ascending
	// (store.Expunged), whether or not the caller knew them.
	Expunged []uint32
}

// Delta reads, in one read transaction, what changed in a mailbox after
// sinceModSeq (not 0): the messages changed or added, the UIDs expunged
// and the message count (kept in the mailbox's row). It reads only those
// rows (by index), where
// Snapshot reads the whole mailbox; a caller that keeps a UID list checks
// its count against Messages, since an expunge made by a Mailferry older
// than schema 7 is not recorded.
func (s *Store) Delta(ctx context.Context, mailboxID int64, sinceModSeq uint64) (*Delta, error) {
	// Sorted here, not by ORDER BY uid: with it SQLite reads the whole
	// mailbox from the covering index messages_snapshot (in UID order),
	// and every UID ever expunged from it by the primary key of expunged,
	// instead of the ranges of messages_modseq and expunged_modseq, on
	// every poll of every session (TestDeltaReadsModSeqRange).
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	tx, err := s.beginRead(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: begin read: %w", err)
	}
	defer tx.end()
	ctx = s.readCtx(ctx)
	var d Delta
	err = tx.QueryRowContext(ctx, deltaMailboxQuery, mailboxID).
		Scan(&d.HighestModSeq, &d.UIDNext, &d.UIDValidity, &d.Messages)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("mailbox %d: %w", mailboxID, ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if d.HighestModSeq == sinceModSeq {
		d.Unchanged = true
		d.Messages = 0
		return &d, nil
	}
	rows, err := tx.QueryContext(ctx, deltaChangedQuery, mailboxID, sinceModSeq)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	for rows.Next() {
		var st UIDState
		var flags string
		if err := rows.Scan(&st.UID, &flags, &st.ModSeq); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: %w", err)
		}
		if flags != "" {
			st.Flags = strings.Split(flags, " ")
		}
		d.Changed = append(d.Changed, st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	slices.SortFunc(d.Changed, func(a, b UIDState) int { return cmp.Compare(a.UID, b.UID) })
	rows, err = tx.QueryContext(ctx, deltaExpungedQuery, mailboxID, sinceModSeq)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u uint32
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		d.Expunged = append(d.Expunged, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	slices.Sort(d.Expunged)
	return &d, nil
}
