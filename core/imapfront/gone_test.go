package imapfront_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"mailferry/core/internal/pgtest"
	"mailferry/core/store"
)

// TestSelectedMailboxDeleted: a session whose selected mailbox another
// session deletes is ended with an untagged BYE, as Dovecot 2.3 does
// ("Selected mailbox was deleted, have to disconnect."): at once in IDLE,
// at the next command otherwise (instead of its tagged answer), never
// acting on a mailbox created since under the same name. Before, such a
// session went on with the old numbering, answered OK to FETCHes that
// found nothing and NO [NONEXISTENT] to STOREs, and was never told.
func TestSelectedMailboxDeleted(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { selectedMailboxDeleted(t, newEnv(t, nil)) })
	t.Run("postgresql", func(t *testing.T) {
		selectedMailboxDeleted(t, newEnv(t, &envOpts{databaseURL: pgtest.URL(t)}))
	})
}

func selectedMailboxDeleted(t *testing.T, e *env) {
	e.put(e.mailboxWith("Box"), simple)

	polling, storing, idling := e.login(), e.login(), e.login()
	for _, c := range []*conn{polling, storing, idling} {
		mustContain(t, "SELECT", c.ok("SELECT Box"), "* 2 EXISTS")
	}
	idling.send("i1 IDLE\r\n")
	if l := idling.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}

	a := e.login()
	a.ok("DELETE Box")
	// IDLE: BYE without waiting for DONE.
	idling.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	mustEnd(t, idling)

	// Another mailbox of the same name, with other mail.
	createOther(t, a)

	// The next command: BYE in place of its tagged answer, nothing of the
	// new mailbox.
	polling.send("p1 FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
	polling.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := readToEnd(polling)
	if !strings.Contains(got, "* BYE ") || strings.Contains(got, "p1 ") || strings.Contains(got, "Other") {
		t.Fatalf("FETCH after the selected mailbox was deleted: %q", got)
	}
	storing.send(`s1 STORE 1 +FLAGS (\Deleted)` + "\r\n")
	storing.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got := readToEnd(storing); !strings.Contains(got, "* BYE ") || strings.Contains(got, "s1 ") {
		t.Fatalf("STORE after the selected mailbox was deleted: %q", got)
	}
	// The new mailbox is untouched.
	mustContain(t, "new mailbox", a.ok("SELECT Box"), "* 1 EXISTS")
	if un := a.ok("FETCH 1 (FLAGS)"); strings.Contains(un, `\Deleted`) {
		t.Fatalf("the new mailbox's message was changed: %s", un)
	}
}

// TestOwnDeleteOfSelected: a session's DELETE of its selected mailbox is
// answered OK (before, a FETCH after it killed the session with a nil
// view), and its next command gets the BYE, as Dovecot's session after
// its own DELETE; a SELECT of another mailbox there goes on.
func TestOwnDeleteOfSelected(t *testing.T) {
	e := newEnv(t, nil)
	e.mailboxWith("Box")
	c := e.login()
	c.ok("SELECT Box")
	c.ok("DELETE Box")
	c.send("f1 FETCH 1 (FLAGS)\r\n")
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got := readToEnd(c); !strings.Contains(got, "* BYE ") || strings.Contains(got, "f1 ") {
		t.Fatalf("FETCH after DELETE of the selected mailbox: %q", got)
	}
	// A SELECT of another mailbox after it goes on as ever.
	e.mailboxWith("Box2")
	d := e.login()
	d.ok("SELECT Box2")
	d.ok("DELETE Box2")
	mustContain(t, "SELECT after DELETE", d.ok("SELECT INBOX"), "* 0 EXISTS")
	d.ok("NOOP")
	d.ok("UID FETCH 1:* (FLAGS)")
}

// TestSelectedMailboxRenamed: a RENAME by another session is followed:
// the session keeps its messages (its view is of the mailbox's id), and
// a mailbox created since under the old name is never what it acts on.
func TestSelectedMailboxRenamed(t *testing.T) {
	e := newEnv(t, nil)
	e.mailboxWith("Box")
	c := e.login()
	c.ok("SELECT Box")
	a := e.login()
	a.ok("RENAME Box Box2")
	createOther(t, a)
	c.ok("NOOP")
	un := c.ok("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
	if !strings.Contains(un, "Subject: Hello") || strings.Contains(un, "Other") {
		t.Fatalf("FETCH after RENAME: %s", un)
	}
	c.ok(`STORE 1 +FLAGS (\Flagged)`)
	mustContain(t, "renamed mailbox", a.ok("EXAMINE Box2"), "* 1 EXISTS")
	mustContain(t, "renamed mailbox's flags", a.ok("FETCH 1 (FLAGS)"), `\Flagged`)
	a.ok("EXAMINE Box")
	if un := a.ok("FETCH 1 (FLAGS)"); strings.Contains(un, `\Flagged`) {
		t.Fatalf("the new mailbox's message was changed: %s", un)
	}
}

// mailboxWith creates a mailbox holding one message (simple).
func (e *env) mailboxWith(name string) *store.Mailbox {
	e.t.Helper()
	mb, err := e.st.CreateMailbox(context.Background(), e.acct.ID, name, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.put(mb, simple)
	return mb
}

// createOther creates Box again through a, with a message "Other".
func createOther(t *testing.T, a *conn) {
	t.Helper()
	a.ok("CREATE Box")
	if tagged := a.appendMsg("Box", "", strings.Replace(simple, "Subject: Hello", "Subject: Other", 1)); !strings.Contains(tagged, "OK") {
		t.Fatal(tagged)
	}
}

// readToEnd reads until the connection ends or its read deadline passes.
func readToEnd(c *conn) string {
	var all strings.Builder
	for {
		l, err := c.r.ReadString('\n')
		all.WriteString(l)
		if err != nil {
			return all.String()
		}
	}
}
