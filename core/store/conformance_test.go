package store_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"mailferry/core/store"
)

// TestUIDValidityNeverRepeats: a mailbox deleted and made again (within the
// same second, and with a higher UIDVALIDITY taken from an old server
// before) always gets a higher UIDVALIDITY (DESIGN.md store rules).
func TestUIDValidityNeverRepeats(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	a := account(t, s, "uv@example.test")
	var last uint32
	for i := 0; i < 5; i++ {
		mb, err := s.CreateMailbox(ctx, a.ID, "Box", nil)
		if err != nil {
			t.Fatal(err)
		}
		if mb.UIDValidity <= last {
			t.Fatalf("round %d: UIDVALIDITY %d after %d", i, mb.UIDValidity, last)
		}
		last = mb.UIDValidity
		if err := s.DeleteMailbox(ctx, a.ID, "Box"); err != nil {
			t.Fatal(err)
		}
	}
	// A value from an old server, far in the future, deleted: the next
	// mailbox still gets more.
	if _, err := s.CreateMailbox(ctx, a.ID, "Old", &store.MailboxOptions{UIDValidity: 4000000000}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox(ctx, a.ID, "Old"); err != nil {
		t.Fatal(err)
	}
	mb, err := s.CreateMailbox(ctx, a.ID, "Old", nil)
	if err != nil {
		t.Fatal(err)
	}
	if mb.UIDValidity <= 4000000000 {
		t.Fatalf("UIDVALIDITY %d after 4000000000", mb.UIDValidity)
	}
}

// TestKeptSubscriptions: a subscription outlives its mailbox (RFC 3501
// 6.3.6) and applies again to a mailbox made under its name.
func TestKeptSubscriptions(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	a := account(t, s, "subs@example.test")
	if _, err := s.CreateMailbox(ctx, a.ID, "Gone", &store.MailboxOptions{Subscribed: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox(ctx, a.ID, "Gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSubscribed(ctx, a.ID, "Never", true); err != nil {
		t.Fatal(err)
	}
	kept, err := s.KeptSubscriptions(ctx, a.ID)
	if err != nil || !reflect.DeepEqual(kept, []string{"Gone", "Never"}) {
		t.Fatalf("kept = %q, %v", kept, err)
	}
	mb, err := s.CreateMailbox(ctx, a.ID, "Gone", nil)
	if err != nil || !mb.Subscribed {
		t.Fatalf("made again: %+v, %v", mb, err)
	}
	if err := s.SetSubscribed(ctx, a.ID, "Never", false); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSubscribed(ctx, a.ID, "Never", false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unsubscribe twice: %v", err)
	}
	if kept, _ := s.KeptSubscriptions(ctx, a.ID); len(kept) != 0 {
		t.Fatalf("kept = %q", kept)
	}
	// Deleting the account (its subscribed mailboxes with it) works and
	// keeps nothing.
	if err := s.SetSubscribed(ctx, a.ID, "Other", true); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(ctx, a.Address); err != nil {
		t.Fatal(err)
	}
	if kept, err := s.KeptSubscriptions(ctx, a.ID); err != nil || len(kept) != 0 {
		t.Fatalf("kept after account deletion = %q, %v", kept, err)
	}
}

// TestClaimRecent: each message is recent to one claimer only.
func TestClaimRecent(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	a := account(t, s, "recent@example.test")
	mb, err := s.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := s.AppendMessage(ctx, mb.ID, &store.NewMessage{Body: []byte("Subject: x\r\n\r\nx\r\n")}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.RecentCount(ctx, mb.ID); err != nil || n != 3 {
		t.Fatalf("RecentCount = %d, %v", n, err)
	}
	if from, err := s.ClaimRecent(ctx, mb.ID, 2); err != nil || from != 0 {
		t.Fatalf("first claim from %d, %v", from, err)
	}
	if from, err := s.ClaimRecent(ctx, mb.ID, 3); err != nil || from != 2 {
		t.Fatalf("second claim from %d, %v", from, err)
	}
	if from, err := s.ClaimRecent(ctx, mb.ID, 3); err != nil || from != 3 {
		t.Fatalf("third claim from %d, %v", from, err)
	}
	if n, _ := s.RecentCount(ctx, mb.ID); n != 0 {
		t.Fatalf("RecentCount = %d", n)
	}
	if last, _ := s.RecentFrom(ctx, mb.ID); last != 3 {
		t.Fatalf("RecentFrom = %d", last)
	}
}
