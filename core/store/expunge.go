package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// expungeUIDs removes messages from a mailbox under one new MODSEQ and
// remembers their UIDs with it, so that a client resynchronising with
// QRESYNC learns which messages vanished since the MODSEQ it knew (RFC 7162
// 3.2.5). UIDs that are not there are skipped.
func expungeUIDs(ctx context.Context, tx *sql.Tx, mailboxID int64, uids []uint32) error {
	modseq, err := bumpModSeq(ctx, tx, mailboxID)
	if err != nil {
		return err
	}
	del, err := tx.PrepareContext(ctx, `DELETE FROM messages WHERE mailbox_id = ? AND uid = ?`)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer del.Close()
	rec, err := tx.PrepareContext(ctx, `INSERT INTO expunged(mailbox_id, uid, modseq) VALUES (?, ?, ?)
		ON CONFLICT(mailbox_id, uid) DO UPDATE SET modseq = excluded.modseq`)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer rec.Close()
	for _, u := range uids {
		res, err := del.ExecContext(ctx, mailboxID, u)
		if err != nil {
			return fmt.Errorf("store: expunge: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue
		}
		if _, err := rec.ExecContext(ctx, mailboxID, u, modseq); err != nil {
			return fmt.Errorf("store: expunge: %w", err)
		}
	}
	return nil
}

// Expunged returns, in ascending order, the UIDs of a mailbox's messages
// expunged with a MODSEQ above sinceModSeq (RFC 7162 VANISHED). A message
// expunged before this was recorded (schema 7) is not listed.
func (s *Store) Expunged(ctx context.Context, mailboxID int64, sinceModSeq uint64) ([]uint32, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid`, mailboxID, sinceModSeq)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var u uint32
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return out, nil
}

// ExpungeHistory returns the MODSEQ after which every expunge of a mailbox
// is recorded (Expunged): 0 for a mailbox made by this Mailferry, the
// mailbox's HIGHESTMODSEQ at the upgrade to schema 7 for an older one.
func (s *Store) ExpungeHistory(ctx context.Context, mailboxID int64) (uint64, error) {
	var since uint64
	err := s.r.QueryRowContext(ctx, `SELECT since FROM expunge_history WHERE mailbox_id = ?`, mailboxID).Scan(&since)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("store: %w", err)
	}
	return since, nil
}
