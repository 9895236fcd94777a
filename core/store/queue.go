package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Queue states.
const (
	QueueQueued = "queued" // waiting for its next attempt
	QueueHeld   = "held"   // kept, not tried until released
)

// QueueItem is a message waiting to be handed to another server.
type QueueItem struct {
	ID          int64
	Created     time.Time
	From        string
	Rcpts       []string
	BlobKey     string
	Size        int64
	Attempts    int
	NextAttempt time.Time
	LastError   string
	State       string
	// Note is free text for the relay (for example "bounce").
	Note string
	// Claimed is the claim QueueClaimDue took on the item (its lease's
	// end, as stored: on the database's clock); QueueRenewClaim moves it.
	// Zero for an item not claimed.
	Claimed time.Time
}

func (s *Store) enqueue(ctx context.Context, tx wtx, ch *changes, from string, rcpts []string, body []byte, note string) (int64, error) {
	if len(rcpts) == 0 {
		return 0, fmt.Errorf("%w: no recipients", ErrInvalid)
	}
	key, err := s.putBlob(ctx, tx, ch, body)
	if err != nil {
		return 0, err
	}
	rj, _ := json.Marshal(rcpts)
	t := s.now().Unix()
	var id int64
	err = tx.QueryRowContext(ctx, `INSERT INTO queue(created, mail_from, rcpts, blob, next_attempt, note) VALUES(?, ?, ?, ?, ?, ?) RETURNING id`,
		t, from, string(rj), key, t, note).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store: enqueue: %w", err)
	}
	ch.queue = true
	return id, nil
}

const queueCols = `q.id, q.created, q.mail_from, q.rcpts, q.blob, b.size, q.attempts, q.next_attempt, q.last_error, q.state, q.note`

func scanQueue(sc rowScanner) (*QueueItem, error) {
	var q QueueItem
	var created, next int64
	var rcpts string
	if err := sc.Scan(&q.ID, &created, &q.From, &rcpts, &q.BlobKey, &q.Size, &q.Attempts, &next, &q.LastError, &q.State, &q.Note); err != nil {
		return nil, err
	}
	q.Created, q.NextAttempt = time.Unix(created, 0), time.Unix(next, 0)
	if err := json.Unmarshal([]byte(rcpts), &q.Rcpts); err != nil {
		return nil, fmt.Errorf("queue item %d: bad recipients: %w", q.ID, err)
	}
	return &q, nil
}

func (s *Store) queryQueue(ctx context.Context, where string, args ...any) ([]*QueueItem, error) {
	return queryAll(ctx, s.r, scanQueue, `SELECT `+queueCols+` FROM queue q JOIN blobs b ON b.key = q.blob `+where, args...)
}

// Queue lists the whole queue, oldest first.
func (s *Store) Queue(ctx context.Context) ([]*QueueItem, error) {
	return s.queryQueue(ctx, `ORDER BY q.id`)
}

// QueueRetry makes an item due now (and releases a held one).
func (s *Store) QueueRetry(ctx context.Context, id int64) error {
	return s.queueExec(ctx, id, `UPDATE queue SET state = ?, next_attempt = ? WHERE id = ?`, QueueQueued, s.now().Unix(), id)
}

// QueueHold keeps an item without trying it until QueueRetry.
func (s *Store) QueueHold(ctx context.Context, id int64) error {
	return s.queueExec(ctx, id, `UPDATE queue SET state = ? WHERE id = ?`, QueueHeld, id)
}

// QueueDelete removes an item (delivered, bounced, or deleted by the admin).
func (s *Store) QueueDelete(ctx context.Context, id int64) error {
	return s.queueExec(ctx, id, `DELETE FROM queue WHERE id = ?`, id)
}

func (s *Store) queueExec(ctx context.Context, id int64, q string, args ...any) error {
	return s.write(ctx, func(tx wtx, ch *changes) error {
		return queueExecTx(ctx, tx, ch, id, q, args...)
	})
}

// The queue operations the relay needs inside a write transaction, so
// that a delivery's outcome (the item deleted or narrowed, a bounce queued,
// a local copy appended) commits as one unit.
//
// Queue IDs are SQLite rowids and may be reused after a delete, so these
// operations name an item by its ID and its blob key together: an item that
// was deleted meanwhile (and whose ID a new item took) is ErrNotFound, never
// confused with the new one.

// QueueDelete removes queue item id (whose message is blobKey) in this
// transaction, or fails with ErrNotFound (for example when the
// administrator deleted it meanwhile).
func (t *Tx) QueueDelete(id int64, blobKey string) error {
	if err := t.inScope(0); err != nil {
		return err
	}
	return queueExecTx(t.ctx, t.tx, t.ch, id, `DELETE FROM queue WHERE id = ? AND blob = ?`, id, blobKey)
}

// QueueSetRcpts records, in this transaction, that only rcpts remain to be
// served by queue item id (whose message is blobKey), without counting an attempt. An empty rcpts
// deletes the item.
func (t *Tx) QueueSetRcpts(id int64, blobKey string, rcpts []string) error {
	if err := t.inScope(0); err != nil {
		return err
	}
	if len(rcpts) == 0 {
		return t.QueueDelete(id, blobKey)
	}
	rj, _ := json.Marshal(rcpts)
	return queueExecTx(t.ctx, t.tx, t.ch, id, `UPDATE queue SET rcpts = ? WHERE id = ? AND blob = ?`, string(rj), id, blobKey)
}

// QueueDefer records a failed attempt in this transaction: the recipients
// still to serve (not empty), the error and when to try next (on this
// node's clock; kept on the database's, see clock.go).
func (t *Tx) QueueDefer(id int64, blobKey string, rcpts []string, next time.Time, lastErr string) error {
	if err := t.inScope(0); err != nil {
		return err
	}
	if len(rcpts) == 0 {
		return fmt.Errorf("%w: defer queue item %d without recipients", ErrInvalid, id)
	}
	rj, _ := json.Marshal(rcpts)
	return queueExecTx(t.ctx, t.tx, t.ch, id, `UPDATE queue SET rcpts = ?, attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE id = ? AND blob = ?`,
		string(rj), t.s.toDB(next).Unix(), lastErr, id, blobKey)
}

// QueueNextDue returns the earliest next attempt among queued (not held)
// items, on this node's clock; ok is false when there is none.
func (s *Store) QueueNextDue(ctx context.Context) (next time.Time, ok bool, err error) {
	var n sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT min(next_attempt) FROM queue WHERE state = ?`, QueueQueued).Scan(&n); err != nil {
		return time.Time{}, false, fmt.Errorf("store: %w", err)
	}
	if !n.Valid {
		return time.Time{}, false, nil
	}
	return s.fromDB(time.Unix(n.Int64, 0)), true, nil
}

func queueExecTx(ctx context.Context, tx wtx, ch *changes, id int64, q string, args ...any) error {
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
//
// now and until are on the caller's clock (time.Now and later). On
// PostgreSQL they are moved onto the database's clock (clock.go) by this
// node's offset to it, read in the claiming transaction, so that nodes
// whose clocks disagree never take an item another still holds.
func (s *Store) QueueClaimDue(ctx context.Context, now, until time.Time, limit int, exclude []int64) ([]*QueueItem, error) {
	return s.QueueClaimDueExcept(ctx, now, until, limit, exclude, nil)
}

// QueueClaimDueExcept is QueueClaimDue that also leaves out the items whose
// reverse-path (MAIL FROM, as queued) is one of senders: a relay that has
// as many deliveries of a sender under way as it allows one sender takes
// none more of it, so that one sender's mail to slow or silent servers
// cannot take every worker.
func (s *Store) QueueClaimDueExcept(ctx context.Context, now, until time.Time, limit int, exclude []int64, senders []string) ([]*QueueItem, error) {
	var out []*QueueItem
	err := s.write(ctx, func(tx wtx, ch *changes) error {
		if s.d.postgres() {
			db, err := s.dbNow(ctx, tx)
			if err != nil {
				return err
			}
			off := db.Sub(s.clk.wall()).Round(time.Second)
			now, until = now.Add(off), until.Add(off)
		}
		ex, err := json.Marshal(exclude)
		if err != nil || exclude == nil {
			ex = []byte("[]")
		}
		fr, err := json.Marshal(senders)
		if err != nil || senders == nil {
			fr = []byte("[]")
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+queueCols+` FROM queue q JOIN blobs b ON b.key = q.blob
			WHERE q.state = ? AND q.next_attempt <= ? AND q.id `+s.d.notIn+` AND q.mail_from `+s.d.notInText+`
			ORDER BY q.next_attempt, q.id LIMIT ?`, QueueQueued, now.Unix(), string(ex), string(fr), limit)
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
			q.Claimed = time.Unix(until.Unix(), 0)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ErrClaimLost: a queue item's claim was not the caller's any more (its
// outcome was recorded, an administrator changed or deleted it, or its
// lease ran out and another worker claimed it).
var ErrClaimLost = errors.New("store: queue item's claim lost")

// QueueRenewClaim moves the claim QueueClaimDue took on it out to until
// (on the caller's clock, as QueueClaimDue's), so that a delivery longer
// than the claim's lease is not taken by another worker (another node)
// and sent twice. It fails with ErrClaimLost, changing nothing, when the
// item is not held by that claim any more; on success it.Claimed is the
// new claim.
func (s *Store) QueueRenewClaim(ctx context.Context, it *QueueItem, until time.Time) error {
	if it.Claimed.IsZero() {
		return fmt.Errorf("%w: queue item %d was not claimed", ErrInvalid, it.ID)
	}
	return s.write(ctx, func(tx wtx, _ *changes) error {
		if s.d.postgres() {
			db, err := s.dbNow(ctx, tx)
			if err != nil {
				return err
			}
			until = until.Add(db.Sub(s.clk.wall()).Round(time.Second))
		}
		res, err := tx.ExecContext(ctx, `UPDATE queue SET next_attempt = ? WHERE id = ? AND blob = ? AND state = ? AND next_attempt = ?`,
			until.Unix(), it.ID, it.BlobKey, QueueQueued, it.Claimed.Unix())
		if err != nil {
			return fmt.Errorf("store: renew claim of queue item %d: %w", it.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: renew claim of queue item %d: %w", it.ID, err)
		} else if n == 0 {
			return fmt.Errorf("%w: queue item %d", ErrClaimLost, it.ID)
		}
		it.Claimed = time.Unix(until.Unix(), 0)
		return nil
	})
}
