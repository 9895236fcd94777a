package store

import (
	"context"
	"errors"
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
	var msgs []*Message
	if err := s.EachMessageLocated(ctx, mb.ID, 1, 1<<32-1, true, func(m *Message) error {
		msgs = append(msgs, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
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
