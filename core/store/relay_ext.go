package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// This file holds the queue operations the relay needs inside a write
// transaction, so that a delivery's outcome (the item deleted or narrowed,
// a bounce queued, a local copy appended) commits as one unit.
//
// Queue IDs are SQLite rowids and may be reused after a delete, so these
// operations name an item by its ID and its blob key together: an item that
// was deleted meanwhile (and whose ID a new item took) is ErrNotFound, never
// confused with the new one.

// QueueDelete removes queue item id (whose message is blobKey) in this
// transaction, or fails with ErrNotFound (for example when the
// administrator deleted it meanwhile).
func (t *Tx) QueueDelete(id int64, blobKey string) error {
	return queueExecTx(t.ctx, t.tx, t.ch, id, `DELETE FROM queue WHERE id = ? AND blob = ?`, id, blobKey)
}

// QueueSetRcpts records, in this transaction, that only rcpts remain to be
// served by queue item id (whose message is blobKey), without counting an attempt. An empty rcpts
// deletes the item.
func (t *Tx) QueueSetRcpts(id int64, blobKey string, rcpts []string) error {
	if len(rcpts) == 0 {
		return t.QueueDelete(id, blobKey)
	}
	rj, _ := json.Marshal(rcpts)
	return queueExecTx(t.ctx, t.tx, t.ch, id, `UPDATE queue SET rcpts = ? WHERE id = ? AND blob = ?`, string(rj), id, blobKey)
}

// QueueDefer records a failed attempt in this transaction: the recipients
// still to serve (not empty), the error and when to try next.
func (t *Tx) QueueDefer(id int64, blobKey string, rcpts []string, next time.Time, lastErr string) error {
	if len(rcpts) == 0 {
		return fmt.Errorf("%w: defer queue item %d without recipients", ErrInvalid, id)
	}
	rj, _ := json.Marshal(rcpts)
	return queueExecTx(t.ctx, t.tx, t.ch, id, `UPDATE queue SET rcpts = ?, attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE id = ? AND blob = ?`,
		string(rj), next.Unix(), lastErr, id, blobKey)
}

// QueueNextDue returns the earliest next attempt among queued (not held)
// items; ok is false when there is none.
func (s *Store) QueueNextDue(ctx context.Context) (next time.Time, ok bool, err error) {
	var n sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT min(next_attempt) FROM queue WHERE state = ?`, QueueQueued).Scan(&n); err != nil {
		return time.Time{}, false, fmt.Errorf("store: %w", err)
	}
	if !n.Valid {
		return time.Time{}, false, nil
	}
	return time.Unix(n.Int64, 0), true, nil
}

func queueExecTx(ctx context.Context, tx *sql.Tx, ch *changes, id int64, q string, args ...any) error {
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("queue item %d: %w", id, ErrNotFound)
	}
	ch.queue = true
	return nil
}
