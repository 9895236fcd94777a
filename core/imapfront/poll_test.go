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
