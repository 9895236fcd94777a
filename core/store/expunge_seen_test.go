package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"mailferry/core/store"
)

// TestExpungeSeen: only the messages still as the reader saw them go; a
// changed account, mailbox or UIDVALIDITY removes nothing.
func TestExpungeSeen(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	a := account(t, s, "seen@example.test")
	mb, err := s.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, b := range []string{"Subject: 1\r\n\r\none\r\n", "Subject: 2\r\n\r\ntwo\r\n", "Subject: 3\r\n\r\nthree\r\n"} {
		m, err := s.AppendMessage(ctx, mb.ID, &store.NewMessage{Body: []byte(b)})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, m.BlobKey)
	}
	seen := func() *store.Seen {
		return &store.Seen{AccountID: a.ID, Created: a.Created, MailboxID: mb.ID, UIDValidity: mb.UIDValidity,
			Blobs: map[uint32]string{1: keys[0], 2: keys[0], 3: keys[2], 9: keys[1]}}
	}
	for name, change := range map[string]func(*store.Seen){
		"account":     func(x *store.Seen) { x.AccountID++ },
		"created":     func(x *store.Seen) { x.Created = x.Created.Add(-time.Second) },
		"mailbox":     func(x *store.Seen) { x.MailboxID += 100 },
		"uidvalidity": func(x *store.Seen) { x.UIDValidity++ },
	} {
		x := seen()
		change(x)
		if gone, err := s.ExpungeSeen(ctx, x); !errors.Is(err, store.ErrNotFound) || len(gone) != 0 {
			t.Errorf("%s changed: ExpungeSeen = %v, %v; want nothing removed and ErrNotFound", name, gone, err)
		}
	}
	if msgs, _ := s.Messages(ctx, mb.ID); len(msgs) != 3 {
		t.Fatalf("%d messages left after refused removals, want 3", len(msgs))
	}
	// UID 2 holds other bytes than the reader saw, UID 9 is not there.
	gone, err := s.ExpungeSeen(ctx, seen())
	if err != nil || !slices.Equal(gone, []uint32{1, 3}) {
		t.Fatalf("ExpungeSeen = %v, %v; want [1 3]", gone, err)
	}
	msgs, _ := s.Messages(ctx, mb.ID)
	if len(msgs) != 1 || msgs[0].UID != 2 {
		t.Fatalf("left %v, want UID 2 only", msgs)
	}
	if ex, _ := s.Expunged(ctx, mb.ID, 0); !slices.Equal(ex, []uint32{1, 3}) {
		t.Errorf("Expunged = %v, want [1 3] (QRESYNC must see them go)", ex)
	}
}
