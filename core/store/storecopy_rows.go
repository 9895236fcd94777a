package store

// Copy's messages, message bytes and last transaction (see storecopy.go).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// messageBatch is how many message rows are read and written at once.
const messageBatch = 256

// messages copies the messages of an account's mailboxes in t, a batch at
// a time, their bytes first.
func (c *copier) messages(ctx context.Context, t *Tx, account int64) error {
	tb := copyTable{name: "messages"}
	cols, err := c.columns(ctx, tb.name)
	if err != nil {
		return err
	}
	blobCol, sizeCol := -1, -1
	for i, col := range cols {
		switch col {
		case "blob":
			blobCol = i
		case "size":
			sizeCol = i
		}
	}
	if blobCol < 0 || sizeCol < 0 {
		return fmt.Errorf("store: messages has no blob or size column")
	}
	boxes, err := queryAll(ctx, c.src.r, func(r rowScanner) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	}, `SELECT id FROM mailboxes WHERE account_id = ? ORDER BY id`, account)
	if err != nil {
		return err
	}
	q := `SELECT ` + strings.Join(cols, ", ") + ` FROM messages WHERE mailbox_id = ? AND uid > ? ORDER BY uid LIMIT ` + fmt.Sprint(messageBatch)
	for _, box := range boxes {
		var last int64
		for {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("cancelled: %w", err)
			}
			batch, err := readRows(ctx, c.src.r, len(cols), q, box, last)
			if err != nil {
				return fmt.Errorf("store: read messages: %w", err)
			}
			if len(batch) == 0 {
				break
			}
			var blobs []blobRef
			for _, row := range batch {
				key, _ := row[blobCol].(string)
				size, _ := row[sizeCol].(int64)
				blobs = append(blobs, blobRef{key, size})
			}
			if err := c.blobs(ctx, t, blobs); err != nil {
				return err
			}
			if err := c.insert(ctx, t.tx, tb, cols, batch, nil); err != nil {
				return err
			}
			uidCol := indexOf(cols, "uid")
			last, _ = batch[len(batch)-1][uidCol].(int64)
			c.mu.Lock()
			c.p.Messages += int64(len(batch))
			c.mu.Unlock()
			c.tell()
			if len(batch) < messageBatch {
				break
			}
		}
	}
	return nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// readRows reads every row of q, each as n values.
func readRows(ctx context.Context, db *sql.DB, n int, q string, args ...any) ([][]any, error) {
	rs, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var all [][]any
	for rs.Next() {
		row := make([]any, n)
		ptrs := make([]any, n)
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			return nil, err
		}
		all = append(all, row)
	}
	return all, rs.Err()
}

type blobRef struct {
	key  string
	size int64
}

// blobs makes sure the target holds, and t names in a blob row, the bytes
// of every blob in refs: those it lacks are read from the source, checked
// against their key and size, and staged in the target, Workers at once.
func (c *copier) blobs(ctx context.Context, t *Tx, refs []blobRef) error {
	var need []blobRef
	seen := map[string]bool{}
	for _, b := range refs {
		if seen[b.key] {
			continue
		}
		seen[b.key] = true
		var one int
		err := t.tx.QueryRowContext(ctx, `SELECT 1 FROM blobs WHERE key = ?`, b.key).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			need = append(need, b)
		} else if err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	staged := make([]*StagedBlob, len(need))
	errs := make([]error, len(need))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(c.workers, len(need)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				staged[i], errs[i] = c.moveBlob(ctx, need[i])
			}
		}()
	}
	for i := range need {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cancelled: %w", err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	err := insertRows(ctx, t.tx, `INSERT INTO blobs(key, size, refs, pack, off) VALUES`, `ON CONFLICT(key) DO NOTHING`, 5, len(staged),
		func(i int) []any {
			b := staged[i]
			t.ch.wrotePack(b.pack, b.off+b.Size)
			if b.pack == objectPack {
				t.ch.objects = append(t.ch.objects, stagedObject{b.Key, b.putAt})
			}
			return []any{b.Key, b.Size, 0, b.pack, b.off}
		}, nil)
	if err != nil {
		return fmt.Errorf("store: write blob: %w", err)
	}
	return nil
}

// moveBlob reads one blob from the source, checks it, and stages it in
// the target.
func (c *copier) moveBlob(ctx context.Context, b blobRef) (*StagedBlob, error) {
	body, err := c.src.Blob(ctx, b.key)
	if err != nil {
		return nil, fmt.Errorf("read message bytes %s from the source: %w", b.key, err)
	}
	if ok, got := checkKey(b.key, body); !ok || int64(len(body)) != b.size {
		return nil, fmt.Errorf("%w: the source's message bytes %s are damaged (%d bytes, %s %s); nothing of this account was copied", ErrInvalid, b.key, len(body), keyHashName(b.key), got)
	}
	// Staged under the source's key, checked above: the target's rows
	// name it, whichever form it has (blobkey.go), and the bytes are not
	// hashed a second time.
	sb, err := c.dst.stageKeyed(body, b.key)
	if err != nil {
		return nil, fmt.Errorf("store message bytes %s in the target: %w", b.key, err)
	}
	c.mu.Lock()
	c.p.Bytes += int64(len(body))
	c.mu.Unlock()
	return sb, nil
}

// finish copies the relay queue, carries the row counters over and
// removes the marker, in one transaction: the copy is then complete.
func (c *copier) finish(ctx context.Context) error {
	t, err := c.beginTarget(ctx)
	if err != nil {
		return err
	}
	defer t.Rollback()
	queue := copyTable{name: "queue", scope: "global"}
	cols, err := c.columns(ctx, queue.name)
	if err != nil {
		return err
	}
	all, err := readRows(ctx, c.src.r, len(cols), `SELECT `+strings.Join(cols, ", ")+` FROM queue ORDER BY id`)
	if err != nil {
		return fmt.Errorf("store: read queue: %w", err)
	}
	var refs []blobRef
	blobCol := indexOf(cols, "blob")
	for _, row := range all {
		key, _ := row[blobCol].(string)
		var size int64
		if err := c.src.r.QueryRowContext(ctx, `SELECT size FROM blobs WHERE key = ?`, key).Scan(&size); err != nil {
			return fmt.Errorf("store: queued message bytes %s: %w", key, err)
		}
		refs = append(refs, blobRef{key, size})
	}
	if err := c.blobs(ctx, t, refs); err != nil {
		return err
	}
	if err := c.insert(ctx, t.tx, queue, cols, all, nil); err != nil {
		return err
	}
	c.p.Queue = len(all)
	if err := c.counters(ctx, t.tx); err != nil {
		return err
	}
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM store_copy`); err != nil {
		return fmt.Errorf("store copy: unmark the target: %w", err)
	}
	t.ch.queue, t.ch.domains = true, true
	return t.Commit()
}

// counters makes the target's next IDs follow the copied ones: on
// PostgreSQL the identity sequences, and for the queue, whose IDs are
// never reused, the highest the source ever gave.
func (c *copier) counters(ctx context.Context, tx wtx) error {
	var queueTop int64
	if err := c.src.r.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM queue`).Scan(&queueTop); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if !c.src.d.postgres() {
		var seq sql.NullInt64
		err := c.src.r.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'queue'`).Scan(&seq)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: %w", err)
		}
		queueTop = max(queueTop, seq.Int64)
	} else {
		var last sql.NullInt64
		// The identity's sequence has PostgreSQL's default name; none is
		// found when the queue never had an item (last_value is NULL).
		if err := c.src.r.QueryRowContext(ctx, `SELECT last_value FROM pg_sequences WHERE schemaname = current_schema() AND sequencename = 'queue_id_seq'`).Scan(&last); err == nil {
			queueTop = max(queueTop, last.Int64)
		}
	}
	if !c.dst.d.postgres() {
		if queueTop > 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO sqlite_sequence(name, seq) SELECT 'queue', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'queue')`); err != nil {
				return fmt.Errorf("store: queue counter: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'queue'`, queueTop); err != nil {
				return fmt.Errorf("store: queue counter: %w", err)
			}
		}
		return nil
	}
	for _, table := range []string{"domains", "accounts", "mailboxes", "messages", "queue"} {
		q := `SELECT setval(pg_get_serial_sequence('` + table + `', 'id'), (SELECT max(id) FROM ` + table + `))`
		if table == "queue" {
			q = `SELECT setval(pg_get_serial_sequence('queue', 'id'), ?)`
			if queueTop == 0 {
				continue
			}
			if _, err := tx.ExecContext(ctx, q, queueTop); err != nil {
				return fmt.Errorf("store: queue counter: %w", err)
			}
			continue
		}
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("store: %s counter: %w", table, err)
		}
	}
	return nil
}
