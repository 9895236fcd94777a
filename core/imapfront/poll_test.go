package imapfront_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"mailferry/core/store"
)

// TestPollReadsOnlyItsMailbox: a session's poll (a NOOP's, and the one
// after every command) reads the store only when what it was told may be
// news to it: mail to another mailbox of the account, in this process,
// costs it no read at all (it was read by a Delta of the mailbox it has
// selected, on every command of every session on the account), while new
// mail in its own mailbox, from this process or another one, is still
// told at its next command.
func TestPollReadsOnlyItsMailbox(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	inbox := e.inbox()
	fill(t, e.st, inbox, 5)
	other, err := e.st.CreateMailbox(ctx, e.acct.ID, "Other", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := e.login()
	c.ok("SELECT INBOX")
	c.ok("NOOP")
	for i := 0; i < 3; i++ {
		before := e.st.ReadTransactions()
		e.put(other, "Subject: elsewhere\r\n\r\nx\r\n")
		if _, err := e.st.StoreFlags(ctx, other.ID, []uint32{1}, store.FlagsAdd, []string{"$Kw"}); err != nil {
			t.Fatal(err)
		}
		if un := c.ok("NOOP"); un != "" {
			t.Fatalf("NOOP after mail to another mailbox: %q", un)
		}
		if n := e.st.ReadTransactions() - before; n != 0 {
			t.Fatalf("NOOP after mail to another mailbox of the account began %d read transactions, want 0", n)
		}
	}
	// Its own mailbox: told, as before.
	e.put(inbox, "Subject: here\r\n\r\nx\r\n")
	if un := c.ok("NOOP"); !strings.Contains(un, "* 6 EXISTS") {
		t.Fatalf("NOOP after new mail in the selected mailbox: %q, want * 6 EXISTS", un)
	}
	// Another process's commit to it: told at the first command after the
	// store saw it (store.DefaultChangePoll).
	peer := newEnv(t, &envOpts{peer: e})
	peer.put(inbox, "Subject: from the other process\r\n\r\nx\r\n")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if un := c.ok("NOOP"); strings.Contains(un, "* 7 EXISTS") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("another process's new message not told within 5 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// And another process's commit to another mailbox reads the store
	// once (what it changed is not known), then nothing more.
	peer.put(other, "Subject: elsewhere, from the other process\r\n\r\nx\r\n")
	time.Sleep(3 * 200 * time.Millisecond)
	c.ok("NOOP")
	before := e.st.ReadTransactions()
	if un := c.ok("NOOP"); un != "" {
		t.Fatalf("second NOOP: %q", un)
	}
	if n := e.st.ReadTransactions() - before; n != 0 {
		t.Fatalf("a second NOOP with nothing new began %d read transactions, want 0", n)
	}
}

// TestOwnStoreReadsNothing: the poll after a session's own STORE reads
// nothing when nothing else changed the mailbox (the session has the
// STORE's result: view.ownStore), and the client gets what it got when
// that poll read a Delta: nothing more after .SILENT, one FETCH per
// message without it, and another session's change, made before or after
// the STORE, at this command or the next.
func TestOwnStoreReadsNothing(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	inbox := e.inbox()
	fill(t, e.st, inbox, 5)
	c := e.login()
	c.ok("SELECT INBOX")
	c.ok("NOOP")
	reads := func(cmd string) (string, int64) {
		t.Helper()
		before := e.st.ReadTransactions()
		un := c.ok("%s", cmd)
		return un, e.st.ReadTransactions() - before
	}
	for i, cmd := range []string{`STORE 1 +FLAGS.SILENT (\Flagged)`, `UID STORE 1 -FLAGS.SILENT (\Flagged)`, `STORE 1:2 +FLAGS.SILENT ($Own)`} {
		// A new keyword is announced (FLAGS, PERMANENTFLAGS); no FETCH.
		if un, n := reads(cmd); strings.Contains(un, "FETCH") || n != 0 {
			t.Fatalf("%d %s: untagged %q, %d read transactions; want no FETCH, 0", i, cmd, un, n)
		}
	}
	un, n := reads(`STORE 2 -FLAGS ($Own)`)
	if n != 0 || strings.Count(un, "FETCH") != 1 || !strings.HasPrefix(un, "* 2 FETCH (") || strings.Contains(un, "$Own") {
		t.Fatalf("STORE without .SILENT: untagged %q, %d read transactions; want one FETCH of message 2, 0", un, n)
	}
	if un, n := reads("NOOP"); un != "" || n != 0 {
		t.Fatalf("NOOP after own STOREs: %q, %d read transactions; want nothing, 0", un, n)
	}
	// Another session's change before the STORE: told after it.
	uids := []uint32{3}
	if _, err := e.st.StoreFlags(ctx, inbox.ID, uids, store.FlagsAdd, []string{"$Other"}); err != nil {
		t.Fatal(err)
	}
	if un, _ := reads(`STORE 1 +FLAGS.SILENT ($Own)`); !strings.Contains(un, "* 3 FETCH") || !strings.Contains(un, "$Other") {
		t.Fatalf("STORE after another session's: untagged %q, want * 3 FETCH with $Other", un)
	}
	// And one after the STORE (the watcher is told above the STORE's
	// MODSEQ): told at the next command.
	c.ok(`STORE 1 -FLAGS.SILENT ($Own)`)
	if _, err := e.st.StoreFlags(ctx, inbox.ID, uids, store.FlagsRemove, []string{"$Other"}); err != nil {
		t.Fatal(err)
	}
	if un := c.ok("NOOP"); !strings.Contains(un, "* 3 FETCH") || strings.Contains(un, "$Other") {
		t.Fatalf("NOOP after another session's change: %q, want * 3 FETCH without $Other", un)
	}
	if un := c.ok("NOOP"); un != "" {
		t.Fatalf("second NOOP: %q", un)
	}
}
