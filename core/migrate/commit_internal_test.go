package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the test's own look at the database's locks

	"mailferry/core/internal/pgtest"
	"mailferry/core/store"
)

// TestResumeBatchTakesBlobRowsInKeyOrder: on PostgreSQL, a batch of a
// resumed copy (some of its UIDs committed before: the one-by-one path of
// commit) takes its blob rows in key order, as every batch does, so it
// does not deadlock with another account's transaction naming the same
// bodies. Here that other transaction holds the lower key's row while the
// batch (UIDs in the other order: the higher key first) commits, then
// takes the higher key's: taken in UID order, the batch would hold it and
// wait for the lower one, a deadlock that PostgreSQL breaks by rolling
// one of the two back.
func TestResumeBatchTakesBlobRowsInKeyOrder(t *testing.T) {
	url := pgtest.URL(t)
	// Every log of the test, from the engine and both nodes (a file: its
	// writes are safe from any goroutine).
	logs, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	logger := slog.New(slog.NewTextHandler(logs, nil))
	path := filepath.Join(t.TempDir(), "mail.db")
	st, err := store.Open(path, &store.Options{DatabaseURL: url, ChangePoll: -1, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	var accts [2]*store.Account
	var inbox [2]*store.Mailbox
	for i := range accts {
		if accts[i], err = st.CreateAccount(ctx, fmt.Sprintf("u%d@example.test", i), "Secret-1", nil); err != nil {
			t.Fatal(err)
		}
		if inbox[i], err = st.Mailbox(ctx, accts[i].ID, "INBOX"); err != nil {
			t.Fatal(err)
		}
	}
	body := func(s string) []byte { return []byte("Subject: " + s + "\r\n\r\n" + strings.Repeat(s, 100) + "\r\n") }
	key := func(b []byte) string { h := st.NewKeyHash(); h.Write(b); return h.Key() }
	first, lo, hi := body("first"), body("one"), body("two")
	if key(lo) > key(hi) {
		lo, hi = hi, lo
	}
	// UID 1 committed before (a copy interrupted after its first batch).
	if _, err := st.AppendMessage(ctx, inbox[0].ID, &store.NewMessage{UID: 1, Body: first}); err != nil {
		t.Fatal(err)
	}
	stage := func(b []byte) *store.StagedBlob {
		sb, err := st.Stage(b)
		if err != nil {
			t.Fatal(err)
		}
		return sb
	}
	b := &batch{last: 3}
	for i, raw := range [][]byte{first, hi, lo} {
		p := &pending{uid: uint32(i + 1), date: time.Unix(1_600_000_000, 0), bodySize: int64(len(raw)), staged: make(chan struct{}), blob: stage(raw)}
		close(p.staged)
		b.msgs = append(b.msgs, p)
	}
	e, err := New(Options{Store: st, Logger: logger, CatchUpDebounce: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	// Another node's transaction (a Store has one writer connection).
	node2, err := store.Open(path, &store.Options{DatabaseURL: url, ChangePoll: -1, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer node2.Close()
	other, err := node2.BeginMailbox(ctx, inbox[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	stage2 := func(b []byte) *store.StagedBlob {
		sb, err := node2.Stage(b)
		if err != nil {
			t.Fatal(err)
		}
		return sb
	}
	if _, err := other.Append(inbox[1].ID, &store.NewMessage{Staged: stage2(lo)}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- e.commit(ctx, accts[0], &plan{old: &oldMailbox{name: "INBOX"}, local: inbox[0]}, store.MigRunning, b)
	}()
	// The batch waits for the lower key's row.
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the batch committed (%v) while another transaction held a row it names", err)
		default:
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("the batch never waited for the other transaction's row")
		}
	}
	if _, err := other.Append(inbox[1].ID, &store.NewMessage{Staged: stage2(hi)}); err != nil {
		t.Fatalf("the other account's append, after the batch began: %v", err)
	}
	if err := other.Commit(); err != nil {
		t.Fatalf("the other account's commit: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(logs.Name()); err != nil {
		t.Fatal(err)
	} else if l := string(b); strings.Contains(l, "conflicted") || strings.Contains(l, "deadlock") {
		t.Errorf("a transaction was rolled back as a conflict:\n%s", l)
	}
	msgs, err := st.Messages(ctx, inbox[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, fmt.Sprintf("%d:%s", m.UID, m.BlobKey[:8]))
	}
	want := []string{"1:" + key(first)[:8], "2:" + key(hi)[:8], "3:" + key(lo)[:8]}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("messages %v, want %v (each once, with its UID)", got, want)
	}
}
