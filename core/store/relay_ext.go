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

// QueueClaimDue picks up to limit queued (not held) items due at now and,
// in the same transaction, moves their next attempt to until, so that no
// other worker (in this or another process) picks them while they are being
// delivered. The worker then records the outcome (QueueDelete, QueueSetRcpts,
// QueueDefer), which replaces the claim; an item whose worker died is due
// again at until. Items come oldest due first, as they were at the claim.
//
// Items whose IDs are in exclude (those the caller is delivering right now)
// are neither returned nor claimed.
func (s *Store) QueueClaimDue(ctx context.Context, now, until time.Time, limit int, exclude []int64) ([]*QueueItem, error) {
	var out []*QueueItem
	err := s.write(ctx, func(tx *sql.Tx, ch *changes) error {
		ex, err := json.Marshal(exclude)
		if err != nil || exclude == nil {
			ex = []byte("[]")
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+queueCols+` FROM queue q JOIN blobs b ON b.key = q.blob
			WHERE q.state = ? AND q.next_attempt <= ? AND q.id NOT IN (SELECT value FROM json_each(?))
			ORDER BY q.next_attempt, q.id LIMIT ?`, QueueQueued, now.Unix(), string(ex), limit)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		for rows.Next() {
			q, err := scanQueue(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("store: %w", err)
			}
			out = append(out, q)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		for _, q := range out {
			if _, err := tx.ExecContext(ctx, `UPDATE queue SET next_attempt = ? WHERE id = ?`, until.Unix(), q.ID); err != nil {
				return fmt.Errorf("store: claim queue item: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
