package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"mailferry/core/store"
)

// TestAppendRateTwoStoresTwoAccounts prints appends per second, one
// message per transaction, of two Stores on one database (two nodes),
// each appending to its own account, and of the two appending to one
// account. Run it with -v to see the figures.
func TestAppendRateTwoStoresTwoAccounts(t *testing.T) {
	a, b := openTwo(t)
	_, inbox1 := inboxOf(t, a, "alice@example.test")
	_, inbox2 := inboxOf(t, a, "bob@example.test")
	const each = 150
	rate := func(name string, boxes [2]int64) {
		t.Helper()
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		start := time.Now()
		for i, s := range []*store.Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < each; j++ {
					if _, err := s.AppendMessage(ctx, boxes[i], &store.NewMessage{Body: []byte(fmt.Sprintf("Subject: %s %d/%d\r\n\r\nbody\r\n", name, i, j))}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		d := time.Since(start)
		t.Logf("%s on %s: %d appends in %v: %.0f appends/s", name, store.EngineUnderTest(), 2*each, d.Round(time.Millisecond), float64(2*each)/d.Seconds())
	}
	rate("2 stores x 2 accounts", [2]int64{inbox1, inbox2})
	rate("2 stores x 1 account", [2]int64{inbox1, inbox1})
}

// TestAccountsWriteSideBySide: on PostgreSQL two nodes' writes to two
// accounts do not wait for each other. While node A's transaction on
// alice's INBOX is open, node B appends to bob's at once; B's append to
// alice's waits until A commits and then gets the next UID; a whole-store
// write (a queue item) waits too. On SQLite one writer at a time is the
// engine's own rule.
func TestAccountsWriteSideBySide(t *testing.T) {
	if store.EngineUnderTest() != store.EnginePostgres {
		t.Skip("SQLite has one writer at a time")
	}
	ctx := context.Background()
	a, b := openTwo(t)
	_, alice := inboxOf(t, a, "alice@example.test")
	_, bob := inboxOf(t, a, "bob@example.test")
	tx, err := a.BeginMailbox(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	first, err := tx.Append(alice, &store.NewMessage{Body: []byte("Subject: held\r\n\r\nx\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	// Another account's append goes through while A holds alice's lock.
	done := make(chan error, 1)
	go func() {
		_, err := b.AppendMessage(ctx, bob, &store.NewMessage{Body: []byte("Subject: bob\r\n\r\nx\r\n")})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an append to bob waited for a transaction on alice's mailbox")
	}
	// The same account's append, and a whole-store write, wait for A.
	type res struct {
		m   *store.Message
		err error
	}
	same := make(chan res, 1)
	go func() {
		m, err := b.AppendMessage(ctx, alice, &store.NewMessage{Body: []byte("Subject: alice too\r\n\r\nx\r\n")})
		same <- res{m, err}
	}()
	whole := make(chan error, 1)
	go func() {
		tx, err := b.Begin(ctx)
		if err == nil {
			if _, err = tx.Enqueue("alice@example.test", []string{"x@elsewhere.test"}, []byte("Subject: q\r\n\r\nx\r\n"), ""); err == nil {
				err = tx.Commit()
			}
			tx.Rollback()
		}
		whole <- err
	}()
	select {
	case r := <-same:
		t.Fatalf("an append to alice did not wait for the open transaction on alice: %+v", r)
	case err := <-whole:
		t.Fatalf("a whole-store write did not wait for an account's transaction: %v", err)
	case <-time.After(time.Second):
	}
	// The transaction refuses what is not alice's mailboxes.
	if _, err := tx.Append(bob, &store.NewMessage{Body: []byte("x")}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("append to another account's mailbox in alice's transaction: %v", err)
	}
	if _, err := tx.Enqueue("a@example.test", []string{"b@elsewhere.test"}, []byte("x"), ""); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("enqueue in alice's transaction: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-same
	if r.err != nil || r.m.UID != first.UID+1 {
		t.Fatalf("alice's second append: %+v (first UID %d)", r, first.UID)
	}
	if err := <-whole; err != nil {
		t.Fatal(err)
	}
}
