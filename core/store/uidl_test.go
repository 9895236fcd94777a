package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"mailferry/core/store"
)

// Kept UIDLs: recorded once (a second record keeps the first blob key and
// match), malformed ones refused with nothing recorded, a match never
// moves, and they go with the account.
func TestKeptUIDLs(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	acct, err := st.CreateAccount(ctx, "alice@example.test", "pw-123456", nil)
	if err != nil {
		t.Fatal(err)
	}
	if read, err := st.UIDLsRead(ctx, acct.ID); err != nil || read {
		t.Fatalf("UIDLsRead before any: %v %v", read, err)
	}
	key := func(c string) string { return strings.Repeat(c, 64) }
	for _, bad := range []store.KeptUIDL{
		{UIDL: "", BlobKey: key("a")},
		{UIDL: "has space", BlobKey: key("a")},
		{UIDL: "ctl\x01", BlobKey: key("a")},
		{UIDL: strings.Repeat("u", 71), BlobKey: key("a")},
		{UIDL: "ok", BlobKey: "short"},
	} {
		err := st.KeepUIDLs(ctx, acct.ID, []store.KeptUIDL{{UIDL: "good", BlobKey: key("b")}, bad})
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("KeepUIDLs(%q, %q): %v, want ErrInvalid", bad.UIDL, bad.BlobKey, err)
		}
	}
	if l, _ := st.KeptUIDLs(ctx, acct.ID); len(l) != 0 {
		t.Fatalf("a refused list recorded %v", l)
	}
	if read, _ := st.UIDLsRead(ctx, acct.ID); read {
		t.Fatal("a refused list marked the account read")
	}
	if err := st.KeepUIDLs(ctx, 9999, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown account: %v", err)
	}
	if err := st.KeepUIDLs(ctx, acct.ID, []store.KeptUIDL{{UIDL: "u1", BlobKey: key("a")}, {UIDL: "u2", BlobKey: key("b")}}); err != nil {
		t.Fatal(err)
	}
	if err := st.KeepUIDLs(ctx, acct.ID, []store.KeptUIDL{{UIDL: "u1", BlobKey: key("c")}}); err != nil {
		t.Fatal(err)
	}
	if read, _ := st.UIDLsRead(ctx, acct.ID); !read {
		t.Fatal("UIDLsRead after KeepUIDLs: false")
	}
	if err := st.MatchKeptUIDLs(ctx, acct.ID, 7, map[string]uint32{"u1": 3}); err != nil {
		t.Fatal(err)
	}
	if err := st.MatchKeptUIDLs(ctx, acct.ID, 7, map[string]uint32{"u1": 4, "nope": 5}); err != nil {
		t.Fatal(err)
	}
	if err := st.MatchKeptUIDLs(ctx, acct.ID, 7, map[string]uint32{"u2": 0}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("match to UID 0: %v", err)
	}
	l, err := st.KeptUIDLs(ctx, acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.KeptUIDL{{UIDL: "u1", BlobKey: key("a"), MailboxID: 7, UID: 3}, {UIDL: "u2", BlobKey: key("b")}}
	if len(l) != 2 || l[0] != want[0] || l[1] != want[1] {
		t.Fatalf("KeptUIDLs = %+v, want %+v", l, want)
	}
	if err := st.DeleteAccount(ctx, "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	if l, _ := st.KeptUIDLs(ctx, acct.ID); len(l) != 0 {
		t.Errorf("kept UIDLs outlive their account: %v", l)
	}
}
