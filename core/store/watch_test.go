package store_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"mailferry/core/store"
)

// openTwo opens two Stores on one database, as two processes (serve and
// migrate) on one data directory do.
func openTwo(t *testing.T) (a, b *store.Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mail.db")
	var err error
	if a, err = store.OpenTest(t, path, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if b, err = store.OpenTest(t, path, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

// TestWatchSeesOtherStoresCommits: mail appended through one Store shows to
// a watcher of another on the same database within a second, bytes and all.
func TestWatchSeesOtherStoresCommits(t *testing.T) {
	ctx := context.Background()
	a, b := openTwo(t)
	acct := account(t, a, "alice@example.test")
	inbox, err := a.Mailbox(ctx, acct.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{acct.ID, 0} {
		w := b.Watch(id)
		// Drain what the setup may have signalled.
		time.Sleep(2 * store.DefaultChangePoll)
		select {
		case <-w.C:
		default:
		}
		body := []byte("Subject: from the other process\r\n\r\nhello\r\n")
		start := time.Now()
		m, err := a.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: body})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-w.C:
			t.Logf("watcher of %d told after %v", id, time.Since(start))
		case <-time.After(time.Second):
			t.Fatalf("watcher of account %d not told within a second of another Store's commit", id)
		}
		got, err := b.Message(ctx, inbox.ID, m.UID)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := b.Blob(ctx, got.BlobKey)
		if err != nil || !bytes.Equal(raw, body) {
			t.Fatalf("other Store reads %q, %v", raw, err)
		}
		w.Close()
	}
}
