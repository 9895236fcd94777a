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

// TestInnerEnvelope: the envelope of a message/rfc822 part (in
// BODYSTRUCTURE) is read as the message's own: a source route as addr-adl,
// a group, a local part alone, the Date field's text, also for a
// message/rfc822 nested in another and for a message that is itself
// message/rfc822; Dovecot 2.3 gives the same envelopes (checked side by
// side with the fixture). go-imap's envelope gave a NIL From and To there
// (the route and the group dropped), NIL Cc and a formatted date.
func TestInnerEnvelope(t *testing.T) {
	inner := "Date: next tuesday\r\nFrom: <@route:user@domain>\r\nTo: team: x@y.z, w@y.z;\r\nCc: d\r\nSubject: inner\r\n\r\ninner body\r\n"
	want := `("next tuesday" "inner" ((NIL "@route" "user" "domain")) ((NIL "@route" "user" "domain")) ((NIL "@route" "user" "domain")) ` +
		`((NIL NIL "team" NIL)(NIL NIL "x" "y.z")(NIL NIL "w" "y.z")(NIL NIL NIL NIL)) ((NIL NIL "d" "MISSING_DOMAIN")) NIL NIL NIL)`
	e := newEnv(t, nil)
	e.put(e.inbox(), "From: a@b.c\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary=\"q\"\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\nsee below\r\n--q\r\n"+
		"Content-Type: message/rfc822\r\n\r\n"+inner+"--q--\r\n")
	e.put(e.inbox(), "From: a@b.c\r\nSubject: fwd2\r\nContent-Type: message/rfc822\r\n\r\n"+
		"From: mid@b.c\r\nSubject: mid\r\nContent-Type: multipart/mixed; boundary=\"r\"\r\n\r\n--r\r\nContent-Type: message/rfc822\r\n\r\n"+inner+"--r--\r\n")
	c := e.login()
	c.ok("SELECT INBOX")
	un := c.ok("FETCH 1:2 BODYSTRUCTURE")
	if n := strings.Count(un, want); n != 2 {
		t.Fatalf("the inner envelope %d times, want 2:\n%s", n, un)
	}
	mustContain(t, "middle envelope", un, `(NIL "mid" ((NIL NIL "mid" "b.c"))`)
}
