package store

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
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
	_, inbox := aliceInbox(t, dst)
	msgs, err := dst.Messages(ctx, inbox.ID)
	if err != nil || len(msgs) == 0 {
		t.Fatalf("%d messages (%v)", len(msgs), err)
	}
	if _, err := dst.StoreFlags(ctx, inbox.ID, []uint32{msgs[0].UID}, FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
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

// TestReview4CountUpgradePostgres: PostgreSQL's schema step that adds
// message_count counts the messages already there, and its triggers
// count those after (TestMessageCountUpgrade is SQLite's).
func TestReview4CountUpgradePostgres(t *testing.T) {
	postgresOnly(t, "the PostgreSQL schema step")
	path := filepath.Join(t.TempDir(), "mail.db")
	s, err := testOpen(t, path, &Options{ChangePoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mb, uids := fillInbox(t, s, 7)
	step := slices.IndexFunc(pgSchema, func(q string) bool { return strings.Contains(q, "ADD COLUMN IF NOT EXISTS message_count") })
	if step < 0 {
		t.Fatal("no PostgreSQL schema step adds message_count")
	}
	// Back to the schema before the step, as an older Mailferry left it.
	s = reopenAfter(t, s, path, []string{`DROP TRIGGER message_count_insert ON messages`, `DROP TRIGGER message_count_delete ON messages`,
		`DROP FUNCTION message_count_insert()`, `DROP FUNCTION message_count_delete()`,
		`ALTER TABLE mailboxes DROP COLUMN message_count`, fmt.Sprintf(`UPDATE mailferry_schema SET version = %d`, step)})
	defer s.Close()
	countsAfterUpgrade(t, s, mb.ID, 7)
	if _, err := s.StoreFlags(ctx, mb.ID, uids[:3], FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, mb.ID, uids[:3]); err != nil {
		t.Fatal(err)
	}
	if n := countsAgree(t, s, "append and expunge after the upgrade"); n[mb.ID] != 5 {
		t.Fatalf("INBOX counts %d, want 5", n[mb.ID])
	}
}
