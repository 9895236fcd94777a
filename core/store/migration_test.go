package store_test

import (
	"context"
	"errors"
	"testing"

	"mailferry/core/store"
)

func TestAdoptUIDValidity(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	a := account(t, s, "a@example.test")
	mb, err := s.CreateMailbox(ctx, a.ID, "Empty", &store.MailboxOptions{UIDValidity: 100, UIDNext: 5, Migration: store.MigPending})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AdoptUIDValidity(ctx, mb.ID, 200, 3); err != nil {
		t.Fatal(err)
	}
	got, _ := s.MailboxByID(ctx, mb.ID)
	if got.UIDValidity != 200 || got.UIDNext != 5 {
		t.Fatalf("after adopt: UIDVALIDITY %d UIDNEXT %d, want 200 and 5 (UIDNEXT never goes down)", got.UIDValidity, got.UIDNext)
	}
	if _, err := s.AppendMessage(ctx, mb.ID, &store.NewMessage{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := s.AdoptUIDValidity(ctx, mb.ID, 300, 1); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("adopt on a mailbox with mail: %v", err)
	}
	if got, _ := s.MailboxByID(ctx, mb.ID); got.UIDValidity != 200 {
		t.Fatalf("UIDVALIDITY changed to %d on a refused adopt", got.UIDValidity)
	}
}
