package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"mailferry/core/store"
)

// enqueue queues a message as the relay does, in a transaction of its own.
func enqueue(t testing.TB, s *store.Store, from string, rcpts []string, body []byte, note string) (int64, error) {
	t.Helper()
	tx, err := s.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	id, err := tx.Enqueue(from, rcpts, body, note)
	if err != nil {
		tx.Rollback()
		return 0, err
	}
	return id, tx.Commit()
}

// queueItem finds queue item id in the queue's listing, or fails with
// ErrNotFound.
func queueItem(t testing.TB, s *store.Store, id int64) (*store.QueueItem, error) {
	t.Helper()
	l, err := s.Queue(context.Background())
	if err != nil {
		return nil, err
	}
	for _, it := range l {
		if it.ID == id {
			return it, nil
		}
	}
	return nil, fmt.Errorf("queue item %d: %w", id, store.ErrNotFound)
}

func TestQueue(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	id, err := enqueue(t, s, "a@example.test", []string{"x@other.test", "y@other.test"}, []byte("msg"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enqueue(t, s, "a@example.test", nil, []byte("msg"), ""); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("no rcpts: %v", err)
	}
	l, _ := s.Queue(ctx)
	if len(l) != 1 || l[0].ID != id || l[0].Size != 3 || len(l[0].Rcpts) != 2 {
		t.Fatalf("queue: %+v", l)
	}
	if next, ok, err := s.QueueNextDue(ctx); err != nil || !ok || next.After(time.Now()) {
		t.Fatalf("QueueNextDue = %v, %v, %v; want due now", next, ok, err)
	}
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueueDefer(id, l[0].BlobKey, []string{"y@other.test"}, time.Now().Add(time.Hour), "451 try later"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.QueueClaimDue(ctx, time.Now(), time.Now(), 10, nil); len(due) != 0 {
		t.Fatal("deferred item is due")
	}
	it, _ := queueItem(t, s, id)
	if it.Attempts != 1 || it.LastError != "451 try later" || len(it.Rcpts) != 1 {
		t.Fatalf("item %+v", it)
	}
	// Done with a bounce: the item goes and the bounce comes in one
	// transaction, as the relay does it.
	tx, err = s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueueDelete(id, it.BlobKey); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Enqueue("", []string{"a@example.test"}, []byte("dsn"), "bounce"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	l, _ = s.Queue(ctx)
	if len(l) != 1 || l[0].Note != "bounce" {
		t.Fatalf("queue %+v", l)
	}
	if err := s.QueueDelete(ctx, l[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := s.QueueDelete(ctx, l[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}

func TestQueueTxOps(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	if _, ok, err := s.QueueNextDue(ctx); err != nil || ok {
		t.Fatalf("QueueNextDue on empty queue = %v, %v", ok, err)
	}
	id, err := enqueue(t, s, "a@x.test", []string{"b@y.test", "c@y.test", "d@y.test"}, []byte("Subject: q\r\n\r\nbody\r\n"), "relay")
	if err != nil {
		t.Fatal(err)
	}

	item, err := queueItem(t, s, id)
	if err != nil {
		t.Fatal(err)
	}
	key := item.BlobKey

	// An item is named by ID and blob: the wrong blob is not found.
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueueSetRcpts(id, "0000", []string{"x@y.test"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("QueueSetRcpts with another blob = %v", err)
	}
	if err := tx.QueueDefer(id, "0000", []string{"x@y.test"}, time.Now(), "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("QueueDefer with another blob = %v", err)
	}
	if err := tx.QueueDelete(id, "0000"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("QueueDelete with another blob = %v", err)
	}
	tx.Rollback()

	// Narrowing does not count an attempt.
	tx, err = s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueueSetRcpts(id, key, []string{"c@y.test", "d@y.test"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	it, err := queueItem(t, s, id)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(it.Rcpts, []string{"c@y.test", "d@y.test"}) || it.Attempts != 0 {
		t.Fatalf("after QueueSetRcpts: %+v", it)
	}

	// Defer counts an attempt and moves the due time; a rolled back one does not.
	next := time.Now().Add(time.Hour).Truncate(time.Second)
	tx, _ = s.Begin(ctx)
	if err := tx.QueueDefer(id, key, []string{"d@y.test"}, next, "451 later"); err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
	tx, _ = s.Begin(ctx)
	if err := tx.QueueDefer(id, key, nil, next, "x"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("QueueDefer without recipients = %v", err)
	}
	if err := tx.QueueDefer(id, key, []string{"d@y.test"}, next, "451 later"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	it, _ = queueItem(t, s, id)
	if !reflect.DeepEqual(it.Rcpts, []string{"d@y.test"}) || it.Attempts != 1 || !it.NextAttempt.Equal(next) || it.LastError != "451 later" {
		t.Fatalf("after QueueDefer: %+v", it)
	}
	if got, ok, err := s.QueueNextDue(ctx); err != nil || !ok || !got.Equal(next) {
		t.Fatalf("QueueNextDue = %v, %v, %v; want %v", got, ok, err, next)
	}
	if err := s.QueueHold(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.QueueNextDue(ctx); ok {
		t.Fatal("QueueNextDue counts a held item")
	}

	// Empty recipients delete; a second delete is ErrNotFound; the blob goes.
	tx, _ = s.Begin(ctx)
	if err := tx.QueueSetRcpts(id, key, nil); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueueDelete(id, key); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete = %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := queueItem(t, s, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("item still there: %v", err)
	}
	if _, err := s.Blob(ctx, it.BlobKey); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("blob of deleted item: %v", err)
	}
}

func TestQueueClaimDue(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	var ids []int64
	for i := 0; i < 3; i++ {
		id, err := enqueue(t, s, "a@x.test", []string{"b@y.test"}, []byte{'m', byte('0' + i)}, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := s.QueueHold(ctx, ids[2]); err != nil {
		t.Fatal(err)
	}
	// A second on: on PostgreSQL the items' times are the database's
	// clock by a cached offset and a claim's is rounded to the second, so
	// an item enqueued just before a second's end could read as due only
	// in the next (the test failed so in CI, about 1 run in 40).
	now := time.Now().Add(time.Second)
	until := now.Add(10 * time.Minute)
	got, err := s.QueueClaimDue(ctx, now, until, 5, []int64{ids[0], ids[1]})
	if err != nil || len(got) != 0 {
		t.Fatalf("claim excluding both due items = %v, %v", got, err)
	}
	got, err = s.QueueClaimDue(ctx, now, until, 1, nil)
	if err != nil || len(got) != 1 || got[0].ID != ids[0] {
		t.Fatalf("first claim = %v, %v", got, err)
	}
	// Claimed items are not due any more; held ones never are.
	got, err = s.QueueClaimDue(ctx, now, until, 10, []int64{ids[0]})
	if err != nil || len(got) != 1 || got[0].ID != ids[1] {
		t.Fatalf("second claim = %v, %v", got, err)
	}
	if got, _ := s.QueueClaimDue(ctx, now, until, 10, nil); len(got) != 0 {
		t.Fatalf("third claim got %d items", len(got))
	}
	it, _ := queueItem(t, s, ids[0])
	if it.NextAttempt.Unix() != until.Unix() || it.Attempts != 0 {
		t.Fatalf("claimed item %+v", it)
	}
	// A dead worker's claim runs out.
	if got, _ := s.QueueClaimDue(ctx, until, until.Add(time.Minute), 10, nil); len(got) != 2 {
		t.Fatalf("after the claim ran out: %d items", len(got))
	}
}

// TestQueueRenewClaim: a claim renewed is not due for others until its new
// end; a claim whose item was taken by another worker, or whose outcome
// was recorded, is not renewed (ErrClaimLost) and changes nothing.
func TestQueueRenewClaim(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	id, err := enqueue(t, s, "a@x.test", []string{"b@y.test"}, []byte("m"), "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	got, err := s.QueueClaimDue(ctx, now, now.Add(time.Minute), 1, nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("claim = %v, %v", got, err)
	}
	mine := got[0]
	if err := s.QueueRenewClaim(ctx, mine, now.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Past the first lease, not the renewed one: not due for another.
	if got, _ := s.QueueClaimDue(ctx, now.Add(2*time.Minute), now.Add(3*time.Minute), 1, nil); len(got) != 0 {
		t.Fatalf("a renewed claim was taken at its first lease's end")
	}
	// Past the renewed one: another takes it; the first cannot renew.
	got, err = s.QueueClaimDue(ctx, now.Add(6*time.Minute), now.Add(7*time.Minute), 1, nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("claim after the renewed lease = %v, %v", got, err)
	}
	if err := s.QueueRenewClaim(ctx, mine, now.Add(20*time.Minute)); !errors.Is(err, store.ErrClaimLost) {
		t.Fatalf("renewing a claim another took: %v", err)
	}
	if it, _ := queueItem(t, s, id); it.NextAttempt.Unix() != now.Add(7*time.Minute).Unix() {
		t.Fatalf("the other's claim was moved to %v", it.NextAttempt)
	}
	// The outcome recorded: a renewal changes nothing.
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := now.Add(time.Hour)
	if err := tx.QueueDefer(id, got[0].BlobKey, got[0].Rcpts, next, "451 later"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.QueueRenewClaim(ctx, got[0], now.Add(20*time.Minute)); !errors.Is(err, store.ErrClaimLost) {
		t.Fatalf("renewing a claim after the outcome: %v", err)
	}
	if it, _ := queueItem(t, s, id); it.NextAttempt.Unix() != next.Unix() {
		t.Fatalf("the deferred item's next attempt moved to %v", it.NextAttempt)
	}
	if err := s.QueueRenewClaim(ctx, &store.QueueItem{ID: id}, now); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("renewing an item never claimed: %v", err)
	}
}

// QueueClaimDueExcept leaves out the items of the senders named (the
// relay's senders with as many deliveries under way as one may have), the
// null sender's (bounces) too when named, and claims the others in order.
func TestQueueClaimDueExceptSenders(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	var ids []int64
	for i, from := range []string{"slow@x.test", "slow@x.test", "", "other@x.test"} {
		id, err := enqueue(t, s, from, []string{"b@y.test"}, []byte{'s', byte('0' + i)}, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	now := time.Now().Add(time.Second) // see TestQueueClaimDue
	until := now.Add(10 * time.Minute)
	got, err := s.QueueClaimDueExcept(ctx, now, until, 10, []int64{ids[2]}, []string{"slow@x.test", "nobody@x.test"})
	if err != nil || len(got) != 1 || got[0].ID != ids[3] {
		t.Fatalf("claim without slow@x.test's and item %d = %v, %v; want item %d", ids[2], got, err, ids[3])
	}
	got, err = s.QueueClaimDueExcept(ctx, now, until, 10, nil, []string{""})
	if err != nil || len(got) != 2 || got[0].ID != ids[0] || got[1].ID != ids[1] {
		t.Fatalf("claim without bounces = %v, %v; want items %d and %d", got, err, ids[0], ids[1])
	}
	got, err = s.QueueClaimDueExcept(ctx, now, until, 10, nil, nil)
	if err != nil || len(got) != 1 || got[0].ID != ids[2] {
		t.Fatalf("claim of the rest = %v, %v; want item %d", got, err, ids[2])
	}
}
