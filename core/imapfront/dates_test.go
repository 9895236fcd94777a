package imapfront_test

import (
	"strings"
	"testing"
)

// TestInvalidDatesAreBad: a date or date-time that does not exist (32
// January) in APPEND or SEARCH is the client's syntax error, answered BAD
// [CLIENTBUG] with the session going on (RFC 3501 7.1.5, 9). It was
// answered NO [SERVERBUG] Internal server error, which tells the client
// (and its user) the server is broken.
func TestInvalidDatesAreBad(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	c.tag++
	c.send(`a1 APPEND INBOX "32-Jan-2020 10:11:12 +0100" {5}` + "\r\n")
	if l := c.line(); !strings.HasPrefix(l, "a1 BAD ") {
		t.Fatalf("APPEND with 32 January: %q", l)
	}
	c.ok("SELECT INBOX")
	for _, cmd := range []string{"SEARCH SINCE 32-Jan-2020", "SEARCH SENTBEFORE 1-Foo-2020", "UID SEARCH ON 29-Feb-2021"} {
		st, resp := c.status("%s", cmd)
		if st != "BAD" || !strings.Contains(resp, "[CLIENTBUG]") {
			t.Fatalf("%s: %s", cmd, resp)
		}
	}
	c.ok("NOOP")
	mustContain(t, "a valid date", c.ok("SEARCH SINCE 29-Feb-2020"), "* SEARCH")
}
