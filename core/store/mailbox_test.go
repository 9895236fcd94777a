package store_test

import (
	"context"
	"reflect"
	"testing"
)

// TestRenameNonASCIIChildren: substr() counts characters, not bytes, so
// the children of a non-ASCII name must be found by character count.
func TestRenameNonASCIIChildren(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	a := account(t, s, "utf@example.test")
	for _, n := range []string{"Données", "Données/Été 2020", "日本語", "日本語/子"} {
		if _, err := s.CreateMailbox(ctx, a.ID, n, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RenameMailbox(ctx, a.ID, "Données", "Archive"); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameMailbox(ctx, a.ID, "日本語", "Japon"); err != nil {
		t.Fatal(err)
	}
	mbs, err := s.Mailboxes(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mb := range mbs {
		names = append(names, mb.Name)
	}
	if want := []string{"INBOX", "Archive", "Archive/Été 2020", "Japon", "Japon/子"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("names = %q, want %q", names, want)
	}
}
