package store_test

import (
	"context"
	"reflect"
	"testing"

	"mailferry/core/store"
)

// TestExpungedRemembered checks that every way a message leaves a mailbox
// (EXPUNGE, MOVE, RENAME of INBOX) raises its MODSEQ and records the UID
// with the MODSEQ of its going, for QRESYNC's VANISHED.
func TestExpungedRemembered(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	a := account(t, s, "gone@example.test")
	inbox, err := s.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateMailbox(ctx, a.ID, "Other", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		if _, err := s.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: []byte("Subject: x\r\n\r\nbody\r\n")}); err != nil {
			t.Fatal(err)
		}
	}
	highest := func() uint64 {
		st, err := s.Status(ctx, inbox.ID)
		if err != nil {
			t.Fatal(err)
		}
		return st.HighestModSeq
	}
	expunged := func(since uint64) []uint32 {
		got, err := s.Expunged(ctx, inbox.ID, since)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	m0 := highest()
	if _, err := s.StoreFlags(ctx, inbox.ID, []uint32{2, 3}, store.FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if gone, err := s.Expunge(ctx, inbox.ID, nil); err != nil || !reflect.DeepEqual(gone, []uint32{2, 3}) {
		t.Fatalf("Expunge = %v, %v", gone, err)
	}
	m1 := highest()
	if got := expunged(m0); !reflect.DeepEqual(got, []uint32{2, 3}) {
		t.Fatalf("Expunged(%d) = %v", m0, got)
	}
	if got := expunged(m1); got != nil {
		t.Fatalf("Expunged(%d) after nothing more = %v", m1, got)
	}
	if _, err := s.Move(ctx, inbox.ID, []uint32{5, 99}, other.ID); err != nil {
		t.Fatal(err)
	}
	m2 := highest()
	if got := expunged(m1); m2 <= m1 || !reflect.DeepEqual(got, []uint32{5}) {
		t.Fatalf("after MOVE: HIGHESTMODSEQ %d -> %d, Expunged = %v", m1, m2, got)
	}
	// RENAME INBOX empties INBOX: its sessions must learn it.
	if err := s.RenameMailbox(ctx, a.ID, "INBOX", "Old"); err != nil {
		t.Fatal(err)
	}
	if got := expunged(m2); highest() <= m2 || !reflect.DeepEqual(got, []uint32{1, 4, 6}) {
		t.Fatalf("after RENAME INBOX: HIGHESTMODSEQ %d, Expunged = %v", highest(), got)
	}
	if got := expunged(0); !reflect.DeepEqual(got, []uint32{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("Expunged(0) = %v", got)
	}
	// Deleting the mailbox forgets them with it.
	if err := s.DeleteMailbox(ctx, a.ID, "Other"); err != nil {
		t.Fatal(err)
	}
}

// TestStoreFlagsUnchangedSince checks the conditional STORE: messages
// changed after UNCHANGEDSINCE are left alone and listed; 0 fails for all.
func TestStoreFlagsUnchangedSince(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	a := account(t, s, "cond@example.test")
	inbox, err := s.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := s.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: []byte("Subject: x\r\n\r\nbody\r\n")}); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := s.Status(ctx, inbox.ID)
	base := st.HighestModSeq
	if _, err := s.StoreFlags(ctx, inbox.ID, []uint32{2}, store.FlagsAdd, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	res, err := s.StoreFlagsUnchangedSince(ctx, inbox.ID, []uint32{1, 2, 3}, store.FlagsAdd, []string{`\Flagged`}, &base)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Modified, []uint32{2}) || len(res.Messages) != 2 || res.ModSeq <= base+1 {
		t.Fatalf("conditional STORE = %+v", res)
	}
	for _, m := range res.Messages {
		if !m.HasFlag(`\Flagged`) || m.ModSeq != res.ModSeq {
			t.Fatalf("message %d: %v MODSEQ %d", m.UID, m.Flags, m.ModSeq)
		}
	}
	zero := uint64(0)
	res, err = s.StoreFlagsUnchangedSince(ctx, inbox.ID, []uint32{1, 2, 3}, store.FlagsAdd, []string{`$X`}, &zero)
	if err != nil || !reflect.DeepEqual(res.Modified, []uint32{1, 2, 3}) || res.ModSeq != 0 {
		t.Fatalf("UNCHANGEDSINCE 0 = %+v, %v", res, err)
	}
}
