package migrate_test

import (
	"context"
	"testing"

	"mailferry/core/oldserver/oldtest/quirky"
)

// TestQuirkBrokenNameCollides: a folder listed in broken modified UTF-7
// ("Caf&AOk", kept as sent) and a real folder whose decoded name is the
// same text ("Caf&AOk", sent as "Caf&-AOk") are two folders: the mail of
// both is copied, the broken one's under "Caf&AOk (as sent)". Before,
// the second listed was skipped and the account reported done.
func TestQuirkBrokenNameCollides(t *testing.T) {
	broken := quirkyFolder("Café", 3, true, "")
	broken.Name, broken.Raw = "", "Caf&AOk"
	real := quirkyFolder("Caf&AOk", 4, true, "")
	folders := []quirky.Folder{quirkyFolder("INBOX", 2, true, ""), real, broken}
	srv := quirky.Start(t, quirkyUser, quirkyPass, quirky.Quirks{}, folders)
	st, acct, _ := quirkyRun(t, srv, nil)
	ctx := context.Background()
	mbs, err := st.Mailboxes(ctx, acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, mb := range mbs {
		s, err := st.Status(ctx, mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("local %q (old %q): %d messages", mb.Name, mb.OldName, s.Messages)
		total += int(s.Messages)
	}
	if want := 2 + 4 + 3; total != want {
		t.Fatalf("%d messages copied in all, want %d: a folder whose name collides was left out", total, want)
	}
	checkCopied(t, st, acct, real, want{local: "Caf&AOk"})
	checkCopied(t, st, acct, broken, want{local: "Caf&AOk (as sent)"})
	noProblems(t, st, acct)
}
