package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: begin read: %w", err)
	}
	defer tx.Rollback()
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
		snap.UIDs = append(snap.UIDs, uid)
		if modseq > sinceModSeq {
			st := UIDState{UID: uid, ModSeq: modseq}
			if flags != "" {
				st.Flags = strings.Split(flags, " ")
			}
			snap.Changed = append(snap.Changed, st)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &snap, nil
}
