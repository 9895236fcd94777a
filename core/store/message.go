package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Message is a message's metadata. Its bytes are read with Store.Blob.
type Message struct {
	ID        int64
	MailboxID int64
	UID       uint32
	// Flags are system flags and keywords, each once (compared without
	// case), in the case they were first given.
	Flags        []string
	InternalDate time.Time
	// SaveDate is when the message was saved into its mailbox (RFC 8514
	// SAVEDATE): APPEND, COPY, MOVE or delivery; a migrated message's is
	// its internal date. A message stored before save dates were kept has
	// its internal date.
	SaveDate time.Time
	Size     int64
	// BlobKey is the blob key of the message's bytes (blobkey.go).
	BlobKey string
	ModSeq  uint64
	// Envelope and Structure are what Options.Summarize made of the bytes
	// (nil when not asked for, or when it had nothing to say).
	Envelope  []byte
	Structure []byte

	at location // where the bytes were, if read (EachMessageLocated)
	// ahead holds the bytes ReadAhead read, for MessageBytes; nil if none.
	ahead []byte
}

// HasFlag reports whether the message has a flag (compared without case).
func (m *Message) HasFlag(flag string) bool { return hasFold(m.Flags, flag) }

// hasFold reports whether list holds s, compared without case.
func hasFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(e string) bool { return strings.EqualFold(e, s) })
}

// NewMessage is a message to append.
type NewMessage struct {
	// UID to give the message; 0 means the mailbox's UIDNEXT. A given UID
	// must be free; it may lie below UIDNEXT only while the mailbox is being
	// migrated (its old UIDs), else ErrExists — unless Renumber is set, in
	// which case the message gets UIDNEXT instead.
	UID      uint32
	Renumber bool
	Flags    []string
	// InternalDate, with its zone; the zero time means now.
	InternalDate time.Time
	// SaveDate (Message.SaveDate); the zero time means now. The migration
	// gives its messages their internal date.
	SaveDate time.Time
	Body     []byte
	// Staged, when set, holds the bytes instead of Body (see Store.Stage).
	Staged *StagedBlob

	// summarized: envelope and structure are Options.Summarize's of Body,
	// made before the transaction (AppendMessage).
	summarized          bool
	envelope, structure []byte
}

// UIDPair maps a source UID to the UID a copy got.
type UIDPair struct{ Src, Dst uint32 }

// Tx is a write transaction. It holds the store's one writer connection
// until Commit or Rollback: keep it short (a few hundred messages or a
// fraction of a second), and always end it.
type Tx struct {
	s    *Store
	ctx  context.Context
	tx   *sql.Tx
	ch   *changes
	done bool
	// account, when not 0, is the one account whose mailboxes this
	// transaction may write (BeginMailbox), mailbox the one it was begun
	// for.
	account, mailbox int64
}

// Begin starts a write transaction.
func (s *Store) Begin(ctx context.Context) (*Tx, error) {
	if err := s.wal.stopped(); err != nil {
		return nil, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: begin: %w", err)
	}
	if err := s.beginWrite(ctx, tx); err != nil {
		tx.Rollback()
		return nil, err
	}
	// Statements run without ctx's cancellation (database/sql would start a
	// goroutine per query to watch it); cancelling ctx still rolls the
	// transaction back, and later statements then fail.
	return &Tx{s: s, ctx: context.WithoutCancel(ctx), tx: tx, ch: &changes{}}, nil
}

// BeginMailbox starts a write transaction that writes messages into the
// mailboxes of one account only: that of mailboxID. On PostgreSQL it
// waits only for the other writers of that account and for whole-store
// writes (pgstore.go), so accounts' appends on several nodes go on side by
// side. Its Append, AppendMany and SetMailboxMigration refuse a mailbox
// of another account, and its other methods refuse, with ErrInvalid.
func (s *Store) BeginMailbox(ctx context.Context, mailboxID int64) (*Tx, error) {
	if err := s.wal.stopped(); err != nil {
		return nil, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: begin: %w", err)
	}
	// A mailbox never changes account: read before the lock, it is
	// still its account under it (or gone, which the writes then find).
	acct, err := mailboxAccount(ctx, tx, mailboxID)
	if err == nil {
		err = s.beginAccountWrite(ctx, tx, acct)
	}
	if err != nil {
		tx.Rollback()
		return nil, conflict(err) // a deadlock on the locks: run it again
	}
	return &Tx{s: s, ctx: context.WithoutCancel(ctx), tx: tx, ch: &changes{}, account: acct, mailbox: mailboxID}, nil
}

// inScope refuses, in a BeginMailbox transaction, a mailbox of another
// account (mailboxID) or any write beside mailboxes' (mailboxID 0).
func (t *Tx) inScope(mailboxID int64) error {
	if t.account == 0 || (mailboxID != 0 && mailboxID == t.mailbox) {
		return nil
	}
	if mailboxID == 0 {
		return fmt.Errorf("%w: a transaction of one account's mailboxes writes nothing else", ErrInvalid)
	}
	acct, err := mailboxAccount(t.ctx, t.tx, mailboxID)
	if err != nil {
		return err
	}
	if acct != t.account {
		return fmt.Errorf("%w: mailbox %d is not of account %d, this transaction's", ErrInvalid, mailboxID, t.account)
	}
	return nil
}

// Commit makes the transaction's message bytes durable, commits it, and
// then tells watchers what changed. On error the transaction is rolled
// back; a PostgreSQL deadlock or serialization failure, here or in the
// transaction's other methods, wraps ErrConflict: run it again. It fails with ErrNotDurable, committing nothing, if a write or
// fsync of a pack holding some of those bytes failed (see Stage), or if
// Compact deleted the object of a staged blob meanwhile (see object.go).
func (t *Tx) Commit() error {
	if t.done {
		return fmt.Errorf("store: commit: %w", sql.ErrTxDone)
	}
	err := t.s.checkObjects(t.ctx, t.tx, t.ch.objects)
	if err == nil {
		err = t.s.packs.syncAll(t.ch.packs)
	}
	if err == nil {
		err = t.s.noteCommit(t.ctx, t.tx, t.ch)
	}
	if err == nil && t.s.wal != nil {
		// On SQLite this commit is durable before anyone sees it: the
		// one kind that may raise the durable marks (marks.go).
		err = raiseMarks(t.ctx, t.tx)
	}
	if err == nil {
		// Begin looked at its start; an fsync of the log may have failed
		// since (another session's grouped fsync): the pages it could not
		// write may be gone, and this commit would lie beyond them in the
		// log, so SQLite's own fsync succeeding would prove nothing.
		err = t.s.wal.stopped()
	}
	if err == nil {
		if err = t.tx.Commit(); err != nil {
			// SQLite's own fsync failing stops the store (walsync.go).
			err = t.s.wal.failedCommit(fmt.Errorf("store: commit: %w", err))
		}
	}
	if err != nil {
		t.Rollback()
		if IsDiskFull(err) {
			// The database's own write found the disk full before any
			// pack write did: give back the reserve, so that what
			// happened can still be recorded (reserve.go).
			t.s.packs.room.release()
		}
		return conflict(err)
	}
	t.done = true
	t.s.commits.Add(1)
	if t.s.wal != nil && t.s.wal.fullCommitted != nil {
		t.s.wal.fullCommitted()
	}
	t.s.notify(t.ch)
	// An fsync of the log that failed while this commit was under way may
	// have lost pages before it: committed and seen, but not to be
	// answered OK (as writeNormal's wait for a failed fsync).
	return t.s.wal.stopped()
}

// Commits is how many transactions this Store committed through a Tx (each
// durable before it returned: on SQLite an fsync of the log each), for
// tests and benchmarks that count them.
func (s *Store) Commits() int64 { return s.commits.Load() }

// ReadTransactions is how many read transactions this Store began (a
// session's poll, a SELECT, a FETCH's rows...), for tests that count them.
func (s *Store) ReadTransactions() int64 { return s.reads.Load() }

// Rollback abandons the transaction. It is safe to call after Commit.
func (t *Tx) Rollback() {
	if t.done {
		return
	}
	t.done = true
	t.tx.Rollback()
}

// Append adds a message to a mailbox and returns its metadata.
func (t *Tx) Append(mailboxID int64, m *NewMessage) (*Message, error) {
	if err := t.inScope(mailboxID); err != nil {
		return nil, err
	}
	msg, err := t.s.appendMessage(t.ctx, t.tx, t.ch, mailboxID, m)
	return msg, conflict(err)
}

// AppendMany adds messages to a mailbox, in order, and returns their
// metadata; it is Append for a batch, with a few statements for the lot.
// If one message's UID is taken (see NewMessage) none is added and the
// error is ErrExists.
func (t *Tx) AppendMany(mailboxID int64, msgs []*NewMessage) ([]*Message, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	if err := t.inScope(mailboxID); err != nil {
		return nil, err
	}
	out, err := t.s.appendMany(t.ctx, t.tx, t.ch, mailboxID, msgs)
	return out, conflict(err)
}

// SetMailboxMigration records a mailbox's migration state and highest old
// UID copied, in this transaction (so that it commits with the messages).
func (t *Tx) SetMailboxMigration(mailboxID int64, state string, migratedUID uint32) error {
	if err := t.inScope(mailboxID); err != nil {
		return err
	}
	return conflict(setMailboxMigration(t.ctx, t.tx, t.ch, mailboxID, state, migratedUID))
}

// Enqueue adds a message to the relay queue in this transaction.
func (t *Tx) Enqueue(from string, rcpts []string, body []byte, note string) (int64, error) {
	if err := t.inScope(0); err != nil {
		return 0, err
	}
	return t.s.enqueue(t.ctx, t.tx, t.ch, from, rcpts, body, note)
}

// AppendMessage adds one message to a mailbox in its own transaction. What
// needs no writer is done before the transaction begins (see prepare), so
// that the writer is held for the rows only; it waits only for the writers
// of the mailbox's account (BeginMailbox). On SQLite the transaction
// commits without its fsync and returns once a shared fsync of the log
// made it durable (writeGrouped), so that the writer is not held for it.
func (s *Store) AppendMessage(ctx context.Context, mailboxID int64, m *NewMessage) (*Message, error) {
	out, _, err := s.appendMessageThen(ctx, mailboxID, m, false)
	return out, err
}

// appendMessageThen is AppendMessage that, with claim, also claims the
// mailbox's messages up to the new one as recent in the same transaction
// (AppendMessageRecent) and returns the highest UID claimed before.
func (s *Store) appendMessageThen(ctx context.Context, mailboxID int64, m *NewMessage, claim bool) (*Message, uint32, error) {
	m, err := s.prepare(ctx, m)
	if err != nil {
		return nil, 0, err
	}
	var out *Message
	var last uint32
	if s.wal != nil {
		wctx := s.writeCtx(ctx)
		err := s.writeGrouped(ctx, func(tx wtx, ch *changes) error {
			var err error
			if out, err = s.appendMessage(wctx, tx, ch, mailboxID, m); err != nil || !claim {
				return err
			}
			last, err = claimRecentTx(wctx, tx, mailboxID, out.UID)
			return err
		})
		if err != nil {
			return nil, 0, err
		}
		return out, last, nil
	}
	t, err := s.BeginMailbox(ctx, mailboxID)
	if err != nil {
		return nil, 0, err
	}
	defer t.Rollback()
	if out, err = t.Append(mailboxID, m); err != nil {
		return nil, 0, err
	}
	if claim {
		if last, err = claimRecentTx(t.ctx, t.tx, mailboxID, out.UID); err != nil {
			return nil, 0, conflict(err)
		}
	}
	if err := t.Commit(); err != nil {
		return nil, 0, err
	}
	return out, last, nil
}

// mailboxAccount returns the account a mailbox belongs to, or ErrNotFound.
func mailboxAccount(ctx context.Context, tx wtx, mailboxID int64) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT account_id FROM mailboxes WHERE id = ?`, mailboxID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("mailbox %d: %w", mailboxID, ErrNotFound)
	} else if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	return id, nil
}

// bumpModSeq raises a mailbox's HIGHESTMODSEQ and returns the new value.
func bumpModSeq(ctx context.Context, tx wtx, mailboxID int64) (uint64, error) {
	ms, _, err := bumpModSeqAccount(ctx, tx, mailboxID)
	return ms, err
}

// bumpModSeqAccount is bumpModSeq that also returns the mailbox's account,
// in the same statement (a STORE needs both: mailboxAccount would be one
// more statement on the writer).
func bumpModSeqAccount(ctx context.Context, tx wtx, mailboxID int64) (modseq uint64, accountID int64, err error) {
	err = tx.QueryRowContext(ctx, `UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING highest_modseq, account_id`, mailboxID).Scan(&modseq, &accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, fmt.Errorf("mailbox %d: %w", mailboxID, ErrNotFound)
	} else if err != nil {
		return 0, 0, fmt.Errorf("store: %w", err)
	}
	return modseq, accountID, nil
}

func (s *Store) appendMessage(ctx context.Context, tx wtx, ch *changes, mailboxID int64, m *NewMessage) (*Message, error) {
	out, err := s.appendMany(ctx, tx, ch, mailboxID, []*NewMessage{m})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// appendMany appends msgs, in order, with a handful of statements for the
// lot (multi-row INSERTs). UIDs are checked before anything is written: a
// taken UID (see NewMessage) fails the whole call with ErrExists and
// changes nothing.
func (s *Store) appendMany(ctx context.Context, tx wtx, ch *changes, mailboxID int64, msgs []*NewMessage) ([]*Message, error) {
	var accountID int64
	var uidNext uint32
	var migState string
	var modseq uint64
	err := tx.QueryRowContext(ctx, `SELECT account_id, uid_next, mig_state, highest_modseq FROM mailboxes WHERE id = ?`, mailboxID).
		Scan(&accountID, &uidNext, &migState, &modseq)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("mailbox %d: %w", mailboxID, ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	migrating := migState == MigPending || migState == MigRunning
	var lo, hi uint32 = 1<<32 - 1, 0
	for _, m := range msgs {
		if m.UID != 0 {
			lo, hi = min(lo, m.UID), max(hi, m.UID)
		}
	}
	taken := map[uint32]bool{}
	if hi > 0 {
		rows, err := tx.QueryContext(ctx, `SELECT uid FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ?`, mailboxID, lo, hi)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		for rows.Next() {
			var u uint32
			if err := rows.Scan(&u); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: %w", err)
			}
			taken[u] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	out := make([]*Message, len(msgs))
	next := uidNext
	for i, m := range msgs {
		uid := m.UID
		if uid != 0 && (taken[uid] || (uid < next && !migrating)) {
			if !m.Renumber {
				return nil, fmt.Errorf("UID %d in mailbox %d: %w", uid, mailboxID, ErrExists)
			}
			uid = 0
		}
		if uid == 0 {
			uid = next
		}
		if uid == 0 || uid == 1<<32-1 {
			return nil, fmt.Errorf("%w: mailbox %d has run out of UIDs", ErrInvalid, mailboxID)
		}
		taken[uid] = true
		next = max(next, uid+1)
		modseq++
		now := time.Now()
		date := m.InternalDate
		if date.IsZero() {
			date = now
		}
		saved := m.SaveDate
		if saved.IsZero() {
			saved = now
		}
		out[i] = &Message{MailboxID: mailboxID, UID: uid, Flags: cleanFlags(m.Flags), InternalDate: date, SaveDate: time.Unix(saved.Unix(), 0), ModSeq: modseq}
	}
	var staged []*StagedBlob
	for i, m := range msgs {
		msg := out[i]
		if sb := m.Staged; sb != nil {
			msg.BlobKey, msg.Size = sb.Key, sb.Size
			msg.Envelope, msg.Structure = sb.envelope, sb.structure
			staged = append(staged, sb)
			continue
		}
		if msg.BlobKey, err = s.putBlob(ctx, tx, ch, m.Body); err != nil {
			return nil, err
		}
		msg.Size = int64(len(m.Body))
		if m.summarized {
			msg.Envelope, msg.Structure = m.envelope, m.structure
		} else if s.summarize != nil {
			msg.Envelope, msg.Structure = s.summarize(m.Body)
		}
	}
	// The blob rows in key order, each once: on PostgreSQL two accounts'
	// batches run side by side (BeginMailbox) and meet only on the blob
	// rows their messages name; inserted, or locked when there (DO UPDATE
	// locks the row even when its WHERE leaves it as it is), in one order,
	// they cannot deadlock, whatever the messages' orders (the reference
	// counts raised below then find the rows locked already).
	staged = byKey(staged)
	if err := insertRows(ctx, tx, `INSERT INTO blobs(key, size, refs, pack, off) VALUES`, `ON CONFLICT(key) DO UPDATE SET refs = blobs.refs WHERE 1 = 0`, 5, len(staged),
		func(i int) []any {
			b := staged[i]
			ch.wrotePack(b.pack, b.off+b.Size)
			if b.pack == objectPack {
				ch.objects = append(ch.objects, stagedObject{b.Key, b.putAt})
			}
			return []any{b.Key, b.Size, 0, b.pack, b.off}
		}, nil); err != nil {
		return nil, fmt.Errorf("store: write blob: %w", err)
	}
	byUID := make(map[uint32]*Message, len(out))
	for _, m := range out {
		byUID[m.UID] = m
	}
	if err := insertRows(ctx, tx, `INSERT INTO messages(mailbox_id, uid, flags, internal_date, internal_zone, size, blob, modseq, envelope, structure, save_date) VALUES`, `RETURNING uid, id`, 11, len(out),
		func(i int) []any {
			m := out[i]
			_, off := m.InternalDate.Zone()
			return []any{mailboxID, m.UID, strings.Join(m.Flags, " "), m.InternalDate.Unix(), off, m.Size, m.BlobKey, m.ModSeq, m.Envelope, m.Structure, m.SaveDate.Unix()}
		}, func(r rowScanner) error {
			var uid uint32
			var id int64
			if err := r.Scan(&uid, &id); err != nil {
				return err
			}
			if m := byUID[uid]; m != nil {
				m.ID = id
			}
			return nil
		}); err != nil {
		return nil, fmt.Errorf("store: append: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET highest_modseq = ?, uid_next = max(uid_next, ?) WHERE id = ?`, modseq, next, mailboxID); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	ch.mailbox(accountID, mailboxID, modseq)
	return out, nil
}

// byKey returns staged sorted by key, each key once (the first staged).
func byKey(staged []*StagedBlob) []*StagedBlob {
	out := slices.Clone(staged)
	slices.SortStableFunc(out, func(a, b *StagedBlob) int { return strings.Compare(a.Key, b.Key) })
	return slices.CompactFunc(out, func(a, b *StagedBlob) bool { return a.Key == b.Key })
}

// insertRows runs "head (?, ...), (?, ...) tail" for n rows of cols values
// each (row gives row i's), in statements of 64, 32, ... 1 rows, so that a
// few statement shapes serve every count from the driver's statement
// cache. ret, when set, reads each row a RETURNING tail gives back.
func insertRows(ctx context.Context, tx wtx, head, tail string, cols, n int, row func(i int) []any, ret func(rowScanner) error) error {
	one := "(?" + strings.Repeat(", ?", cols-1) + ")"
	for done := 0; done < n; {
		k := 64
		for k > n-done {
			k /= 2
		}
		q := head + " " + one + strings.Repeat(", "+one, k-1) + " " + tail
		args := make([]any, 0, k*cols)
		for i := done; i < done+k; i++ {
			args = append(args, row(i)...)
		}
		if ret == nil {
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return err
			}
		} else {
			rows, err := tx.QueryContext(ctx, q, args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				if err := ret(rows); err != nil {
					rows.Close()
					return err
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		done += k
	}
	return nil
}

const messageCols = `id, mailbox_id, uid, flags, internal_date, internal_zone, size, blob, modseq, save_date`

func scanMessage(sc interface{ Scan(...any) error }, cache bool) (*Message, error) {
	var m Message
	var flags string
	var date, saved int64
	var zone int
	dest := []any{&m.ID, &m.MailboxID, &m.UID, &flags, &date, &zone, &m.Size, &m.BlobKey, &m.ModSeq, &saved}
	if cache {
		dest = append(dest, &m.Envelope, &m.Structure)
	}
	if err := sc.Scan(dest...); err != nil {
		return nil, err
	}
	if flags != "" {
		m.Flags = strings.Split(flags, " ")
	}
	m.InternalDate = fixedTime(date, zone)
	m.SaveDate = saveDate(saved, m.InternalDate)
	return &m, nil
}

// saveDate is a stored save date: Unix seconds, or 0 for a message stored
// before they were kept, whose save date is then its internal date.
func saveDate(saved int64, internal time.Time) time.Time {
	if saved == 0 {
		return internal
	}
	return time.Unix(saved, 0)
}

// fixedTime is a stored internal date: Unix seconds and the zone's offset.
func fixedTime(date int64, zone int) time.Time { return time.Unix(date, 0).In(fixedZone(zone)) }

func fixedZone(off int) *time.Location {
	if off == 0 {
		return time.UTC
	}
	return time.FixedZone("", off)
}

// Messages lists a mailbox's messages in UID order, without Envelope and
// Structure.
func (s *Store) Messages(ctx context.Context, mailboxID int64) ([]*Message, error) {
	var out []*Message
	err := s.EachMessage(ctx, mailboxID, 1, 1<<32-1, false, func(m *Message) error {
		out = append(out, m)
		return nil
	})
	return out, err
}

// EachMessage calls fn for each message of a mailbox with a UID in
// [minUID, maxUID], in UID order; with cache it also reads Envelope and
// Structure. fn must not write to the store.
func (s *Store) EachMessage(ctx context.Context, mailboxID int64, minUID, maxUID uint32, cache bool, fn func(*Message) error) error {
	cols := messageCols
	if cache {
		cols += `, envelope, structure`
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	rows, done, err := s.readRows(ctx, `SELECT `+cols+` FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid`,
		mailboxID, minUID, maxUID)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer done()
	return eachScanned(ctx, rows, func(r rowScanner) (*Message, error) { return scanMessage(r, cache) }, fn)
}

// eachScanned calls fn with each row of rows as scan makes it a Message,
// and closes rows. It stops when ctx ends (rows may run without it:
// readCtx).
func eachScanned(ctx context.Context, rows *sql.Rows, scan func(rowScanner) (*Message, error), fn func(*Message) error) error {
	defer rows.Close()
	for rows.Next() {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		m, err := scan(rows)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Message returns one message by mailbox and UID, with its Envelope and
// Structure, or ErrNotFound.
func (s *Store) Message(ctx context.Context, mailboxID int64, uid uint32) (*Message, error) {
	m, err := scanMessage(s.r.QueryRowContext(ctx, `SELECT `+messageCols+`, envelope, structure FROM messages WHERE mailbox_id = ? AND uid = ?`,
		mailboxID, uid), true)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("message %d in mailbox %d: %w", uid, mailboxID, ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return m, nil
}

// Expunge removes the messages flagged \Deleted — only those among uids
// when uids is not nil (UID EXPUNGE, RFC 4315) — and returns their UIDs.
//
// It is a grouped write, as a STORE (walsync.go): durable before it
// returns, without holding the writer for its fsync.
func (s *Store) Expunge(ctx context.Context, mailboxID int64, uids []uint32) ([]uint32, error) {
	var gone []uint32
	wctx := s.writeCtx(ctx)
	err := s.writeGrouped(ctx, func(tx wtx, ch *changes) error {
		gone = nil // run again if it went past the marks (marks.go)
		var want map[uint32]bool
		lo, hi := uint32(0), uint32(1<<32-1)
		if uids != nil {
			want = make(map[uint32]bool, len(uids))
			lo, hi = hi, lo
			for _, u := range uids {
				want[u] = true
				lo, hi = min(lo, u), max(hi, u)
			}
		}
		// Only the UIDs' range is read (by the (mailbox_id, uid) index): a
		// UID EXPUNGE of one message does not scan the mailbox's flags.
		rows, err := tx.QueryContext(wctx, `SELECT uid FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ? AND lower(' ' || flags || ' ') LIKE '% \deleted %' ESCAPE '!' ORDER BY uid`, mailboxID, lo, hi)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		for rows.Next() {
			var u uint32
			if err := rows.Scan(&u); err != nil {
				rows.Close()
				return fmt.Errorf("store: %w", err)
			}
			if want == nil || want[u] {
				gone = append(gone, u)
			}
		}
		rows.Close()
		// A read that failed halfway must not pass for the end of the
		// list: the expunge would report success for part of it.
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if len(gone) == 0 {
			// Nothing to remove: a mailbox that is gone is ErrNotFound.
			// Otherwise the account comes with the new MODSEQ
			// (expungeUIDs), a statement fewer on the writer.
			_, err := mailboxAccount(wctx, tx, mailboxID)
			return err
		}
		modseq, accountID, err := expungeUIDs(wctx, tx, mailboxID, gone)
		if err != nil {
			return err
		}
		ch.mailbox(accountID, mailboxID, modseq)
		return nil
	})
	return gone, err
}

func allUIDs(ctx context.Context, tx wtx, mailboxID int64) ([]uint32, error) {
	rows, err := tx.QueryContext(ctx, `SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid`, mailboxID)
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
	return out, rows.Err()
}

// copyMessages copies messages (sharing their blobs) to another mailbox of
// the same account, giving them new UIDs in UID order.
func copyMessages(ctx context.Context, tx wtx, src int64, uids []uint32, dst int64) ([]UIDPair, error) {
	var dstAcct int64
	var next uint32
	srcAcct, err := mailboxAccount(ctx, tx, src)
	if err != nil {
		return nil, err
	}
	if err := tx.QueryRowContext(ctx, `SELECT account_id, uid_next FROM mailboxes WHERE id = ?`, dst).Scan(&dstAcct, &next); err != nil {
		return nil, fmt.Errorf("mailbox %d: %w", dst, ErrNotFound)
	}
	if srcAcct != dstAcct {
		return nil, fmt.Errorf("%w: copy across accounts", ErrInvalid)
	}
	if len(uids) == 0 {
		return nil, nil
	}
	modseq, err := bumpModSeq(ctx, tx, dst)
	if err != nil {
		return nil, err
	}
	// A copy is saved now, into its new mailbox (RFC 8514 3), also by MOVE.
	ins := txStmt{tx, `INSERT INTO messages(mailbox_id, uid, flags, internal_date, internal_zone, size, blob, modseq, envelope, structure, save_date)
		SELECT ?, ?, flags, internal_date, internal_zone, size, blob, ?, envelope, structure, ? FROM messages WHERE mailbox_id = ? AND uid = ?`}
	saved := time.Now().Unix()
	var pairs []UIDPair
	for _, u := range uids {
		res, err := ins.ExecContext(ctx, dst, next, modseq, saved, src, u)
		if err != nil {
			return nil, fmt.Errorf("store: copy: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			if next == 0 || next == 1<<32-1 {
				// As appendMany: 2^32-1 is no message's, and the counter
				// must not wrap to UIDs used before. The caller rolls
				// the transaction back: nothing is copied.
				return nil, fmt.Errorf("%w: mailbox %d has run out of UIDs", ErrInvalid, dst)
			}
			pairs = append(pairs, UIDPair{Src: u, Dst: next})
			next++
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET uid_next = ? WHERE id = ?`, next, dst); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return pairs, nil
}

// Copy copies messages to another mailbox of the same account (RFC 3501
// COPY, with RFC 4315 UIDPLUS data). Missing UIDs are skipped.
func (s *Store) Copy(ctx context.Context, src int64, uids []uint32, dst int64) ([]UIDPair, error) {
	return s.copyOrMove(ctx, src, uids, dst, false)
}

// Move moves messages to another mailbox of the same account in one
// transaction (RFC 6851).
func (s *Store) Move(ctx context.Context, src int64, uids []uint32, dst int64) ([]UIDPair, error) {
	return s.copyOrMove(ctx, src, uids, dst, true)
}

func (s *Store) copyOrMove(ctx context.Context, src int64, uids []uint32, dst int64, move bool) ([]UIDPair, error) {
	var pairs []UIDPair
	wctx := s.writeCtx(ctx)
	err := s.writeGrouped(ctx, func(tx wtx, ch *changes) error {
		var err error
		if pairs, err = copyMessages(wctx, tx, src, uids, dst); err != nil {
			return err
		}
		acct, err := mailboxAccount(wctx, tx, src)
		if err != nil {
			return err
		}
		ch.account(acct)
		if move && len(pairs) > 0 {
			moved := make([]uint32, len(pairs))
			for i, p := range pairs {
				moved[i] = p.Src
			}
			_, _, err = expungeUIDs(wctx, tx, src, moved)
		}
		return err
	})
	return pairs, err
}
