package store

import (
	"context"
	"database/sql"
	"encoding/json"
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
}

func (s *Store) enqueue(ctx context.Context, tx *sql.Tx, ch *changes, from string, rcpts []string, body []byte, note string) (int64, error) {
	if len(rcpts) == 0 {
		return 0, fmt.Errorf("%w: no recipients", ErrInvalid)
	}
	key, err := s.putBlob(ctx, tx, ch, body)
	if err != nil {
		return 0, err
	}
	rj, _ := json.Marshal(rcpts)
	t := now()
	res, err := tx.ExecContext(ctx, `INSERT INTO queue(created, mail_from, rcpts, blob, next_attempt, note) VALUES(?, ?, ?, ?, ?, ?)`,
		t, from, string(rj), key, t, note)
	if err != nil {
		return 0, fmt.Errorf("store: enqueue: %w", err)
	}
	ch.queue = true
	return res.LastInsertId()
}

// Enqueue adds a message to the relay queue, due now.
func (s *Store) Enqueue(ctx context.Context, from string, rcpts []string, body []byte, note string) (int64, error) {
	var id int64
	err := s.write(ctx, func(tx *sql.Tx, ch *changes) error {
		var err error
		id, err = s.enqueue(ctx, tx, ch, from, rcpts, body, note)
		return err
	})
	return id, err
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

// QueueDue lists up to limit queued items whose next attempt is due at t.
func (s *Store) QueueDue(ctx context.Context, t time.Time, limit int) ([]*QueueItem, error) {
	return s.queryQueue(ctx, `WHERE q.state = ? AND q.next_attempt <= ? ORDER BY q.next_attempt, q.id LIMIT ?`, QueueQueued, t.Unix(), limit)
}

// QueueItem returns one queue item, or ErrNotFound.
func (s *Store) QueueItem(ctx context.Context, id int64) (*QueueItem, error) {
	l, err := s.queryQueue(ctx, `WHERE q.id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(l) == 0 {
		return nil, fmt.Errorf("queue item %d: %w", id, ErrNotFound)
	}
	return l[0], nil
}

// QueueDefer records a failed attempt: the recipients still to serve, the
// error and when to try next.
func (s *Store) QueueDefer(ctx context.Context, id int64, rcpts []string, next time.Time, lastErr string) error {
	rj, _ := json.Marshal(rcpts)
	return s.queueExec(ctx, id, `UPDATE queue SET rcpts = ?, attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE id = ?`,
		string(rj), next.Unix(), lastErr, id)
}

// QueueRetry makes an item due now (and releases a held one).
func (s *Store) QueueRetry(ctx context.Context, id int64) error {
	return s.queueExec(ctx, id, `UPDATE queue SET state = ?, next_attempt = ? WHERE id = ?`, QueueQueued, now(), id)
}

// QueueHold keeps an item without trying it until QueueRetry.
func (s *Store) QueueHold(ctx context.Context, id int64) error {
	return s.queueExec(ctx, id, `UPDATE queue SET state = ? WHERE id = ?`, QueueHeld, id)
}

// QueueDelete removes an item (delivered, bounced, or deleted by the admin).
func (s *Store) QueueDelete(ctx context.Context, id int64) error {
	return s.queueExec(ctx, id, `DELETE FROM queue WHERE id = ?`, id)
}

// QueueDone removes a delivered item and, in the same transaction, queues
// a follow-up message (a bounce) when bounce is not nil, so that a crash
// between the two can neither lose the bounce nor send it twice.
func (s *Store) QueueDone(ctx context.Context, id int64, bounce *QueueItem, bounceBody []byte) error {
	return s.write(ctx, func(tx *sql.Tx, ch *changes) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM queue WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("queue item %d: %w", id, ErrNotFound)
		}
		ch.queue = true
		if bounce != nil {
			_, err = s.enqueue(ctx, tx, ch, bounce.From, bounce.Rcpts, bounceBody, bounce.Note)
		}
		return err
	})
}

func (s *Store) queueExec(ctx context.Context, id int64, q string, args ...any) error {
	return s.write(ctx, func(tx *sql.Tx, ch *changes) error {
		return queueExecTx(ctx, tx, ch, id, q, args...)
	})
}
