package store_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"mailferry/core/store"
)

func TestSnapshot(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	a := account(t, s, "snap@example.test")
	inbox, err := s.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := s.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: []byte("Subject: x\r\n\r\nbody\r\n"), Flags: []string{"$K"}}); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := s.Snapshot(ctx, inbox.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(snap.UIDs, []uint32{1, 2, 3}) || len(snap.Changed) != 3 || snap.Unchanged || snap.UIDNext != 4 {
		t.Fatalf("first snapshot = %+v", snap)
	}
	if !reflect.DeepEqual(snap.Changed[0].Flags, []string{"$K"}) {
		t.Fatalf("flags = %q", snap.Changed[0].Flags)
	}
	hm := snap.HighestModSeq
	again, err := s.Snapshot(ctx, inbox.ID, hm)
	if err != nil || !again.Unchanged || again.UIDs != nil {
		t.Fatalf("unchanged snapshot = %+v, %v", again, err)
	}
	if _, err := s.StoreFlags(ctx, inbox.ID, []uint32{2}, store.FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	snap, err = s.Snapshot(ctx, inbox.ID, hm)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Changed) != 1 || snap.Changed[0].UID != 2 || len(snap.UIDs) != 3 {
		t.Fatalf("after STORE: %+v", snap)
	}
	hm = snap.HighestModSeq
	if _, err := s.Expunge(ctx, inbox.ID, nil); err != nil {
		t.Fatal(err)
	}
	snap, err = s.Snapshot(ctx, inbox.ID, hm)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Unchanged || !reflect.DeepEqual(snap.UIDs, []uint32{1, 3}) || len(snap.Changed) != 0 {
		t.Fatalf("after EXPUNGE: %+v", snap)
	}
	if _, err := s.Snapshot(ctx, 9999, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing mailbox: %v", err)
	}
}
