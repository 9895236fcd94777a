package store

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// VerifyReport is what VerifyCopy found.
type VerifyReport struct {
	Accounts  int   // in the source
	Mailboxes int   // in the source
	Messages  int64 // message rows compared
	Blobs     int   // distinct message contents hashed on both sides
	Bytes     int64 // bytes hashed on each side
	// Differences are the first maxDifferences differences, in words;
	// Count is how many were found in all.
	Differences []string
	Count       int
}

// OK reports whether the target matched the source in everything.
func (r *VerifyReport) OK() bool { return r.Count == 0 }

const maxDifferences = 50

func (r *VerifyReport) differ(format string, a ...any) {
	r.Count++
	if len(r.Differences) < maxDifferences {
		r.Differences = append(r.Differences, fmt.Sprintf(format, a...))
	}
}

// VerifyCopy compares dst with src after Copy: every row of every copied
// table, column by column (so every account's password hash and state,
// every mailbox's UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, subscription and
// special use, every message's UID, flags, INTERNALDATE, MODSEQ and size,
// the queue and the rest), and every message's bytes: read from each
// side, their hash must be the key both name. Differences are
// reported, not returned as an error; an error means the comparison
// itself could not be made.
func VerifyCopy(ctx context.Context, src, dst *Store, workers int) (*VerifyReport, error) {
	if workers <= 0 {
		workers = 4
	}
	r := &VerifyReport{}
	if from, _, underway, err := dst.CopyUnderway(ctx); err != nil {
		return nil, err
	} else if underway {
		r.differ("the target holds an unfinished copy (of %s): run the copy again to finish it", from)
	}
	c := &copier{src: src, dst: dst}
	keys := map[string]bool{}
	for _, tb := range copyTables {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if tb.name == "messages" {
			if err := c.verifyMessages(ctx, r, keys); err != nil {
				return nil, err
			}
			continue
		}
		cols, err := c.columns(ctx, tb.name)
		if err != nil {
			return nil, err
		}
		if err := c.verifyTable(ctx, r, tb, cols, keys); err != nil {
			return nil, err
		}
	}
	if err := c.verifyBlobs(ctx, r, keys, workers); err != nil {
		return nil, err
	}
	return r, nil
}

// normValue is a column's value in a form both engines give alike.
func normValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return "i" + strconv.FormatInt(v, 10)
	case string:
		return "t" + v
	case []byte:
		return "t" + string(v)
	default:
		return fmt.Sprintf("%T%v", v, v)
	}
}

// tableRows reads every row of table from s, as normalized columns, by
// the key columns' values.
func tableRows(ctx context.Context, s *Store, tb copyTable, cols []string) (map[string][]string, error) {
	rows, err := readRows(ctx, s.r, len(cols), `SELECT `+strings.Join(cols, ", ")+` FROM `+tb.name)
	if err != nil {
		return nil, fmt.Errorf("store: read %s: %w", tb.name, err)
	}
	out := make(map[string][]string, len(rows))
	for _, row := range rows {
		n := make([]string, len(row))
		for i, v := range row {
			n[i] = normValue(v)
		}
		out[rowKey(tb, cols, row)] = n
	}
	return out, nil
}

// rowKey names a row by its key columns: "id=3" or "domain_id=1, address=x".
func rowKey(tb copyTable, cols []string, row []any) string {
	var parts []string
	for _, k := range tb.key {
		if i := indexOf(cols, k); i >= 0 {
			v := normValue(row[i])
			parts = append(parts, k+"="+v[1:])
		}
	}
	return strings.Join(parts, ", ")
}

// verifyTable compares a whole table; it notes the blobs the queue names.
func (c *copier) verifyTable(ctx context.Context, r *VerifyReport, tb copyTable, cols []string, keys map[string]bool) error {
	a, err := tableRows(ctx, c.src, tb, cols)
	if err != nil {
		return err
	}
	b, err := tableRows(ctx, c.dst, tb, cols)
	if err != nil {
		return err
	}
	switch tb.name {
	case "accounts":
		r.Accounts = len(a)
	case "mailboxes":
		r.Mailboxes = len(a)
	case "queue":
		bi := indexOf(cols, "blob")
		for _, row := range a {
			keys[row[bi][1:]] = true
		}
	}
	compareRows(r, tb.name, cols, a, b)
	return nil
}

// compareRows reports the rows of a (the source's) missing from b or
// different there, and b's rows a does not have, by key.
func compareRows(r *VerifyReport, what string, cols []string, a, b map[string][]string) {
	names := make([]string, 0, len(a))
	for k := range a {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		theirs, ok := b[k]
		if !ok {
			r.differ("%s: row (%s) is missing from the target", what, k)
			continue
		}
		for i, v := range a[k] {
			if theirs[i] != v {
				r.differ("%s: row (%s) differs in %s", what, k, cols[i])
			}
		}
	}
	var extra []string
	for k := range b {
		if _, ok := a[k]; !ok {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		r.differ("%s: row (%s) is in the target only", what, k)
	}
}

// verifyMessages compares every mailbox's messages, a batch of UIDs at a
// time, and notes the blobs they name.
func (c *copier) verifyMessages(ctx context.Context, r *VerifyReport, keys map[string]bool) error {
	tb := copyTable{name: "messages", key: []string{"uid"}}
	cols, err := c.columns(ctx, tb.name)
	if err != nil {
		return err
	}
	boxes, err := queryAll(ctx, c.src.r, func(rs rowScanner) (idName, error) {
		var b idName
		return b, rs.Scan(&b.id, &b.name)
	}, `SELECT m.id, a.address || ' ' || m.name FROM mailboxes m JOIN accounts a ON a.id = m.account_id ORDER BY m.id`)
	if err != nil {
		return err
	}
	blobCol := indexOf(cols, "blob")
	q := `SELECT ` + strings.Join(cols, ", ") + ` FROM messages WHERE mailbox_id = ? AND uid > ? AND uid <= ? ORDER BY uid`
	for _, box := range boxes {
		var last int64
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			// A batch is a range of UIDs on both sides, so that rows one
			// side lacks are told, not shifted into the next batch.
			var top int64
			err := c.src.r.QueryRowContext(ctx, `SELECT coalesce(max(uid), 0) FROM (SELECT uid FROM messages WHERE mailbox_id = ? AND uid > ? ORDER BY uid LIMIT `+strconv.Itoa(messageBatch)+`) AS b`, box.id, last).Scan(&top)
			if err != nil {
				return fmt.Errorf("store: read messages: %w", err)
			}
			end := top
			if top == 0 {
				end = 1<<32 - 1 // after the source's last: anything the target has more
			}
			a, err := c.messageRows(ctx, c.src, tb, cols, q, box.id, last, end)
			if err != nil {
				return err
			}
			b, err := c.messageRows(ctx, c.dst, tb, cols, q, box.id, last, end)
			if err != nil {
				return err
			}
			for _, row := range a {
				keys[row[blobCol][1:]] = true
			}
			r.Messages += int64(len(a))
			compareRows(r, "mailbox "+box.name, cols, a, b)
			if top == 0 {
				break
			}
			last = top
		}
	}
	return nil
}

func (c *copier) messageRows(ctx context.Context, s *Store, tb copyTable, cols []string, q string, args ...any) (map[string][]string, error) {
	rows, err := readRows(ctx, s.r, len(cols), q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: read messages: %w", err)
	}
	out := make(map[string][]string, len(rows))
	for _, row := range rows {
		n := make([]string, len(row))
		for i, v := range row {
			n[i] = normValue(v)
		}
		out[rowKey(tb, cols, row)] = n
	}
	return out, nil
}

// verifyBlobs reads every blob named by the source's messages and queue
// from both stores and checks each one's hash is its key.
func (c *copier) verifyBlobs(ctx context.Context, r *VerifyReport, keys map[string]bool, workers int) error {
	list := make([]string, 0, len(keys))
	for k := range keys {
		list = append(list, k)
	}
	sort.Strings(list)
	var mu sync.Mutex
	var firstErr error
	next := make(chan string)
	var wg sync.WaitGroup
	check := func(s *Store, side, key string) (int64, bool) {
		body, err := s.Blob(ctx, key)
		if err != nil {
			mu.Lock()
			r.differ("message bytes %s cannot be read from the %s: %v", key, side, err)
			mu.Unlock()
			return 0, false
		}
		if ok, got := checkKey(key, body); !ok {
			mu.Lock()
			r.differ("message bytes %s in the %s have %s %s", key, side, keyHashName(key), got)
			mu.Unlock()
			return 0, false
		}
		return int64(len(body)), true
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range next {
				n, ok1 := check(c.src, "source", key)
				_, ok2 := check(c.dst, "target", key)
				mu.Lock()
				if ok1 && ok2 {
					r.Blobs++
					r.Bytes += n
				}
				mu.Unlock()
			}
		}()
	}
	for _, k := range list {
		if err := ctx.Err(); err != nil {
			firstErr = err
			break
		}
		next <- k
	}
	close(next)
	wg.Wait()
	return firstErr
}
