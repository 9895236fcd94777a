package imapfront_test

import (
	"regexp"
	"strings"
	"testing"
)

// This file holds the raw-protocol tests of what Dovecot's imaptest
// (TestImaptestScripts) found Mailferry doing otherwise than Dovecot 2.3,
// each named after the imaptest script that showed it.

// TestImaptestAtoms (imaptest "atoms"): a mailbox name or a LIST pattern
// that is an atom but not valid modified UTF-7 is no mailbox: SELECT,
// STATUS, CREATE answer NO, LIST answers OK with nothing, as Dovecot does;
// it was BAD, and a client that ends its session at a BAD (imaptest's do)
// lost it (FORK.md change 45).
func TestImaptestAtoms(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	const odd = "!#$&'+,-.0123456789:;<=>?@^_`|[}"
	for _, cmd := range []string{"SELECT " + odd, "EXAMINE " + odd, "STATUS " + odd + " (MESSAGES)", "CREATE " + odd, `CREATE "&Jjo"`, "DELETE " + odd} {
		if _, tagged := c.do("%s", cmd); !strings.Contains(tagged, " NO ") {
			t.Errorf("%s: %s, want NO (as Dovecot)", cmd, tagged)
		}
	}
	for _, cmd := range []string{`LIST "" ` + odd + "%*", `LIST "" "&"`, `LSUB "" ` + odd + "*", `LIST "" (` + odd + "* INBOX)"} {
		un, tagged := c.do("%s", cmd)
		if !strings.Contains(tagged, " OK ") {
			t.Errorf("%s: %s, want OK (as Dovecot)", cmd, tagged)
		}
		if strings.Contains(un, "* LIST") != strings.Contains(cmd, "INBOX") || strings.Contains(un, "* LSUB") {
			t.Errorf("%s: %q: an invalid pattern matches no mailbox", cmd, un)
		}
	}
	if un := c.ok("LIST \"\" *"); strings.Contains(un, "&") || strings.Contains(un, "!#") {
		t.Fatalf("a mailbox was made of an invalid name: %q", un)
	}
	c.ok("NOOP")
}

// TestImaptestSortCasemap (imaptest "sort-subject", "sort-addresses"): SORT
// compares SUBJECT, FROM, TO and CC with i;ascii-casemap, which makes
// letters upper case (RFC 4790 9.2), so "[" and "_" sort after the letters,
// as in Dovecot; and a CC list opening with a group sorts by the group's
// name, its first address's addr-mailbox (as Dovecot 2.3).
func TestImaptestSortCasemap(t *testing.T) {
	e := newEnv(t, nil)
	mb := e.inbox()
	for _, m := range []struct{ subject, cc string }{
		{"a", "user2@domain2.org (foo bar)"}, // 1
		{"_", "user2: blah@domain1.org;"},    // 2
		{"[xyz]", "user1@domain1.org"},       // 3
		{"C", "zed@domain1.org"},             // 4
	} {
		e.put(mb, "From: x@y.org\r\nCc: "+m.cc+"\r\nSubject: "+m.subject+"\r\n\r\nbody\r\n")
	}
	c := e.login()
	c.ok("SELECT INBOX")
	for cmd, want := range map[string]string{
		"SORT (SUBJECT) US-ASCII ALL":         "* SORT 1 4 3 2\r\n",
		"SORT (REVERSE SUBJECT) US-ASCII ALL": "* SORT 2 3 4 1\r\n",
		"SORT (CC) US-ASCII ALL":              "* SORT 3 1 2 4\r\n",
	} {
		if un := c.ok("%s", cmd); un != want {
			t.Errorf("%s: %q, want %q (as Dovecot 2.3)", cmd, un, want)
		}
	}
}

// TestImaptestLocalPartAddress (imaptest "sort-display-from",
// "sort-display-to", "fetch-envelope"): an address that is a local part
// alone ("From: d") is (NIL NIL "d" "MISSING_DOMAIN") in ENVELOPE and sorts
// as such, as Dovecot 2.3 gives it, and one with an obsolete source route
// ("<@route:user@domain>") is user@domain, its route in addr-adl
// (TestEnvelopeSourceRoute); both were NIL, the message without a sender.
func TestImaptestLocalPartAddress(t *testing.T) {
	e := newEnv(t, nil)
	mb := e.inbox()
	for _, from := range []string{"foo bar <a@b.c>", "d", "b@c.d", "<@route:user@domain>", "Zed <@r1,@r2:z@q.org>"} {
		e.put(mb, "From: "+from+"\r\nSubject: s\r\n\r\nbody\r\n")
	}
	c := e.login()
	c.ok("SELECT INBOX")
	un := c.ok("FETCH 2,4,5 ENVELOPE")
	mustContain(t, "FETCH ENVELOPE", un,
		`* 2 FETCH (UID 2 ENVELOPE (NIL "s" ((NIL NIL "d" "MISSING_DOMAIN"))`,
		`* 4 FETCH (UID 4 ENVELOPE (NIL "s" ((NIL "@route" "user" "domain"))`,
		`* 5 FETCH (UID 5 ENVELOPE (NIL "s" (("Zed" "@r1,@r2" "z" "q.org"))`)
	if un := c.ok("SORT (DISPLAYFROM) US-ASCII ALL"); un != "* SORT 3 2 1 4 5\r\n" {
		t.Errorf("SORT (DISPLAYFROM): %q, want %q (as Dovecot 2.3)", un, "* SORT 3 2 1 4 5\r\n")
	}
	if un := c.ok("SEARCH FROM user@domain"); un != "* SEARCH 4\r\n" {
		t.Errorf("SEARCH FROM user@domain: %q", un)
	}
}

// TestImaptestCondStore (imaptest "esearch-condstore"): the first
// CONDSTORE-enabling command while a mailbox is selected is answered with
// an untagged OK [HIGHESTMODSEQ] (RFC 7162 3.1), once; and an ESEARCH with
// MIN and/or MAX only gives the MODSEQ of the messages it returns, not of
// all found (RFC 4731 3.2), as Dovecot 2.3 does.
func TestImaptestCondStore(t *testing.T) {
	e := newEnv(t, nil)
	mb := e.inbox()
	for range 4 {
		e.put(mb, "Subject: s\r\n\r\nbody\r\n")
	}
	c := e.login()
	c.ok("SELECT INBOX")
	un := c.ok("FETCH 1 MODSEQ")
	if !regexp.MustCompile(`\* OK \[HIGHESTMODSEQ \d+\]`).MatchString(un) {
		t.Fatalf("first FETCH MODSEQ: no untagged OK [HIGHESTMODSEQ]: %q", un)
	}
	if un := c.ok("FETCH 2 MODSEQ"); strings.Contains(un, "HIGHESTMODSEQ") {
		t.Fatalf("second FETCH MODSEQ: HIGHESTMODSEQ again: %q", un)
	}
	modseq := map[int]string{}
	for _, n := range []int{1, 3, 2, 4} {
		un := c.ok("STORE %d +FLAGS \\Seen", n)
		m := regexp.MustCompile(`MODSEQ \((\d+)\)`).FindStringSubmatch(un)
		if m == nil {
			t.Fatalf("STORE %d: no MODSEQ: %q", n, un)
		}
		modseq[n] = m[1]
	}
	for cmd, want := range map[string]string{
		`SEARCH RETURN (MIN) 1:3 MODSEQ 1`:       "MIN 1 MODSEQ " + modseq[1],
		`SEARCH RETURN (MAX) 1:3 MODSEQ 1`:       "MAX 3 MODSEQ " + modseq[3],
		`SEARCH RETURN (MIN MAX) 2:3 MODSEQ 1`:   "MIN 2 MAX 3 MODSEQ " + modseq[2],
		`SEARCH RETURN () 1:3 MODSEQ 1`:          "ALL 1:3 MODSEQ " + modseq[2],
		`SEARCH RETURN (MIN COUNT) 1:4 MODSEQ 1`: "MIN 1 COUNT 4 MODSEQ " + modseq[4],
	} {
		if un := c.ok("%s", cmd); !strings.Contains(un, want+"\r\n") {
			t.Errorf("%s: %q, want %q (as Dovecot 2.3)", cmd, un, want)
		}
	}
	// A session selecting after CONDSTORE is on gets it at SELECT only.
	c2 := e.login()
	c2.ok("ENABLE CONDSTORE")
	c2.ok("SELECT INBOX")
	if un := c2.ok("FETCH 1 MODSEQ"); strings.Contains(un, "HIGHESTMODSEQ") {
		t.Fatalf("FETCH MODSEQ after ENABLE CONDSTORE: HIGHESTMODSEQ again: %q", un)
	}
}

// TestImaptestAddressList (imaptest "fetch-envelope", compared byte for
// byte with Dovecot 2.3): an ENVELOPE's address list is "(" 1*address ")",
// the addresses with no space between them (RFC 3501 9); it had one (FORK.md
// change 47), which a strict parser of the grammar refuses.
func TestImaptestAddressList(t *testing.T) {
	e := newEnv(t, nil)
	e.put(e.inbox(), "From: a@x.org\r\nTo: A <a@x.org>, b@y.org\r\nCc: g: c@z.org;\r\nSubject: s\r\n\r\nbody\r\n")
	c := e.login()
	c.ok("SELECT INBOX")
	un := c.ok("FETCH 1 ENVELOPE")
	mustContain(t, "ENVELOPE", un, `(("A" NIL "a" "x.org")(NIL NIL "b" "y.org")) ((NIL NIL "g" NIL)(NIL NIL "c" "z.org")(NIL NIL NIL NIL))`)
}
