package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"mailferry/core/store"
)

// Copy problems are kept per mailbox and old UID, count their tries, keep
// the server's words bounded and printable, and go with their mailbox.
func TestCopyProblems(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	a := account(t, s, "pat@example.test")
	inbox, err := s.CreateMailbox(ctx, a.ID, "Old", nil)
	if err != nil {
		t.Fatal(err)
	}
	hostile := "NO \x1b[31mdamaged\r\n* BYE\x00" + strings.Repeat("é", 400) + "\xff"
	if err := s.RecordCopyProblem(ctx, inbox.ID, "INBOX.Old", 7, hostile); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordCopyProblem(ctx, inbox.ID, "INBOX.Old", 7, "NO again"); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordCopyProblem(ctx, inbox.ID, "INBOX.Old", 3, "NO [SERVERBUG] x"); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordCopyProblem(ctx, inbox.ID, "INBOX.Old", 0, "x"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("old UID 0: err %v, want ErrInvalid", err)
	}
	if err := s.RecordCopyProblem(ctx, 9999, "X", 1, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("no such mailbox: err %v, want ErrNotFound", err)
	}
	ps, err := s.CopyProblems(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].OldUID != 3 || ps[1].OldUID != 7 || ps[1].Tries != 2 || ps[1].Words != "NO again" || ps[1].Mailbox != "INBOX.Old" ||
		ps[1].FirstSeen.After(ps[1].LastSeen) {
		t.Fatalf("problems %+v", ps)
	}
	if err := s.RecordCopyProblem(ctx, inbox.ID, "INBOX.Old", 9, hostile); err != nil {
		t.Fatal(err)
	}
	ps, _ = s.MailboxCopyProblems(ctx, inbox.ID)
	w := ps[2].Words
	if len(w) > 600 || !utf8.ValidString(w) || strings.ContainsAny(w, "\x1b\r\n\x00") {
		t.Errorf("words kept as %q", w)
	}
	if err := s.ClearCopyProblem(ctx, inbox.ID, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.ClearCopyProblem(ctx, inbox.ID, 3); err != nil {
		t.Errorf("clearing twice: %v", err)
	}
	if ps, _ = s.CopyProblems(ctx, a.ID); len(ps) != 2 {
		t.Fatalf("after clear: %+v", ps)
	}
	if err := s.DeleteMailbox(ctx, a.ID, "Old"); err != nil {
		t.Fatal(err)
	}
	if ps, _ = s.CopyProblems(ctx, a.ID); len(ps) != 0 {
		t.Fatalf("after the mailbox was deleted: %+v", ps)
	}
}

// An account's migration error may quote the old server's words: it is
// kept printable (no escape sequences, no bidi overrides) and bounded.
func TestMigrationErrorPrintable(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	a := account(t, s, "quinn@example.test")
	hostile := "login: NO \x1b]0;owned\x07\u009b2J\u202eevil\r\n" + strings.Repeat("x", 5000)
	if err := s.SetAccountMigration(ctx, a.ID, store.MigFailed, hostile); err != nil {
		t.Fatal(err)
	}
	got, err := s.Account(ctx, a.Address)
	if err != nil {
		t.Fatal(err)
	}
	e := got.MigrationError
	if !strings.HasPrefix(e, "login: NO ") || len(e) > 1100 || strings.ContainsFunc(e, func(r rune) bool {
		return r < 0x20 || 0x7f <= r && r <= 0x9f || r == '\u202e'
	}) {
		t.Errorf("migration error kept as %q", e)
	}
}

// A copy wait's reason quotes an error, and through it the old server's
// words: it is kept printable and within its room.
func TestCopyWaitReasonPrintable(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	a := account(t, s, "rory@example.test")
	hostile := "connect: NO \x1b]0;owned\x07\u009b2J\u202eevil\r\n" + strings.Repeat("é", 400)
	if err := s.SetCopyWait(ctx, store.CopyWait{AccountID: a.ID, Kind: store.WaitRetry, Reason: hostile}); err != nil {
		t.Fatal(err)
	}
	ws, err := s.CopyWaits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := ws[a.ID].Reason
	if !strings.HasPrefix(r, "connect: NO ") || len(r) > store.MaxWaitReason || !utf8.ValidString(r) || strings.ContainsFunc(r, func(c rune) bool {
		return c < 0x20 || 0x7f <= c && c <= 0x9f || c == '\u202e'
	}) {
		t.Errorf("reason kept as %q", r)
	}
}
