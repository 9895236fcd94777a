package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// Writing a message's bytes before its transaction: prepare (for
// AppendMessage). Reading many messages' bytes: EachMessageLocated reads, with the rows,
// where each message's bytes are (its blob's pack and offset), so that
// MessageBytes reads them without a query per message. A place read with
// the row stays right: pack bytes are never rewritten and pack numbers
// never reused (pack.go); if Compact moved the blob and deleted its pack
// meanwhile, MessageBytes looks the blob up again by its key (Blob).

// location is where a message's bytes were when its row was read.
type location struct {
	known     bool
	pack, off sql.NullInt64 // pack is NULL for bytes kept in blob_data
	size      int64
}

// inPack reports whether the place is known and in a local pack (not in
// blob_data, not an object).
func (l location) inPack() bool {
	return l.known && l.pack.Valid && l.pack.Int64 != objectPack
}

// locatedCols are messageCols of messages m, and the place of their blob b.
var locatedCols = "m." + strings.ReplaceAll(messageCols, ", ", ", m.") + `, b.pack, b.off, b.size`

// EachMessageLocated is EachMessage that also reads where each message's
// bytes are, for MessageBytes.
func (s *Store) EachMessageLocated(ctx context.Context, mailboxID int64, minUID, maxUID uint32, cache bool, fn func(*Message) error) error {
	cols := locatedCols
	if cache {
		cols += `, m.envelope, m.structure`
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	rows, done, err := s.readRows(ctx, `SELECT `+cols+` FROM messages m LEFT JOIN blobs b ON b.key = m.blob
		WHERE m.mailbox_id = ? AND m.uid BETWEEN ? AND ? ORDER BY m.uid`, mailboxID, minUID, maxUID)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer done()
	return eachScanned(ctx, rows, func(r rowScanner) (*Message, error) { return scanLocated(r, cache) }, fn)
}

func scanLocated(sc rowScanner, cache bool) (*Message, error) {
	var m Message
	var flags string
	var date, saved int64
	var zone int
	var size sql.NullInt64
	dest := []any{&m.ID, &m.MailboxID, &m.UID, &flags, &date, &zone, &m.Size, &m.BlobKey, &m.ModSeq, &saved, &m.at.pack, &m.at.off, &size}
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
	m.at.known, m.at.size = size.Valid, size.Int64
	return &m, nil
}

// MessageBytes returns a message's bytes, exactly as appended: from the
// place EachMessageLocated read, or else by its blob key (Blob). It fails
// with ErrNotFound when the bytes are gone (the message was expunged and
// its blob deleted).
func (s *Store) MessageBytes(ctx context.Context, m *Message) ([]byte, error) {
	if m.ahead != nil {
		return m.ahead, nil
	}
	at := m.at
	if at.inPack() {
		data, err := s.packs.read(at.pack.Int64, at.off.Int64, at.size)
		if err == nil {
			return data, nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, os.ErrClosed) {
			return nil, fmt.Errorf("store: read blob %s: %w", m.BlobKey, err)
		}
		// Moved by Compact: look it up again.
	}
	return s.Blob(ctx, m.BlobKey)
}

// Read-ahead bounds: messages are read together when the bytes between
// them are at most aheadGap, and one read is at most aheadSpan bytes.
const (
	aheadGap  = 4 << 10
	aheadSpan = 1 << 20
)

// ReadAhead reads the bytes of msgs (rows of EachMessageLocated) for
// MessageBytes, those lying one after the other in a pack (a mailbox's
// messages appended together, as a copy or a delivery writes them) with
// one read: a FETCH of 10 messages' bodies made 10 reads, each a system
// call, now one. The bytes are the same as MessageBytes reads alone (each
// message its own slice of the read, capped at its end); a message whose
// read fails, or whose bytes are not in a pack, is left to MessageBytes
// (which looks it up again, or says it is gone). All of msgs' bytes are
// held until msgs go: the caller bounds their total size.
func (s *Store) ReadAhead(msgs []*Message) {
	if s.packs == nil {
		return
	}
	var in []*Message
	for _, m := range msgs {
		if m != nil && m.ahead == nil && m.at.inPack() && m.at.off.Valid && m.at.size > 0 {
			in = append(in, m)
		}
	}
	slices.SortFunc(in, func(a, b *Message) int {
		if c := cmp.Compare(a.at.pack.Int64, b.at.pack.Int64); c != 0 {
			return c
		}
		return cmp.Compare(a.at.off.Int64, b.at.off.Int64)
	})
	for len(in) > 0 {
		// One read: the messages from in[0] on while they follow within
		// aheadGap in the same pack, up to aheadSpan.
		pack, start := in[0].at.pack.Int64, in[0].at.off.Int64
		end := start + in[0].at.size
		n := 1
		for ; n < len(in); n++ {
			at := in[n].at
			e := max(end, at.off.Int64+at.size)
			if at.pack.Int64 != pack || at.off.Int64 > end+aheadGap || e-start > aheadSpan {
				break
			}
			end = e
		}
		if n > 1 {
			if buf, err := s.packs.read(pack, start, end-start); err == nil {
				for _, m := range in[:n] {
					a := m.at.off.Int64 - start
					m.ahead = buf[a : a+m.at.size : a+m.at.size]
				}
			}
		}
		in = in[n:]
	}
}

// prepare does, before the transaction, the part of appending m that needs
// no writer: new bytes are staged and made durable (Stage, SyncStaged) and
// Summarize runs; bytes the store holds already are not written again (the
// transaction finds their blob, or writes them itself if it went
// meanwhile). Every other write would otherwise wait for this append's
// parse and its pack's fsync. It returns m, or a copy of m that says what
// was done.
func (s *Store) prepare(ctx context.Context, m *NewMessage) (*NewMessage, error) {
	if m.Staged != nil || m.summarized {
		return m, nil
	}
	key := s.blobKey(m.Body)
	var one int
	err := s.r.QueryRowContext(ctx, `SELECT 1 FROM blobs WHERE key = ?`, key).Scan(&one)
	c := *m
	switch {
	case errors.Is(err, sql.ErrNoRows):
		staged, err := s.stageKeyed(m.Body, key) // hashed once
		if err != nil {
			return nil, err
		}
		if err := s.SyncStaged(staged); err != nil {
			return nil, err
		}
		c.Body, c.Staged = nil, staged
	case err != nil:
		return nil, fmt.Errorf("store: %w", err)
	default:
		c.summarized = true
		if s.summarize != nil {
			c.envelope, c.structure = s.summarize(m.Body)
		}
	}
	return &c, nil
}
