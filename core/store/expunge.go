package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// expungeUIDs removes messages from a mailbox under one new MODSEQ and
// remembers their UIDs with it, so that a client resynchronising with
// QRESYNC learns which messages vanished since the MODSEQ it knew (RFC 7162
// 3.2.5). UIDs that are not there are skipped. It returns the MODSEQ and
// the mailbox's account (bumpModSeqAccount).
func expungeUIDs(ctx context.Context, tx wtx, mailboxID int64, uids []uint32) (modseq uint64, accountID int64, err error) {
	modseq, accountID, err = bumpModSeqAccount(ctx, tx, mailboxID)
	if err != nil {
		return 0, 0, err
	}
	del := txStmt{tx, `DELETE FROM messages WHERE mailbox_id = ? AND uid = ?`}
	rec := txStmt{tx, `INSERT INTO expunged(mailbox_id, uid, modseq) VALUES (?, ?, ?)
		ON CONFLICT(mailbox_id, uid) DO UPDATE SET modseq = excluded.modseq`}
	for _, u := range uids {
		res, err := del.ExecContext(ctx, mailboxID, u)
		if err != nil {
			return 0, 0, fmt.Errorf("store: expunge: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue
		}
		if _, err := rec.ExecContext(ctx, mailboxID, u, modseq); err != nil {
			return 0, 0, fmt.Errorf("store: expunge: %w", err)
		}
	}
	return modseq, accountID, nil
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

// Seen names messages as a reader saw them, to remove them later (a POP3
// QUIT): the account (its ID and creation time), the mailbox (its ID and
// UIDVALIDITY) and, by UID, each message's blob key.
type Seen struct {
	AccountID   int64
	Created     time.Time
	MailboxID   int64
	UIDValidity uint32
	Blobs       map[uint32]string
}

// ExpungeSeen removes, in one transaction, the messages of seen that are
// still the ones the reader saw, and returns their UIDs in ascending
// order. An account deleted and made again may reuse the IDs of the old
// one (SQLite hands out the highest row ID again) and numbers its
// messages from UID 1 again: when the account's creation time, the
// mailbox's account or its UIDVALIDITY differ, nothing is removed and the
// error wraps ErrNotFound; a UID whose blob differs (or that is gone) is
// skipped.
func (s *Store) ExpungeSeen(ctx context.Context, seen *Seen) ([]uint32, error) {
	var gone []uint32
	err := s.write(ctx, func(tx wtx, ch *changes) error {
		var acct int64
		var validity uint32
		var created int64
		err := tx.QueryRowContext(ctx, `SELECT m.account_id, m.uid_validity, a.created FROM mailboxes m JOIN accounts a ON a.id = m.account_id WHERE m.id = ?`,
			seen.MailboxID).Scan(&acct, &validity, &created)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("mailbox %d: %w", seen.MailboxID, ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if acct != seen.AccountID || validity != seen.UIDValidity || created != seen.Created.Unix() {
			return fmt.Errorf("mailbox %d: %w: its account or UIDVALIDITY changed since it was read", seen.MailboxID, ErrNotFound)
		}
		sel := txStmt{tx, `SELECT blob FROM messages WHERE mailbox_id = ? AND uid = ?`}
		uids := make([]uint32, 0, len(seen.Blobs))
		for u := range seen.Blobs {
			uids = append(uids, u)
		}
		slices.Sort(uids)
		for _, u := range uids {
			var blob string
			err := sel.QueryRowContext(ctx, seen.MailboxID, u).Scan(&blob)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			} else if err != nil {
				return fmt.Errorf("store: %w", err)
			}
			if blob == seen.Blobs[u] {
				gone = append(gone, u)
			}
		}
		if len(gone) > 0 {
			if _, _, err := expungeUIDs(ctx, tx, seen.MailboxID, gone); err != nil {
				return err
			}
			ch.account(acct)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return gone, nil
}
