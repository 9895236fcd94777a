package store

import (
	"context"
	"path/filepath"
	"testing"
)

// TestMailboxIDNotReused: a mailbox made after the one with the highest
// id was deleted (a mailbox, or a whole account) gets a new id, not the
// freed one SQLite's INTEGER PRIMARY KEY would give again: a server keeps
// state by mailbox id (the IMAP front end's SELECT state).
func TestMailboxIDNotReused(t *testing.T) {
	ctx := context.Background()
	s, err := testOpen(t, filepath.Join(t.TempDir(), "mail.db"), &Options{ChangePoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.CreateDomain(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	a, err := s.CreateAccount(ctx, "reuse@example.org", "pw", nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	made := func(acct int64, name string) int64 {
		t.Helper()
		m, err := s.CreateMailbox(ctx, acct, name, &MailboxOptions{UIDValidity: 777})
		if err != nil {
			t.Fatal(err)
		}
		if seen[m.ID] {
			t.Fatalf("mailbox %s got id %d, which a deleted mailbox had", name, m.ID)
		}
		seen[m.ID] = true
		return m.ID
	}
	made(a.ID, "box")
	for range 3 {
		if err := s.DeleteMailbox(ctx, a.ID, "box"); err != nil {
			t.Fatal(err)
		}
		made(a.ID, "box")
	}
	// The whole account deleted and made again.
	if err := s.DeleteAccount(ctx, "reuse@example.org"); err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateAccount(ctx, "reuse@example.org", "pw", nil)
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := s.Mailbox(ctx, b.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if seen[inbox.ID] {
		t.Fatalf("the new account's INBOX got id %d, which a deleted mailbox had", inbox.ID)
	}
	seen[inbox.ID] = true
	made(b.ID, "box")
}
