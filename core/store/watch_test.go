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

// TestWatchMailbox: a watcher of one mailbox is told of its messages'
// changes with their MODSEQ (Changed says whether a reader at a MODSEQ
// has them), not of another mailbox's, and of the account's mailboxes'
// changes and another process's commits as news whatever the reader
// knows.
func TestWatchMailbox(t *testing.T) {
	ctx := context.Background()
	a, b := openTwo(t)
	acct := account(t, a, "alice@example.test")
	inbox, err := a.Mailbox(ctx, acct.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	other, err := a.CreateMailbox(ctx, acct.ID, "Other", nil)
	if err != nil {
		t.Fatal(err)
	}
	w := a.WatchMailbox(acct.ID, inbox.ID)
	defer w.Close()
	time.Sleep(2 * store.DefaultChangePoll)
	drain := func() {
		select {
		case <-w.C:
		default:
		}
		w.Changed(1 << 62)
	}
	told := func(what string) {
		t.Helper()
		select {
		case <-w.C:
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: not told", what)
		}
	}
	notTold := func(what string) {
		t.Helper()
		select {
		case <-w.C:
			t.Fatalf("%s: told", what)
		case <-time.After(3 * store.DefaultChangePoll):
		}
	}
	drain()
	m, err := a.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: []byte("Subject: x\r\n\r\nx\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	told("append to the mailbox")
	if w.Changed(m.ModSeq) {
		t.Fatal("Changed: news to a reader that has read the append")
	}
	if _, err := a.StoreFlags(ctx, inbox.ID, []uint32{m.UID}, store.FlagsAdd, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	told("flags of the mailbox")
	if !w.Changed(m.ModSeq) {
		t.Fatal("Changed: the flag change is not news to a reader at the append's MODSEQ")
	}
	if _, err := a.AppendMessage(ctx, other.ID, &store.NewMessage{Body: []byte("Subject: y\r\n\r\ny\r\n")}); err != nil {
		t.Fatal(err)
	}
	notTold("append to another mailbox")
	if err := a.RenameMailbox(ctx, acct.ID, "Other", "Renamed"); err != nil {
		t.Fatal(err)
	}
	told("another mailbox renamed")
	if !w.Changed(1 << 62) {
		t.Fatal("Changed: a change of the account's mailboxes is not news")
	}
	if w.Changed(1 << 62) {
		t.Fatal("Changed twice for one change of the account's mailboxes")
	}
	if _, err := b.AppendMessage(ctx, other.ID, &store.NewMessage{Body: []byte("Subject: z\r\n\r\nz\r\n")}); err != nil {
		t.Fatal(err)
	}
	told("another process's commit")
	if !w.Changed(1 << 62) {
		t.Fatal("Changed: another process's commit is not news")
	}
}
