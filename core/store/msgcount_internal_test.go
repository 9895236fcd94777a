package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// countsAgree fails unless every mailbox's kept message_count is its count
// of message rows, and returns the counts by mailbox id.
func countsAgree(t *testing.T, s *Store, step string) map[int64]int {
	t.Helper()
	rows, err := s.r.Query(`SELECT id, message_count, (SELECT count(*) FROM messages WHERE mailbox_id = mailboxes.id) FROM mailboxes`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]int{}
	for rows.Next() {
		var id int64
		var kept, counted int
		if err := rows.Scan(&id, &kept, &counted); err != nil {
			t.Fatal(err)
		}
		if kept != counted {
			t.Errorf("%s: mailbox %d keeps message_count %d, has %d messages", step, id, kept, counted)
		}
		out[id] = counted
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMessageCountKept: each mailbox's message_count, which a poll's
// Delta reads instead of counting the mailbox's messages, follows every
// path that adds or removes messages: APPEND, a migration batch, COPY,
// MOVE, EXPUNGE, a mailbox deleted with its messages, an account deleted
// with its mailboxes; and Delta reports it.
func TestMessageCountKept(t *testing.T) {
	ctx := context.Background()
	s := openAt(t, filepath.Join(t.TempDir(), "mail.db"), &Options{ChangePoll: -1})
	inbox, uids := fillInbox(t, s, 5)
	other, err := s.CreateMailbox(ctx, inbox.AccountID, "Other", nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := func(i int) *NewMessage {
		return &NewMessage{Body: []byte(fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i))}
	}
	n := countsAgree(t, s, "appends")
	if n[inbox.ID] != 5 {
		t.Fatalf("INBOX counts %d after 5 appends", n[inbox.ID])
	}
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]*NewMessage, 100)
	for i := range batch {
		batch[i] = msg(100 + i)
	}
	if _, err := tx.AppendMany(other.ID, batch); err != nil {
		tx.Rollback()
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	countsAgree(t, s, "a batch of 100")
	if _, err := s.Copy(ctx, inbox.ID, uids[:3], other.ID); err != nil {
		t.Fatal(err)
	}
	countsAgree(t, s, "copy")
	if _, err := s.Move(ctx, inbox.ID, uids[3:4], other.ID); err != nil {
		t.Fatal(err)
	}
	countsAgree(t, s, "move")
	if _, err := s.StoreFlags(ctx, inbox.ID, uids[:2], FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, inbox.ID, uids[:2]); err != nil {
		t.Fatal(err)
	}
	n = countsAgree(t, s, "expunge")
	if n[inbox.ID] != 2 || n[other.ID] != 104 {
		t.Fatalf("after copy, move and expunge: INBOX %d, Other %d; want 2, 104", n[inbox.ID], n[other.ID])
	}
	d, err := s.Delta(ctx, inbox.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Messages != 2 {
		t.Fatalf("Delta counts %d messages in INBOX, want 2", d.Messages)
	}
	if err := s.DeleteMailbox(ctx, inbox.AccountID, "Other"); err != nil {
		t.Fatal(err)
	}
	countsAgree(t, s, "mailbox deleted")
	b, err := s.CreateAccount(ctx, "v@example.test", "pw", nil)
	if err != nil {
		t.Fatal(err)
	}
	binbox, err := s.Mailbox(ctx, b.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := s.AppendMessage(ctx, binbox.ID, msg(200+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteAccount(ctx, "u@example.test"); err != nil {
		t.Fatal(err)
	}
	if n = countsAgree(t, s, "account deleted"); n[binbox.ID] != 3 {
		t.Fatalf("the other account's INBOX counts %d, want 3", n[binbox.ID])
	}
}

// TestMessageCountUpgrade: the schema step that adds message_count counts
// the messages already there.
func TestMessageCountUpgrade(t *testing.T) {
	sqliteOnly(t)
	path := filepath.Join(t.TempDir(), "mail.db")
	s, err := Open(path, &Options{ChangePoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := fillInbox(t, s, 7)
	s.Close()
	step := slices.IndexFunc(schema, func(q string) bool { return strings.Contains(q, "ADD COLUMN message_count") })
	if step < 0 {
		t.Fatal("no schema step adds message_count")
	}
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	// Back to the schema before the step, as an older Mailferry left it.
	for _, q := range []string{`DROP TRIGGER message_count_insert`, `DROP TRIGGER message_count_delete`,
		`ALTER TABLE mailboxes DROP COLUMN message_count`, `ALTER TABLE messages DROP COLUMN save_date`, fmt.Sprintf(`PRAGMA user_version = %d`, step)} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	db.Close()
	if s, err = Open(path, &Options{ChangePoll: -1}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	countsAfterUpgrade(t, s, mb.ID, 7)
}

// countsAfterUpgrade checks, after the message_count step ran on a
// database whose INBOX (mb) held n messages, that it counted them and
// that its triggers count one appended after.
func countsAfterUpgrade(t *testing.T, s *Store, mb int64, n int) {
	t.Helper()
	if got := countsAgree(t, s, "upgrade"); got[mb] != n {
		t.Fatalf("INBOX counts %d after the upgrade, want %d", got[mb], n)
	}
	if _, err := s.AppendMessage(context.Background(), mb, &NewMessage{Body: []byte("Subject: y\r\n\r\ny\r\n")}); err != nil {
		t.Fatal(err)
	}
	countsAgree(t, s, "append after the upgrade")
}

// TestDeltaCountsNoMessages: a poll's Delta reads the mailbox's count of
// messages from its row, not by going through its messages: no statement
// it runs reads the messages table but by the MODSEQ range of
// messages_modseq (counting them read an index entry per message of the
// mailbox, on every poll of every session: half of a Delta's CPU in a
// 2,000-message mailbox).
func TestDeltaCountsNoMessages(t *testing.T) {
	sqliteOnly(t)
	s, mb, _ := inboxStore(t, nil, 3)
	for _, q := range deltaStatements {
		args := []any{mb.ID, 1}[:strings.Count(q, "?")]
		for _, d := range queryPlan(t, s, q, args...) {
			if strings.Contains(d, " messages ") && !strings.Contains(d, "messages_modseq (mailbox_id=? AND modseq>?)") {
				t.Errorf("Delta's statement %q reads the mailbox's messages: %q", q, d)
			}
		}
	}
}
