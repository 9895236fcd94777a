package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestBatchesNoDeadlock (PostgreSQL): two accounts' batches naming the
// same two bodies in opposite orders do not deadlock. Each takes its
// account's lock and the writer lock shared (BeginMailbox), so they run
// side by side; the rows they both touch are the bodies' blob rows (a
// reference count each). Taken in the messages' order, a batch holding
// one row and waiting for the other meets a batch doing the opposite: a
// third transaction holding the second row lines them up so that the
// deadlock is certain. Taken in key order, the second batch waits for
// the first and both commit.
func TestBatchesNoDeadlock(t *testing.T) {
	postgresOnly(t, "SQLite has one writer, no row locks")
	ctx := context.Background()
	// Three nodes on one database: a Store has one writer connection.
	path := filepath.Join(t.TempDir(), "mail.db")
	var nodes []*Store
	for range 3 {
		n, err := testOpen(t, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		nodes = append(nodes, n)
	}
	s, sa, sb := nodes[0], nodes[1], nodes[2]
	if _, err := s.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	inbox := map[string]int64{}
	for _, u := range []string{"a", "b", "c"} {
		acct, err := s.CreateAccount(ctx, u+"@example.test", "pw", nil)
		if err != nil {
			t.Fatal(err)
		}
		mb, err := s.Mailbox(ctx, acct.ID, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		inbox[u] = mb.ID
	}
	// Two bodies, both already stored (account c has them): lo has the
	// smaller blob key.
	lo, hi := []byte("Subject: one\r\n\r\nsent to everyone\r\n"), []byte("Subject: two\r\n\r\nsent to everyone too\r\n")
	for _, body := range [][]byte{lo, hi} {
		if _, err := s.AppendMessage(ctx, inbox["c"], &NewMessage{Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	stage := func(s *Store, body []byte) *NewMessage {
		t.Helper()
		b, err := s.Stage(body)
		if err != nil {
			t.Fatal(err)
		}
		return &NewMessage{Staged: b}
	}
	if k1, k2 := stage(s, lo).Staged.Key, stage(s, hi).Staged.Key; k1 > k2 {
		lo, hi = hi, lo
	}
	waiting := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var got int
			if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted`).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d transactions waiting for a lock after 10 s, want %d", got, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	batch := func(s *Store, mailbox int64, msgs ...*NewMessage) chan error {
		done := make(chan error, 1)
		go func() {
			tx, err := s.BeginMailbox(ctx, mailbox)
			if err != nil {
				done <- err
				return
			}
			defer tx.Rollback()
			if _, err := tx.AppendMany(mailbox, msgs); err != nil {
				done <- err
				return
			}
			done <- tx.Commit()
		}()
		return done
	}

	// A third transaction holds the row of hi (as another account's
	// batch naming it does, until it commits).
	gate, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Rollback()
	if _, err := gate.ExecContext(ctx, `SELECT 1 FROM blobs WHERE key = ? FOR UPDATE`, stage(s, hi).Staged.Key); err != nil {
		t.Fatal(err)
	}
	// Account b's batch names hi then lo: it waits for the gate.
	bDone := batch(sb, inbox["b"], stage(sb, hi), stage(sb, lo))
	waiting(1)
	// Account a's batch names lo then hi.
	aDone := batch(sa, inbox["a"], stage(sa, lo), stage(sa, hi))
	waiting(2)
	gate.Rollback()
	for name, done := range map[string]chan error{"a": aDone, "b": bDone} {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("account %s's batch: %v", name, err)
				if errors.Is(err, ErrConflict) {
					t.Logf("(told as ErrConflict, to be run again)")
				}
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("account %s's batch still waits after 30 s", name)
		}
	}
	for _, u := range []string{"a", "b"} {
		ms, err := s.Messages(ctx, inbox[u])
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 2 {
			t.Errorf("account %s has %d messages, want 2", u, len(ms))
		}
	}
}

// TestConflictTold (PostgreSQL): a transaction the database rolls back
// for a deadlock fails with ErrConflict (nothing written), and run again
// it commits. Two batches that each append one body and then the other,
// in opposite orders, in two calls (the one order of a call does not
// span calls), deadlock for certain.
func TestConflictTold(t *testing.T) {
	postgresOnly(t, "SQLite has one writer, no row locks")
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mail.db")
	var nodes []*Store
	for range 2 {
		n, err := testOpen(t, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		nodes = append(nodes, n)
	}
	if _, err := nodes[0].CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	var inboxes []int64
	for _, u := range []string{"a", "b", "c"} {
		acct, err := nodes[0].CreateAccount(ctx, u+"@example.test", "pw", nil)
		if err != nil {
			t.Fatal(err)
		}
		mb, err := nodes[0].Mailbox(ctx, acct.ID, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		inboxes = append(inboxes, mb.ID)
	}
	bodies := [][]byte{[]byte("Subject: one\r\n\r\n1\r\n"), []byte("Subject: two\r\n\r\n2\r\n")}
	for _, b := range bodies {
		if _, err := nodes[0].AppendMessage(ctx, inboxes[2], &NewMessage{Body: b}); err != nil {
			t.Fatal(err)
		}
	}
	txs := make([]*Tx, 2)
	for i := range 2 {
		tx, err := nodes[i].BeginMailbox(ctx, inboxes[i])
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.AppendMany(inboxes[i], []*NewMessage{{Body: bodies[i]}}); err != nil {
			t.Fatal(err)
		}
		txs[i] = tx
	}
	errs := make(chan error, 2)
	for i := range 2 {
		go func() {
			_, err := txs[i].AppendMany(inboxes[i], []*NewMessage{{Body: bodies[1-i]}})
			if err == nil {
				err = txs[i].Commit()
			} else {
				txs[i].Rollback()
			}
			errs <- err
		}()
	}
	var conflicts int
	for range 2 {
		select {
		case err := <-errs:
			switch {
			case err == nil:
			case errors.Is(err, ErrConflict):
				conflicts++
			default:
				t.Fatalf("a batch failed with %v, want ErrConflict or success", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the batches still wait after 30 s")
		}
	}
	if conflicts != 1 {
		t.Fatalf("%d batches failed with ErrConflict, want 1 (the deadlock's victim)", conflicts)
	}
	// Run again, the victim's batch commits.
	for i := range 2 {
		ms, err := nodes[0].Messages(ctx, inboxes[i])
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 2 {
			continue
		}
		if len(ms) != 0 {
			t.Fatalf("the rolled-back batch left %d messages", len(ms))
		}
		tx, err := nodes[i].BeginMailbox(ctx, inboxes[i])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.AppendMany(inboxes[i], []*NewMessage{{Body: bodies[i]}, {Body: bodies[1-i]}}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatalf("the victim's batch run again: %v", err)
		}
	}
}
