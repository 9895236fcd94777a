package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestMessageBytesLocated: messages read with EachMessageLocated have their
// bytes read without another query (here: with a cancelled context, which
// any query would fail), exactly as appended; a place that is gone (a pack
// Compact deleted) is looked up again by key; a message whose blob is gone
// is ErrNotFound.
func TestMessageBytesLocated(t *testing.T) {
	s, mb, _ := inboxStore(t, nil, 0)
	ctx := context.Background()
	bodies := []string{"Subject: a\r\n\r\none\r\n", "Subject: b\r\n\r\n\x00two\r\n", ""}
	for _, b := range bodies {
		if _, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	msgs := locatedAll(t, s, mb)
	if len(msgs) != len(bodies) {
		t.Fatalf("%d messages, want %d", len(msgs), len(bodies))
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	for i, m := range msgs {
		plain, err := s.Message(ctx, mb.ID, m.UID)
		if err != nil {
			t.Fatal(err)
		}
		if m.ID != plain.ID || m.BlobKey != plain.BlobKey || m.Size != plain.Size || !m.InternalDate.Equal(plain.InternalDate) ||
			m.ModSeq != plain.ModSeq || string(m.Envelope) != string(plain.Envelope) {
			t.Errorf("UID %d: located row %+v differs from %+v", m.UID, m, plain)
		}
		if i == 2 {
			continue // the empty message: no pack bytes to read
		}
		got, err := s.MessageBytes(done, m)
		if err != nil || string(got) != bodies[i] {
			t.Errorf("UID %d without a query: %q, %v; want %q", m.UID, got, err, bodies[i])
		}
	}
	if got, err := s.MessageBytes(ctx, msgs[2]); err != nil || got == nil || len(got) != 0 {
		t.Errorf("empty message: %q, %v", got, err)
	}
	// Moved: its pack is gone; found again by key.
	moved := *msgs[0]
	moved.at.pack.Int64 = 1 << 40
	if got, err := s.MessageBytes(ctx, &moved); err != nil || string(got) != bodies[0] {
		t.Errorf("moved blob: %q, %v", got, err)
	}
	// Not read with EachMessageLocated: by key.
	plain, err := s.Message(ctx, mb.ID, msgs[1].UID)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.MessageBytes(ctx, plain); err != nil || string(got) != bodies[1] {
		t.Errorf("message read without its place: %q, %v", got, err)
	}
	// Expunged, its blob deleted, and its place gone.
	if _, err := s.StoreFlags(ctx, mb.ID, []uint32{msgs[0].UID}, FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, mb.ID, []uint32{msgs[0].UID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MessageBytes(ctx, &moved); !errors.Is(err, ErrNotFound) {
		t.Errorf("expunged message's bytes: %v, want ErrNotFound", err)
	}
}

// locatedAll returns every message of mb read with EachMessageLocated.
func locatedAll(t *testing.T, s *Store, mb *Mailbox) []*Message {
	t.Helper()
	var msgs []*Message
	if err := s.EachMessageLocated(context.Background(), mb.ID, 1, 1<<32-1, true, func(m *Message) error {
		msgs = append(msgs, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return msgs
}

// TestReadAhead: the bytes of messages lying one after the other in a pack
// are read with one read (a FETCH of ten bodies made ten), each message's
// exactly as appended and capped at its end, also a message sharing
// another's bytes and one holding NUL; messages further apart than
// aheadGap are read apart; a message whose place is gone is left to
// MessageBytes, which finds it by key.
func TestReadAhead(t *testing.T) {
	s, mb, _ := inboxStore(t, nil, 0)
	ctx := context.Background()
	var bodies []string
	for i := 0; i < 10; i++ {
		bodies = append(bodies, fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, strings.Repeat("x", 100*i)))
	}
	bodies[4] = "Subject: nul\r\n\r\n\x00\r\n"
	bodies = append(bodies, bodies[2])                                                       // 10: the bytes of 2
	bodies = append(bodies, "Subject: far\r\n\r\n"+strings.Repeat("y", 3*aheadGap))          // 11
	bodies = append(bodies, "Subject: after\r\n\r\nz\r\n", "Subject: after 2\r\n\r\nzz\r\n") // 12, 13
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bodies {
		if _, err := tx.Append(mb.ID, &NewMessage{Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	located := func() []*Message { return locatedAll(t, s, mb) }
	check := func(what string, msgs []*Message, wantReads int64, idx ...int) {
		t.Helper()
		before := s.packs.reads.Load()
		var some []*Message
		for _, i := range idx {
			some = append(some, msgs[i])
		}
		s.ReadAhead(some)
		if got := s.packs.reads.Load() - before; got != wantReads {
			t.Errorf("%s: %d reads of packs, want %d", what, got, wantReads)
		}
		for _, i := range idx {
			got, err := s.MessageBytes(ctx, msgs[i])
			if err != nil || string(got) != bodies[i] || cap(got) != len(got) {
				t.Errorf("%s: message %d: %q (cap %d), %v; want %q", what, i, got, cap(got), err, bodies[i])
			}
		}
	}
	check("ten messages side by side, one sharing another's bytes", located(), 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	check("two runs apart", located(), 2, 7, 8, 9, 12, 13, 0, 1)
	check("a lone message", located(), 0, 11)
	msgs := located()
	msgs[1].at.pack.Int64 = 1 << 40 // moved by Compact: its pack is gone
	check("a place gone", msgs, 1, 0, 1, 2, 3)
	msgs = located()
	msgs[3].at.pack.Int64 = 1 << 40
	msgs[4].at.pack.Int64 = 1 << 40
	check("all places gone", msgs, 0, 3, 4) // the read fails: by key
}
