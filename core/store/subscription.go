package store

import (
	"context"
	"fmt"
)

// A subscription outlives its mailbox (RFC 3501 6.3.6: the server must not
// remove a name from the subscriptions because the mailbox is gone). The
// subscribed flag of an existing mailbox is Mailbox.Subscribed; the
// subscribed names with no mailbox are kept apart (kept_subscriptions,
// filled by a trigger when a subscribed mailbox is deleted), and a mailbox
// made again under such a name is subscribed.

// KeptSubscriptions returns the names an account is subscribed to that are
// not mailboxes (any more), sorted.
func (s *Store) KeptSubscriptions(ctx context.Context, accountID int64) ([]string, error) {
	return queryAll(ctx, s.r, func(sc rowScanner) (string, error) {
		var n string
		err := sc.Scan(&n)
		return n, err
	}, `SELECT k.name FROM kept_subscriptions k WHERE k.account_id = ?
		AND NOT EXISTS (SELECT 1 FROM mailboxes m WHERE m.account_id = k.account_id AND m.name = k.name)
		ORDER BY k.name`, accountID)
}

// setKeptSubscription subscribes or unsubscribes a name that is not a
// mailbox.
func setKeptSubscription(ctx context.Context, tx wtx, accountID int64, name string, subscribed bool) error {
	if subscribed {
		if _, err := tx.ExecContext(ctx, `INSERT INTO kept_subscriptions(account_id, name) VALUES (?, ?) ON CONFLICT DO NOTHING`, accountID, name); err != nil {
			return fmt.Errorf("store: subscribe: %w", err)
		}
		return nil
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM kept_subscriptions WHERE account_id = ? AND name = ?`, accountID, name)
	if err != nil {
		return fmt.Errorf("store: unsubscribe: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("subscription %s: %w", name, ErrNotFound)
	}
	return nil
}
