package store

import (
	"context"
	"path/filepath"
	"testing"
)

// Set-ups the internal tests share.

// inboxStore opens a SQLite store (opts, nil: no change polling) with one
// account, u@example.test, and n messages in its INBOX, and returns the
// store, the INBOX and their UIDs. The store is closed when the test ends.
func inboxStore(tb testing.TB, opts *Options, n int) (*Store, *Mailbox, []uint32) {
	tb.Helper()
	if opts == nil {
		opts = &Options{ChangePoll: -1}
	}
	s, err := Open(filepath.Join(tb.TempDir(), "mail.db"), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	mb, uids := fillInbox(tb, s, n)
	return s, mb, uids
}

// fillInbox makes the account u@example.test in s, with n messages in
// its INBOX, and returns the INBOX and their UIDs.
func fillInbox(tb testing.TB, s *Store, n int) (*Mailbox, []uint32) {
	tb.Helper()
	ctx := context.Background()
	if _, err := s.CreateDomain(ctx, "example.test"); err != nil {
		tb.Fatal(err)
	}
	a, err := s.CreateAccount(ctx, "u@example.test", "pw", nil)
	if err != nil {
		tb.Fatal(err)
	}
	mb, err := s.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		tb.Fatal(err)
	}
	var uids []uint32
	for i := 0; i < n; i++ {
		m, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: []byte("Subject: x\r\n\r\nx\r\n")})
		if err != nil {
			tb.Fatal(err)
		}
		uids = append(uids, m.UID)
	}
	return mb, uids
}

// twoStores opens two Stores on one database of the run's engine (two
// processes, or two nodes), closed when the test ends.
func twoStores(t *testing.T) (a, b *Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mail.db")
	return openAt(t, path, nil), openAt(t, path, nil)
}

// openAt opens a Store on the database of path (of the run's engine),
// closed when the test ends.
func openAt(t *testing.T, path string, opts *Options) *Store {
	t.Helper()
	s, err := testOpen(t, path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
