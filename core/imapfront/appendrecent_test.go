package imapfront_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestAppendClaimsRecentInItsWrite: an APPEND into the mailbox its
// session has selected read-write claims the new message as \Recent in its
// own transaction: the message is recent to that session (its APPEND's
// response says so), the APPEND is one short write of the store (before,
// a second one followed: the claim made by the poll after it, a turn of
// the writer behind the other sessions' writes), and no other session,
// on the same store, on another store on the same SQLite file (`mailferry
// migrate` beside serve) or on another PostgreSQL node, ever sees it as
// recent. A MULTIAPPEND claims with its own transaction too; an APPEND
// from an EXAMINE session or into another mailbox claims nothing.
func TestAppendClaimsRecentInItsWrite(t *testing.T) {
	eachEngine(t, appendClaimsRecent)
}

// appendRaw APPENDs msg to mailbox with a non-synchronizing literal and
// returns the untagged responses and the tagged line.
func appendRaw(c *conn, mailbox, msg string) (string, string) {
	c.t.Helper()
	c.tag++
	tag := fmt.Sprintf("t%d", c.tag)
	c.send(fmt.Sprintf("%s APPEND %s {%d+}\r\n%s\r\n", tag, mailbox, len(msg), msg))
	return c.until(tag)
}

// noopUntil sends NOOPs until one tells want (another node's or store's
// change reaches a session through its notifications), and returns it.
func noopUntil(c *conn, want string) string {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		un := c.ok("NOOP")
		if strings.Contains(un, want) || time.Now().After(deadline) {
			return un
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// appendClaimsRecent runs TestAppendClaimsRecentInItsWrite with session a
// on e and session b on other (e itself, or another store on its data).
func appendClaimsRecent(t *testing.T, e, other *env) {
	e.put(e.inbox(), "Subject: one\r\n\r\none\r\n")
	a := e.login()
	mustContain(t, "SELECT", a.ok("SELECT INBOX"), "* 1 RECENT\r\n")
	b := other.login()
	mustContain(t, "SELECT of a second session", b.ok("SELECT INBOX"), "* 0 RECENT\r\n")

	// The writes of an APPEND into another mailbox (one on SQLite, none
	// on PostgreSQL, where an APPEND is a transaction of its own).
	a.ok("CREATE Other")
	w := e.st.ShortWrites()
	if _, tagged := appendRaw(a, "Other", simple); !strings.Contains(tagged, " OK") {
		t.Fatal(tagged)
	}
	plain := e.st.ShortWrites() - w

	w = e.st.ShortWrites()
	un, tagged := appendRaw(a, "INBOX", simple)
	if !strings.Contains(tagged, " OK") || un != "* 2 EXISTS\r\n* 2 RECENT\r\n" {
		t.Fatalf("APPEND into the selected mailbox:\n%s%s\nwant * 2 EXISTS, * 2 RECENT", un, tagged)
	}
	if n := e.st.ShortWrites() - w; n != plain {
		t.Fatalf("%d short writes for an APPEND into the selected mailbox, want %d as into another (the \\Recent claim in the APPEND's own)", n, plain)
	}
	wb := other.st.ShortWrites()
	if un := noopUntil(b, "* 2 EXISTS"); un != "* 2 EXISTS\r\n* 0 RECENT\r\n" {
		t.Fatalf("the other session's NOOP after the APPEND:\n%s\nwant * 2 EXISTS, * 0 RECENT", un)
	}
	if n := other.st.ShortWrites() - wb; n != 0 {
		t.Fatalf("the other session made %d writes for a message claimed already, want 0", n)
	}
	mustContain(t, "FETCH FLAGS by the appender", a.ok("FETCH 2 (FLAGS)"), `\Recent`)
	if un := b.ok("FETCH 2 (FLAGS)"); strings.Contains(un, `\Recent`) {
		t.Fatalf("\\Recent to a second session:\n%s", un)
	}

	// MULTIAPPEND: both messages claimed in its transaction.
	w = e.st.ShortWrites()
	a.tag++
	tag := fmt.Sprintf("t%d", a.tag)
	a.send(fmt.Sprintf("%s APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s\r\n", tag, len(simple), simple, len(simple), simple))
	un, tagged = a.until(tag)
	if !strings.Contains(tagged, " OK") || un != "* 4 EXISTS\r\n* 4 RECENT\r\n" {
		t.Fatalf("MULTIAPPEND into the selected mailbox:\n%s%s\nwant * 4 EXISTS, * 4 RECENT", un, tagged)
	}
	if n := e.st.ShortWrites() - w; n != 0 {
		t.Fatalf("%d short writes after a MULTIAPPEND into the selected mailbox, want 0 (claimed in its transaction)", n)
	}
	if un := noopUntil(b, "* 4 EXISTS"); un != "* 4 EXISTS\r\n* 0 RECENT\r\n" {
		t.Fatalf("the other session's NOOP after the MULTIAPPEND:\n%s", un)
	}

	// EXAMINE claims nothing, its APPEND neither: the message is recent
	// to the first session that has the mailbox selected read-write.
	c := e.login()
	mustContain(t, "EXAMINE", c.ok("EXAMINE INBOX"), "* 0 RECENT\r\n")
	if un, tagged := appendRaw(c, "INBOX", simple); !strings.Contains(tagged, " OK") || un != "* 5 EXISTS\r\n* 1 RECENT\r\n" {
		t.Fatalf("APPEND from EXAMINE:\n%s%s\nwant * 5 EXISTS, * 1 RECENT (unclaimed)", un, tagged)
	}
	if un := a.ok("NOOP"); un != "* 5 EXISTS\r\n* 5 RECENT\r\n" {
		t.Fatalf("NOOP after an EXAMINE session's APPEND:\n%s\nwant * 5 EXISTS, * 5 RECENT", un)
	}
	if un := noopUntil(b, "* 5 EXISTS"); un != "* 5 EXISTS\r\n* 0 RECENT\r\n" {
		t.Fatalf("the other session's NOOP after the EXAMINE's APPEND:\n%s", un)
	}

	// The APPEND into another mailbox claimed nothing there.
	mustContain(t, "SELECT Other", b.ok("SELECT Other"), "* 1 RECENT\r\n")
}
