package imapfront_test

import (
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
