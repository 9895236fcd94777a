package imapfront_test

import (
	"strings"
	"testing"
	"time"
)

// TestLineWithoutCommand: a line that is no command (empty, a tag alone, a
// stray character where the tag goes) is answered BAD and the session goes
// on, as Dovecot's (RFC 3501 7.1.5). The connection was closed without a
// word. Before login such lines still count toward the ten unknown
// commands that end a connection (FORK.md change 2).
func TestLineWithoutCommand(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	for _, tc := range []struct{ line, want string }{
		{"", "* BAD [CLIENTBUG] "},
		{"   ", "* BAD [CLIENTBUG] "},
		{"a1", "a1 BAD [CLIENTBUG] "},
		{"a2 (NOOP)", "a2 BAD [CLIENTBUG] "},
		{"{5}", "* BAD [CLIENTBUG] "},
	} {
		c.send(tc.line + "\r\n")
		if l := c.line(); !strings.HasPrefix(l, tc.want) {
			t.Fatalf("%q: answered %q, want %q...", tc.line, l, tc.want)
		}
	}
	mustContain(t, "SELECT after bad lines", c.ok("SELECT INBOX"), "EXISTS")

	// Before login: the tenth ends the connection.
	d := e.dial()
	for i := 1; i < 10; i++ {
		d.send("\r\n")
		if l := d.line(); !strings.HasPrefix(l, "* BAD ") {
			t.Fatalf("empty line %d before login: %q", i, l)
		}
	}
	d.send("\r\n")
	d.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	mustEnd(t, d)
}
