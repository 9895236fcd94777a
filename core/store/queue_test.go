package store_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"mailferry/core/store"
)

func TestQueueTxOps(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	if _, ok, err := s.QueueNextDue(ctx); err != nil || ok {
		t.Fatalf("QueueNextDue on empty queue = %v, %v", ok, err)
	}
	id, err := s.Enqueue(ctx, "a@x.test", []string{"b@y.test", "c@y.test", "d@y.test"}, []byte("Subject: q\r\n\r\nbody\r\n"), "relay")
	if err != nil {
		t.Fatal(err)
	}

	item, err := s.QueueItem(ctx, id)
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
	it, err := s.QueueItem(ctx, id)
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
	it, _ = s.QueueItem(ctx, id)
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
	if _, err := s.QueueItem(ctx, id); !errors.Is(err, store.ErrNotFound) {
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
		id, err := s.Enqueue(ctx, "a@x.test", []string{"b@y.test"}, []byte{'m', byte('0' + i)}, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := s.QueueHold(ctx, ids[2]); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
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
	it, _ := s.QueueItem(ctx, ids[0])
	if it.NextAttempt.Unix() != until.Unix() || it.Attempts != 0 {
		t.Fatalf("claimed item %+v", it)
	}
	// A dead worker's claim runs out.
	if got, _ := s.QueueClaimDue(ctx, until, until.Add(time.Minute), 10, nil); len(got) != 2 {
		t.Fatalf("after the claim ran out: %d items", len(got))
	}
}
