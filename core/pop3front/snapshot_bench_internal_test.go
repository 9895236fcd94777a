package pop3front

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"mailferry/core/store"
)

// fillInbox gives a new account of st n small messages in its INBOX.
func fillInbox(b *testing.B, st *store.Store, address string, n int) *store.Account {
	b.Helper()
	ctx := context.Background()
	acct, err := st.CreateAccount(ctx, address, "Secret-pw-1", nil)
	if err != nil {
		b.Fatal(err)
	}
	mb, err := st.Mailbox(ctx, acct.ID, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	for done := 0; done < n; {
		batch := make([]*store.NewMessage, min(10000, n-done))
		for i := range batch {
			batch[i] = &store.NewMessage{Body: []byte(fmt.Sprintf("Subject: %s %d\r\n\r\nx\r\n", address, done+i))}
		}
		tx, err := st.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.AppendMany(mb.ID, batch); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		done += len(batch)
	}
	return acct
}

// BenchmarkOpenMaildrop100k: a POP3 login's snapshot of an INBOX of
// 100,000 messages (openMaildrop, UIDLs included): a plain account; a
// migrated one whose old UIDL list is not read, at its first login (its
// 100,000 UIDLs pinned in the same call) and at a later one.
func BenchmarkOpenMaildrop100k(b *testing.B) {
	const n = 100000
	ctx := context.Background()
	st, err := store.Open(filepath.Join(b.TempDir(), "mail.db"), &store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
		b.Fatal(err)
	}
	open := func(b *testing.B, acct *store.Account) {
		d, err := openMaildrop(ctx, ctx, st, acct)
		if err != nil {
			b.Fatal(err)
		}
		if len(d.items) != n {
			b.Fatalf("%d messages, want %d", len(d.items), n)
		}
	}
	made := 0 // accounts, for new addresses (b.Run may run a function twice)
	migrated := func(b *testing.B) *store.Account {
		made++
		address := fmt.Sprintf("m%d@example.test", made)
		acct := fillInbox(b, st, address, n)
		if err := st.SetAccountMigration(ctx, acct.ID, "done", ""); err != nil {
			b.Fatal(err)
		}
		acct, err := st.Account(ctx, address)
		if err != nil {
			b.Fatal(err)
		}
		if acct.Migration == "" {
			b.Fatal("not migrated")
		}
		return acct
	}
	b.Run("plain", func(b *testing.B) {
		made++
		acct := fillInbox(b, st, fmt.Sprintf("p%d@example.test", made), n)
		b.ResetTimer()
		for range b.N {
			open(b, acct)
		}
	})
	b.Run("migrated-first", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			acct := migrated(b)
			b.StartTimer()
			open(b, acct)
		}
	})
	b.Run("migrated-later", func(b *testing.B) {
		acct := migrated(b)
		open(b, acct)
		b.ResetTimer()
		for range b.N {
			open(b, acct)
		}
	})
}
