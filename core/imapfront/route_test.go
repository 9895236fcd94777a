package imapfront_test

import (
	"strings"
	"testing"
)

// TestEnvelopeSourceRoute: an obsolete source route ("<@route:user@domain>",
// RFC 5322 4.4) comes out in ENVELOPE's addr-adl, as Dovecot 2.3 gives it
// (imaptest "fetch-envelope": (NIL "@route" "user" "domain")); main gave
// (NIL NIL "user" "domain"). SEARCH FROM and SORT (FROM) still read the
// address as user@domain.
func TestEnvelopeSourceRoute(t *testing.T) {
	e := newEnv(t, nil)
	e.put(e.inbox(), "Date: Thu, 15 Feb 2007 01:02:03 +0200\r\nFrom: <@route:user@domain>\r\n\r\nbody\r\n")
	e.put(e.inbox(), "From: \"Real\" <@a.example, @b.example:zed@host.example>, plain@host.example\r\nTo: g: <@r:m@h>;\r\n\r\nbody\r\n")
	e.put(e.inbox(), "From: alpha@host.example\r\n\r\nbody\r\n")
	c := e.login()
	c.ok("SELECT INBOX")
	un := c.ok("FETCH 1:2 ENVELOPE")
	mustContain(t, "ENVELOPE 1", un, `* 1 FETCH (UID 1 ENVELOPE ("Thu, 15 Feb 2007 01:02:03 +0200" NIL ((NIL "@route" "user" "domain")) ((NIL "@route" "user" "domain")) ((NIL "@route" "user" "domain")) NIL NIL NIL NIL NIL))`)
	mustContain(t, "ENVELOPE 2", un, `(("Real" "@a.example,@b.example" "zed" "host.example")(NIL NIL "plain" "host.example"))`)
	mustContain(t, "ENVELOPE 2 group", un, `((NIL NIL "g" NIL)(NIL "@r" "m" "h")(NIL NIL NIL NIL))`)

	if un := c.ok("SEARCH FROM user@domain"); !strings.Contains(un, "* SEARCH 1\r\n") {
		t.Errorf("SEARCH FROM user@domain: %q", un)
	}
	if un := c.ok("SEARCH FROM zed@host"); !strings.Contains(un, "* SEARCH 2\r\n") {
		t.Errorf("SEARCH FROM zed@host: %q", un)
	}
	// SORT (FROM) sorts by the first From's mailbox: alpha, user, zed.
	if un := c.ok("SORT (FROM) UTF-8 ALL"); !strings.Contains(un, "* SORT 3 1 2\r\n") {
		t.Errorf("SORT (FROM): %q", un)
	}
}
