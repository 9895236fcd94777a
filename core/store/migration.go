package store

import (
	"context"
	"fmt"
)

// AdoptUIDValidity gives a mailbox that holds no messages and has had none
// copied into it a new UIDVALIDITY, and raises its UIDNEXT to at least
// uidNext. The migration engine uses it when an old server settles a
// mailbox's UIDVALIDITY only when the mailbox is first opened (Dovecot does
// so for a Maildir folder that was never selected): clients cannot have
// cached anything of an empty mailbox. It fails with ErrInvalid when the
// mailbox has messages.
func (s *Store) AdoptUIDValidity(ctx context.Context, mailboxID int64, uidValidity, uidNext uint32) error {
	if uidValidity == 0 {
		return fmt.Errorf("%w: UIDVALIDITY 0", ErrInvalid)
	}
	return s.write(ctx, func(tx wtx, ch *changes) error {
		return adoptUIDValidity(ctx, tx, ch, mailboxID, uidValidity, uidNext)
	})
}

// AdoptUIDValidityDone is AdoptUIDValidity and then SetMailboxMigration
// (state, migratedUID) in one commit: an empty old folder whose
// UIDVALIDITY the old server settled as the copy opened it is copied with
// one fsync, not two.
func (s *Store) AdoptUIDValidityDone(ctx context.Context, mailboxID int64, uidValidity, uidNext uint32, state string, migratedUID uint32) error {
	if uidValidity == 0 {
		return fmt.Errorf("%w: UIDVALIDITY 0", ErrInvalid)
	}
	return s.write(ctx, func(tx wtx, ch *changes) error {
		if err := adoptUIDValidity(ctx, tx, ch, mailboxID, uidValidity, uidNext); err != nil {
			return err
		}
		return setMailboxMigration(ctx, tx, ch, mailboxID, state, migratedUID)
	})
}

func adoptUIDValidity(ctx context.Context, tx wtx, ch *changes, mailboxID int64, uidValidity, uidNext uint32) error {
	accountID, err := mailboxAccount(ctx, tx, mailboxID)
	if err != nil {
		return err
	}
	var n int
	var migrated uint32
	if err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM messages WHERE mailbox_id = m.id), mig_last_uid
		FROM mailboxes m WHERE id = ?`, mailboxID).Scan(&n, &migrated); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if n > 0 || migrated > 0 {
		return fmt.Errorf("%w: mailbox %d is not empty", ErrInvalid, mailboxID)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET uid_validity = ?, uid_next = max(uid_next, ?),
		highest_modseq = highest_modseq + 1 WHERE id = ?`, uidValidity, max(uidNext, 1), mailboxID); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	ch.account(accountID)
	return nil
}
