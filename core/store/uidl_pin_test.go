package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"mailferry/core/store"
)

// TestPinUIDLs: pinned UIDLs are matched kept UIDLs; an old list read
// later neither moves them nor marks them unmatched; malformed pins
// record nothing.
func TestPinUIDLs(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	a := account(t, s, "pin@example.test")
	key := strings.Repeat("a", 64)
	for _, bad := range []store.KeptUIDL{
		{UIDL: "", BlobKey: key, MailboxID: 1, UID: 1},
		{UIDL: "a b", BlobKey: key, MailboxID: 1, UID: 1},
		{UIDL: "x", BlobKey: "short", MailboxID: 1, UID: 1},
		{UIDL: "x", BlobKey: key, MailboxID: 1, UID: 0},
		{UIDL: "x", BlobKey: key, MailboxID: 0, UID: 1},
	} {
		if err := s.PinUIDLs(ctx, a.ID, []store.KeptUIDL{{UIDL: "good", BlobKey: key, MailboxID: 1, UID: 2}, bad}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("PinUIDLs(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
	if k, _ := s.KeptUIDLs(ctx, a.ID); len(k) != 0 {
		t.Fatalf("malformed pins recorded %v", k)
	}
	if read, _ := s.UIDLsRead(ctx, a.ID); read {
		t.Fatal("pinning marked the old list read")
	}
	if err := s.PinUIDLs(ctx, a.ID, []store.KeptUIDL{{UIDL: "here-1", BlobKey: key, MailboxID: 7, UID: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.KeepUIDLs(ctx, a.ID, []store.KeptUIDL{{UIDL: "here-1", BlobKey: strings.Repeat("b", 64)}}); err != nil {
		t.Fatal(err)
	}
	k, err := s.KeptUIDLs(ctx, a.ID)
	if err != nil || len(k) != 1 || k[0] != (store.KeptUIDL{UIDL: "here-1", BlobKey: key, MailboxID: 7, UID: 1}) {
		t.Fatalf("KeptUIDLs = %+v, %v", k, err)
	}
}
