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

// AdoptUIDValidityDone adopts and marks the mailbox copied in one commit;
// refused on a mailbox with mail, it changes neither.
func TestAdoptUIDValidityDone(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	a := account(t, s, "a@example.test")
	mb, err := s.CreateMailbox(ctx, a.ID, "Empty", &store.MailboxOptions{UIDValidity: 100, UIDNext: 5, Migration: store.MigPending})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AdoptUIDValidityDone(ctx, mb.ID, 200, 7, store.MigDone, 6); err != nil {
		t.Fatal(err)
	}
	got, _ := s.MailboxByID(ctx, mb.ID)
	if got.UIDValidity != 200 || got.UIDNext != 7 || got.Migration != store.MigDone || got.MigratedUID != 6 {
		t.Fatalf("after adopt and done: UIDVALIDITY %d UIDNEXT %d state %q last UID %d, want 200, 7, done, 6",
			got.UIDValidity, got.UIDNext, got.Migration, got.MigratedUID)
	}
	full, err := s.CreateMailbox(ctx, a.ID, "Full", &store.MailboxOptions{UIDValidity: 100, UIDNext: 5, Migration: store.MigPending})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendMessage(ctx, full.ID, &store.NewMessage{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := s.AdoptUIDValidityDone(ctx, full.ID, 300, 1, store.MigDone, 9); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("adopt and done on a mailbox with mail: %v", err)
	}
	if got, _ := s.MailboxByID(ctx, full.ID); got.UIDValidity != 100 || got.Migration != store.MigPending || got.MigratedUID != 0 {
		t.Fatalf("a refused adopt and done changed the mailbox: UIDVALIDITY %d state %q last UID %d", got.UIDValidity, got.Migration, got.MigratedUID)
	}
	if err := s.AdoptUIDValidityDone(ctx, mb.ID, 0, 1, store.MigDone, 0); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("UIDVALIDITY 0: %v", err)
	}
}

// CreateMailboxes makes all the mailboxes given in one commit, or, when a
// name is taken, none.
func TestCreateMailboxesAllOrNone(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	a := account(t, s, "a@example.test")
	before := s.Commits()
	made, err := s.CreateMailboxes(ctx, a.ID, []store.NewMailbox{
		{Name: "Sent", Opts: &store.MailboxOptions{SpecialUse: `\Sent`, UIDValidity: 7, UIDNext: 3, Migration: store.MigPending, OldName: "Sent"}},
		{Name: "Lists/go", Opts: &store.MailboxOptions{Migration: store.MigDone}},
		{Name: "Lists/rust"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Commits() - before; n != 1 {
		t.Errorf("3 mailboxes made in %d commits, want 1", n)
	}
	if len(made) != 3 || made[0].Name != "Sent" || made[1].Name != "Lists/go" || made[2].Name != "Lists/rust" {
		t.Fatalf("made %+v", made)
	}
	if m := made[0]; m.SpecialUse != `\Sent` || m.UIDValidity != 7 || m.UIDNext != 3 || m.Migration != store.MigPending || m.OldName != "Sent" {
		t.Errorf("Sent made as %+v", m)
	}
	if made[1].UIDValidity == 0 || made[2].UIDValidity <= made[1].UIDValidity {
		t.Errorf("UIDVALIDITYs given %d, %d: want rising, as one by one", made[1].UIDValidity, made[2].UIDValidity)
	}
	for _, m := range made {
		if got, err := s.Mailbox(ctx, a.ID, m.Name); err != nil || got.ID != m.ID {
			t.Errorf("%s: %v, %+v", m.Name, err, got)
		}
	}
	_, err = s.CreateMailboxes(ctx, a.ID, []store.NewMailbox{{Name: "Drafts"}, {Name: "Sent"}})
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("a name taken: %v, want ErrExists", err)
	}
	if _, err := s.Mailbox(ctx, a.ID, "Drafts"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Drafts after a refused CreateMailboxes: %v, want none made", err)
	}
}
