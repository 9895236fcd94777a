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

// TestAccountIDNotReused: an account made after the one with the highest
// id was deleted gets a new id, not the freed one SQLite's INTEGER PRIMARY
// KEY would give again: processes keep state by account id (the migration
// engine's old-server password and pending hash), which the new account
// would inherit. Also across a reopen (the top is in the database).
func TestAccountIDNotReused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mail.db")
	s, err := testOpen(t, path, &Options{ChangePoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.CreateDomain(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	seen := map[int64]string{}
	made := func(addr string) {
		t.Helper()
		a, err := s.CreateAccount(ctx, addr, "pw", nil)
		if err != nil {
			t.Fatal(err)
		}
		if was, ok := seen[a.ID]; ok {
			t.Fatalf("account %s got id %d, which the deleted %s had", addr, a.ID, was)
		}
		seen[a.ID] = addr
	}
	made("keep@example.org")
	for i, addr := range []string{"a@example.org", "b@example.org", "a@example.org"} {
		made(addr)
		if err := s.DeleteAccount(ctx, addr); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = testOpen(t, path, &Options{ChangePoll: -1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	made("new@example.org")
}
