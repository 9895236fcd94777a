package imapfront_test

import (
	"fmt"
	"strings"
	"testing"
)

// esearchMailbox puts twelve messages in INBOX: 2, 10 and 11 are flagged
// and not from Smith, 5 is flagged and from Smith (RFC 4731's examples).
func esearchMailbox(e *env) {
	for i := 1; i <= 12; i++ {
		from := "jones@example.test"
		if i == 5 {
			from = "Smith <smith@example.test>"
		}
		var flags []string
		if i == 2 || i == 5 || i == 10 || i == 11 {
			flags = []string{`\Flagged`}
		}
		e.put(e.inbox(), fmt.Sprintf("From: %s\r\nSubject: n%d\r\n\r\n%s\r\n", from, i, strings.Repeat("y", i*100)), flags...)
	}
}

// TestESearch runs RFC 4731's examples over a real connection.
func TestESearch(t *testing.T) {
	e := newEnv(t, nil)
	esearchMailbox(e)
	c := e.login()
	c.ok("SELECT INBOX")
	const crit = `FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"`
	for _, tc := range []struct{ cmd, want string }{
		{"SEARCH RETURN (MIN COUNT) " + crit, `* ESEARCH (TAG "%s") MIN 2 COUNT 3` + "\r\n"},
		{"SEARCH RETURN () " + crit, `* ESEARCH (TAG "%s") ALL 2,10:11` + "\r\n"},
		{"UID SEARCH RETURN (MIN MAX) " + crit, `* ESEARCH (TAG "%s") UID MIN 2 MAX 11` + "\r\n"},
		{"SEARCH RETURN (ALL) SUBJECT nothing", `* ESEARCH (TAG "%s")` + "\r\n"},
		{"SEARCH RETURN (COUNT) SUBJECT nothing", `* ESEARCH (TAG "%s") COUNT 0` + "\r\n"},
		{"SEARCH RETURN (MIN MAX ALL COUNT) " + crit, `* ESEARCH (TAG "%s") ALL 2,10:11 MIN 2 MAX 11 COUNT 3` + "\r\n"},
		{"SEARCH " + crit, "* SEARCH 2 10 11\r\n"},
	} {
		un, tagged := c.do("%s", tc.cmd)
		want := tc.want
		if strings.Contains(want, "%s") {
			want = fmt.Sprintf(want, strings.Fields(tagged)[0])
		}
		if un != want || !strings.Contains(tagged, " OK") {
			t.Errorf("%s:\n got %q %s\nwant %q", tc.cmd, un, tagged, want)
		}
	}
	for _, cmd := range []string{"SEARCH RETURN (BOGUS) ALL", "SEARCH RETURN MIN ALL", "SEARCH RETURN (MIN"} {
		if got, all := c.status("%s", cmd); got != "BAD" {
			t.Errorf("%s: %s", cmd, all)
		}
	}
}

// TestSearchRes runs RFC 5182's examples over a real connection: "$" is
// the last saved result, in FETCH, COPY, STORE and SEARCH itself.
func TestSearchRes(t *testing.T) {
	e := newEnv(t, nil)
	esearchMailbox(e)
	c := e.login()
	if un := c.ok("CAPABILITY"); !strings.Contains(un, " ESEARCH") || !strings.Contains(un, " SEARCHRES") {
		t.Fatalf("CAPABILITY: %s", un)
	}
	c.ok("SELECT INBOX")
	// Before any SAVE, "$" is empty.
	if un := c.ok("FETCH $ (FLAGS)"); un != "" {
		t.Fatalf("FETCH $ before SAVE: %q", un)
	}
	// RETURN (SAVE) alone answers nothing but the tagged OK.
	if un := c.ok(`SEARCH RETURN (SAVE) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"`); un != "" {
		t.Fatalf("SEARCH RETURN (SAVE): %q", un)
	}
	un := c.ok("FETCH $ (UID RFC822.SIZE)")
	if strings.Count(un, "FETCH") != 3 || !strings.Contains(un, "* 2 FETCH") || !strings.Contains(un, "* 10 FETCH") || !strings.Contains(un, "* 11 FETCH") {
		t.Fatalf("FETCH $:\n%s", un)
	}
	// "$" in a search, with other keys.
	if un = c.ok("UID SEARCH UID $ SMALLER 1000"); !strings.Contains(un, "* SEARCH 2\r\n") {
		t.Fatalf("UID SEARCH UID $ SMALLER 1000:\n%s", un)
	}
	if un = c.ok("SEARCH $"); !strings.Contains(un, "* SEARCH 2 10 11\r\n") {
		t.Fatalf("SEARCH $:\n%s", un)
	}
	// COPY $ and STORE $.
	c.ok("CREATE foo")
	if _, tagged := c.do(`COPY $ "foo"`); !strings.Contains(tagged, "OK [COPYUID") || !strings.Contains(tagged, " 2,10:11 1:3]") {
		t.Fatalf("COPY $: %s", tagged)
	}
	if un = c.ok(`STORE $ +FLAGS (\Answered)`); strings.Count(un, `\Answered`) != 3 {
		t.Fatalf("STORE $:\n%s", un)
	}
	// SAVE with MIN (and MAX) but neither ALL nor COUNT keeps only those
	// (RFC 5182 2.1).
	if un = c.ok(`SEARCH RETURN (SAVE MIN) FLAGGED`); !strings.Contains(un, " MIN 2\r\n") {
		t.Fatalf("SEARCH RETURN (SAVE MIN):\n%s", un)
	}
	if un = c.ok("SEARCH $"); !strings.Contains(un, "* SEARCH 2\r\n") {
		t.Fatalf("$ after SAVE MIN:\n%s", un)
	}
	c.ok(`SEARCH RETURN (SAVE MIN MAX) FLAGGED`)
	if un = c.ok("SEARCH $"); !strings.Contains(un, "* SEARCH 2 11\r\n") {
		t.Fatalf("$ after SAVE MIN MAX:\n%s", un)
	}
	c.ok(`SEARCH RETURN (SAVE MIN COUNT) FLAGGED`)
	if un = c.ok("SEARCH $"); !strings.Contains(un, "* SEARCH 2 5 10 11\r\n") {
		t.Fatalf("$ after SAVE MIN COUNT:\n%s", un)
	}
	// An expunged message leaves "$"; SELECT empties it.
	c.ok(`STORE 5 +FLAGS.SILENT (\Deleted)`)
	c.ok("EXPUNGE")
	if un = c.ok("UID SEARCH $"); !strings.Contains(un, "* SEARCH 2 10 11\r\n") {
		t.Fatalf("$ after EXPUNGE:\n%s", un)
	}
	c.ok("SELECT INBOX")
	if un = c.ok("SEARCH $"); !strings.Contains(un, "* SEARCH\r\n") {
		t.Fatalf("$ after SELECT:\n%s", un)
	}
}

// TestSearchResFailedSave: a SEARCH with the SAVE result option that is
// answered NO empties "$"; one answered BAD leaves it as it was (RFC 5182
// 2.1: "A SEARCH command with the SAVE result option that caused the server
// to return the NO tagged response sets the value of the search result
// variable to the empty sequence"; a SEARCH answered BAD must not change
// it). An unknown charset is such a NO (RFC 3501 6.4.4, BADCHARSET).
func TestSearchResFailedSave(t *testing.T) {
	e := newEnv(t, nil)
	esearchMailbox(e)
	c := e.login()
	c.ok("SELECT INBOX")
	save := func() {
		t.Helper()
		c.ok("SEARCH RETURN (SAVE) FLAGGED")
		if un := c.ok("SEARCH $"); !strings.Contains(un, "* SEARCH 2 5 10 11\r\n") {
			t.Fatalf("$ after SAVE FLAGGED:\n%s", un)
		}
	}
	save()
	// BAD: the saved result stays.
	for _, cmd := range []string{"SEARCH RETURN (SAVE) FLAGGED BOGUSKEY", "SEARCH RETURN (SAVE BOGUS) ALL"} {
		if got, all := c.status("%s", cmd); got != "BAD" {
			t.Fatalf("%s: %s", cmd, all)
		}
		if un := c.ok("SEARCH $"); !strings.Contains(un, "* SEARCH 2 5 10 11\r\n") {
			t.Fatalf("$ after %s (BAD) changed:\n%s", cmd, un)
		}
	}
	// NO without SAVE: the saved result stays.
	if got, all := c.status("SEARCH RETURN (ALL) CHARSET KOI8-R SUBJECT n1"); got != "NO" || !strings.Contains(all, "[BADCHARSET") {
		t.Fatalf("SEARCH CHARSET KOI8-R: %s", all)
	}
	if un := c.ok("SEARCH $"); !strings.Contains(un, "* SEARCH 2 5 10 11\r\n") {
		t.Fatalf("$ after a NO without SAVE changed:\n%s", un)
	}
	// NO with SAVE: "$" is the empty sequence, in SEARCH, FETCH and STORE.
	if got, all := c.status("SEARCH RETURN (SAVE) CHARSET KOI8-R SUBJECT n1"); got != "NO" || !strings.Contains(all, "[BADCHARSET") {
		t.Fatalf("SEARCH RETURN (SAVE) CHARSET KOI8-R: %s", all)
	}
	if un := c.ok("SEARCH $"); un != "* SEARCH\r\n" {
		t.Fatalf("$ after a failed SAVE:\n%q", un)
	}
	if un := c.ok("FETCH $ (FLAGS)"); un != "" {
		t.Fatalf("FETCH $ after a failed SAVE:\n%q", un)
	}
	if un := c.ok(`STORE $ +FLAGS (\Seen)`); un != "" {
		t.Fatalf("STORE $ after a failed SAVE:\n%q", un)
	}
	// UID SEARCH too, and a new SAVE works again.
	save()
	if got, all := c.status("UID SEARCH RETURN (SAVE MIN) CHARSET X-UNKNOWN ALL"); got != "NO" {
		t.Fatalf("UID SEARCH RETURN (SAVE MIN) CHARSET X-UNKNOWN: %s", all)
	}
	if un := c.ok("UID SEARCH $"); un != "* SEARCH\r\n" {
		t.Fatalf("$ after a failed UID SEARCH SAVE:\n%q", un)
	}
	save()
}
