package imapfront

import (
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"mailferry/core/store"
)

var (
	_ imapserver.SessionID          = (*session)(nil)
	_ imapserver.SessionMultiAppend = (*session)(nil)
)

// ID implements imapserver.SessionID (RFC 2971). It answers in any state,
// also before login; what the client says about itself is logged at debug
// level only, and the answer names the software without its version (no
// help to an attacker choosing exploits).
func (s *session) ID(client *imap.IDData) *imap.IDData {
	if client != nil {
		s.srv.log.Debug("imapfront: client ID", "ip", s.ip, "name", client.Name, "version", client.Version)
	}
	return &imap.IDData{Name: "Mailferry", Vendor: "Mailferry"}
}

// MultiAppend implements imapserver.SessionMultiAppend (RFC 3502, and every
// single APPEND): from the second message on, each is written to the store
// as it arrives (store.Stage, so one message at a time is in memory), and
// all are appended in one transaction after the last, so the command
// appends all or none.
func (s *session) MultiAppend(name string) (imapserver.AppendBatch, error) {
	mb, err := s.destination(name)
	if err != nil {
		return nil, err
	}
	return &appendBatch{s: s, mb: mb}, nil
}

// appendBatch is the messages of one APPEND command.
type appendBatch struct {
	s     *session
	mb    *store.Mailbox
	msgs  []*store.NewMessage
	bytes int64
	held  int64 // taken from the server's appendMem, given back by release

	// CATENATE (catenate.go): what its URLs read from the store, and the
	// last message read, for the next URL to it.
	catRead   int64
	lastKey   string
	lastBlob  []byte
	lastParts *partCache // what was found in lastBlob
	lastHeld  int64      // lastBlob's bytes, in held
}

// dropLast lets go of the last message CATENATE read, and of what it held
// of the server's appendMem.
func (b *appendBatch) dropLast() {
	b.lastBlob, b.lastKey, b.lastParts = nil, "", nil
	if b.lastHeld > 0 {
		b.s.srv.appending.give(b.s.acct.ID, b.lastHeld)
		b.held -= b.lastHeld
		b.lastHeld = 0
	}
}

// release gives back what the batch holds of the server's appendMem.
func (b *appendBatch) release() {
	b.dropLast()
	if b.held > 0 {
		b.s.srv.appending.give(b.s.acct.ID, b.held)
		b.held = 0
	}
}

// maxBatch and maxBatchBytes bound the messages of one APPEND command
// (their bytes are written before the command commits, and are dead space
// in a pack when it fails).
const (
	maxBatch      = 10000
	maxBatchBytes = 1 << 30
)

func (b *appendBatch) Add(r imap.LiteralReader, options *imap.AppendOptions) error {
	s := b.s
	size := r.Size()
	if size > int64(s.srv.limit) {
		return imapErr(imap.ResponseCodeTooBig, "Message too big")
	}
	if len(b.msgs) >= maxBatch || b.bytes+size > maxBatchBytes {
		return imapErr(imap.ResponseCodeLimit, "Too many messages in one APPEND")
	}
	b.bytes += size
	flags, err := storeFlags(options.Flags)
	if err != nil {
		return err
	}
	var refused error
	body, err := readLiteral(r, size, func(n int64) bool {
		if refused = s.srv.appending.take(s.acct.ID, n); refused != nil {
			return false
		}
		b.held += n
		return true
	})
	if refused != nil {
		return refused // the fork reads and drops the rest of the literal
	}
	if err != nil {
		return fmt.Errorf("imapfront: read APPEND literal: %w", err)
	}
	return b.add(&store.NewMessage{Flags: flags, InternalDate: options.Time, Body: body})
}

// add keeps a message read whole (its bytes held in b.held), the first in
// memory, the others staged.
func (b *appendBatch) add(m *store.NewMessage) error {
	s := b.s
	if len(b.msgs) == 0 {
		// The first message is kept in memory: a single APPEND, by far the
		// most common, is then one write (store.AppendMessage).
		b.msgs = append(b.msgs, m)
		return nil
	}
	// More than one: every message is written as it comes (store.Stage),
	// so that one at a time is in memory.
	for _, n := range append(b.msgs[len(b.msgs)-1:], m) {
		if n.Body == nil {
			continue
		}
		staged, err := s.srv.st.Stage(n.Body)
		if err != nil {
			return s.storeErr(err, "APPEND")
		}
		s.srv.appending.give(s.acct.ID, int64(cap(n.Body)))
		b.held -= int64(cap(n.Body))
		n.Staged, n.Body = staged, nil
	}
	b.msgs = append(b.msgs, m)
	return nil
}

// readLiteral reads a literal of size bytes into a buffer that grows as
// they come (doubling, from 64 KiB, to size exactly): allocated at once
// from the size announced, every session of a user could announce 64 MiB
// and send them slowly, or not at all, and hold them all (eight such
// APPENDs of 1,000 bytes each took 480 MB of heap). take is asked for
// each allocation's bytes beyond the last one's; it stops the reading
// (nil, nil) when it says no.
func readLiteral(r io.Reader, size int64, take func(n int64) bool) ([]byte, error) {
	buf := make([]byte, 0, min(size, 64<<10))
	if !take(int64(cap(buf))) {
		return nil, nil
	}
	for int64(len(buf)) < size {
		if len(buf) == cap(buf) {
			next := min(size, 2*int64(cap(buf)))
			if !take(next - int64(cap(buf))) {
				return nil, nil
			}
			grown := make([]byte, len(buf), next)
			copy(grown, buf)
			buf = grown
		}
		n, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}

func (b *appendBatch) Commit() (uint32, imap.UIDSet, error) {
	s := b.s
	defer b.release()
	var msgs []*store.Message
	if len(b.msgs) == 1 {
		m, err := s.appendOne(b.mb, b.msgs[0])
		if err != nil {
			return 0, nil, s.storeErr(err, "APPEND")
		}
		msgs = []*store.Message{m}
	} else {
		// Their bytes on disk first, so that the transaction does not
		// hold the writer for the fsync.
		staged := make([]*store.StagedBlob, len(b.msgs))
		for i, m := range b.msgs {
			staged[i] = m.Staged
		}
		if err := s.srv.st.SyncStaged(staged...); err != nil {
			return 0, nil, s.storeErr(err, "APPEND")
		}
		tx, err := s.srv.st.Begin(s.ctx())
		if err != nil {
			return 0, nil, s.storeErr(err, "APPEND")
		}
		defer tx.Rollback()
		if msgs, err = tx.AppendMany(b.mb.ID, b.msgs); err != nil {
			return 0, nil, s.storeErr(err, "APPEND")
		}
		v := s.claimingView(b.mb)
		var last uint32
		if v != nil {
			if last, err = tx.ClaimRecent(b.mb.ID, msgs[len(msgs)-1].UID); err != nil {
				return 0, nil, s.storeErr(err, "APPEND")
			}
		}
		if err := tx.Commit(); err != nil {
			return 0, nil, s.storeErr(err, "APPEND")
		}
		if v != nil {
			v.ownClaim(last, msgs[len(msgs)-1].UID)
		}
	}
	var uids imap.UIDSet
	for _, m := range msgs {
		uids.AddNum(imap.UID(m.UID))
	}
	return b.mb.UIDValidity, uids, nil
}

// Abort drops the staged messages: their bytes are dead space in a pack
// until store.Compact.
func (b *appendBatch) Abort() {
	b.msgs = nil
	b.release()
}
