package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Kept UIDLs: the unique ids an old POP3 server gave an account's INBOX
// messages (RFC 1939 UIDL), read once by the migration engine and served
// by the POP3 front end, so that a client that leaves mail on the server
// does not download it all again after the move. The store keeps each
// UIDL with the key of its message's bytes (a blob key, blobkey.go) and, once a
// front end matched it, the message it names; it gives them no other
// meaning.

// KeptUIDL is one old UIDL of an account.
type KeptUIDL struct {
	// UIDL is the old server's unique id (1 to 70 characters 0x21–0x7E).
	UIDL string
	// BlobKey is the blob key of the old message's bytes, in the store's
	// form (Store.NewKeyHash), as Message.BlobKey.
	BlobKey string
	// MailboxID and UID name the message the UIDL was matched to; 0 while
	// it is not matched.
	MailboxID int64
	UID       uint32
}

// validUIDL reports whether u is a UIDL RFC 1939 section 7 allows.
func validUIDL(u string) bool {
	if len(u) < 1 || len(u) > 70 {
		return false
	}
	for i := 0; i < len(u); i++ {
		if u[i] < 0x21 || u[i] > 0x7e {
			return false
		}
	}
	return true
}

// KeepUIDLs records the old UIDLs of an account and marks its old list as
// read (UIDLsRead), in one transaction. A UIDL recorded already keeps its
// blob key and match; a malformed UIDL or blob key is ErrInvalid and
// nothing is recorded.
func (s *Store) KeepUIDLs(ctx context.Context, accountID int64, list []KeptUIDL) error {
	for _, k := range list {
		if !validUIDL(k.UIDL) || !isBlobKey(k.BlobKey) {
			return fmt.Errorf("store: kept UIDL %q: %w", k.UIDL, ErrInvalid)
		}
	}
	return s.write(ctx, func(tx wtx, ch *changes) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE id = ?`, accountID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("account %d: %w", accountID, ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("store: kept UIDLs: %w", err)
		}
		for _, k := range list {
			if _, err := tx.ExecContext(ctx, `INSERT INTO kept_uidls(account_id, uidl, blob) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
				accountID, k.UIDL, k.BlobKey); err != nil {
				return fmt.Errorf("store: kept UIDLs: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO uidl_reads(account_id, read_at) VALUES (?, ?)
			ON CONFLICT(account_id) DO UPDATE SET read_at = excluded.read_at`, accountID, now()); err != nil {
			return fmt.Errorf("store: kept UIDLs: %w", err)
		}
		return nil
	})
}

// UIDLsRead reports whether the old UIDL list of an account was recorded
// (KeepUIDLs), even an empty one.
func (s *Store) UIDLsRead(ctx context.Context, accountID int64) (bool, error) {
	var one int
	err := s.r.QueryRowContext(ctx, `SELECT 1 FROM uidl_reads WHERE account_id = ?`, accountID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("store: kept UIDLs: %w", err)
	}
	return true, nil
}

// KeptUIDLs lists the old UIDLs of an account, matched or not, in UIDL
// order.
func (s *Store) KeptUIDLs(ctx context.Context, accountID int64) ([]KeptUIDL, error) {
	return queryAll(ctx, s.r, func(sc rowScanner) (KeptUIDL, error) {
		var k KeptUIDL
		err := sc.Scan(&k.UIDL, &k.BlobKey, &k.MailboxID, &k.UID)
		return k, err
	}, `SELECT uidl, blob, mailbox_id, uid FROM kept_uidls WHERE account_id = ? ORDER BY uidl`, accountID)
}

// MatchKeptUIDLs binds unmatched old UIDLs of an account to messages of
// one of its mailboxes (UIDL → UID), in one transaction. A UIDL matched
// already, or unknown, is left as it is: a match never moves.
func (s *Store) MatchKeptUIDLs(ctx context.Context, accountID, mailboxID int64, match map[string]uint32) error {
	if len(match) == 0 {
		return nil
	}
	return s.write(ctx, func(tx wtx, ch *changes) error {
		for uidl, uid := range match {
			if uid == 0 {
				return fmt.Errorf("store: match UIDL %q to UID 0: %w", uidl, ErrInvalid)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE kept_uidls SET mailbox_id = ?, uid = ? WHERE account_id = ? AND uidl = ? AND uid = 0`,
				mailboxID, uid, accountID, uidl); err != nil {
				return fmt.Errorf("store: match kept UIDLs: %w", err)
			}
		}
		return nil
	})
}

// PinUIDLs records UIDLs a front end gave messages of an account before
// its old UIDL list was read (each with MailboxID, UID and BlobKey set),
// as matched kept UIDLs, so that a list read later does not change them:
// a client that saw one would download the message again. A UIDL recorded
// already is left as it is; a malformed one is ErrInvalid and nothing is
// recorded.
func (s *Store) PinUIDLs(ctx context.Context, accountID int64, list []KeptUIDL) error {
	if len(list) == 0 {
		return nil
	}
	for _, k := range list {
		if !validUIDL(k.UIDL) || !isBlobKey(k.BlobKey) || k.MailboxID == 0 || k.UID == 0 {
			return fmt.Errorf("store: pin UIDL %q: %w", k.UIDL, ErrInvalid)
		}
	}
	return s.write(ctx, func(tx wtx, ch *changes) error {
		for _, k := range list {
			if _, err := tx.ExecContext(ctx, `INSERT INTO kept_uidls(account_id, uidl, blob, mailbox_id, uid) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
				accountID, k.UIDL, k.BlobKey, k.MailboxID, k.UID); err != nil {
				return fmt.Errorf("store: pin UIDLs: %w", err)
			}
		}
		return nil
	})
}
