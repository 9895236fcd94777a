package store

import (
	"context"
	"testing"
)

// TestReview4CountAfterStoreCopy: `store copy` (to PostgreSQL on that
// engine's run) leaves each mailbox's message_count equal to its
// messages, and the target's triggers keep it so afterwards.
func TestReview4CountAfterStoreCopy(t *testing.T) {
	ctx := context.Background()
	src, _ := copySourceStore(t)
	fillSource(t, src, false)
	countsAgree(t, src, "source")
	dst, _ := copyTarget(t, false)
	if _, err := Copy(ctx, src, dst, nil); err != nil {
		t.Fatal(err)
	}
	n := countsAgree(t, dst, "target after the copy")
	total := 0
	for _, c := range n {
		total += c
	}
	if total == 0 {
		t.Fatal("nothing copied")
	}
	a, err := dst.Authenticate(ctx, "alice@example.test", "Alice-pass-1")
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := dst.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := dst.Messages(ctx, inbox.ID)
	if err != nil || len(msgs) == 0 {
		t.Fatalf("%d messages (%v)", len(msgs), err)
	}
	if _, err := dst.Expunge(ctx, inbox.ID, []uint32{msgs[0].UID}); err != nil {
		t.Fatal(err)
	}
	d, err := dst.Delta(ctx, inbox.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Messages != len(msgs)-1 {
		t.Fatalf("Delta counts %d after one expunge of %d", d.Messages, len(msgs))
	}
	countsAgree(t, dst, "target after an expunge")
}
