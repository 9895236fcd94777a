package store

import (
	"context"
	"testing"
)

// TestAppendMessageRecent: AppendMessageRecent claims the mailbox's
// messages up to the new one in the APPEND's own write (one short write,
// where an APPEND and then ClaimRecent were two), returns the highest UID
// claimed before it, and leaves nothing for a later claim.
func TestAppendMessageRecent(t *testing.T) {
	s, mb, uids := inboxStore(t, nil, 3)
	ctx := context.Background()
	if _, err := s.ClaimRecent(ctx, mb.ID, uids[0]); err != nil {
		t.Fatal(err)
	}
	w := s.ShortWrites()
	m, last, err := s.AppendMessageRecent(ctx, mb.ID, &NewMessage{Body: []byte("Subject: new\r\n\r\nnew\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	if last != uids[0] {
		t.Fatalf("claimed before: %d, want %d", last, uids[0])
	}
	if n := s.ShortWrites() - w; n != 1 {
		t.Fatalf("%d short writes for an APPEND with its claim, want 1", n)
	}
	if from, err := s.RecentFrom(ctx, mb.ID); err != nil || from != m.UID {
		t.Fatalf("claimed up to %d (%v), want %d", from, err, m.UID)
	}
	// Nothing left: a later claim finds it so and writes nothing.
	w = s.ShortWrites()
	if before, err := s.ClaimRecent(ctx, mb.ID, m.UID); err != nil || before != m.UID {
		t.Fatalf("claim after: %d, %v; want %d", before, err, m.UID)
	}
	if n := s.ShortWrites() - w; n != 0 {
		t.Fatalf("%d short writes for a claim with nothing left, want 0", n)
	}
	m2, last, err := s.AppendMessageRecent(ctx, mb.ID, &NewMessage{Body: []byte("Subject: two\r\n\r\ntwo\r\n")})
	if err != nil || last != m.UID {
		t.Fatalf("second: claimed before %d (%v), want %d", last, err, m.UID)
	}
	if from, _ := s.RecentFrom(ctx, mb.ID); from != m2.UID {
		t.Fatalf("claimed up to %d, want %d", from, m2.UID)
	}
}
