package imapfront_test

import (
	"fmt"
	"strings"
	"testing"
)

// The extensions of issue 15 (ID, UNSELECT, ENABLE, APPENDLIMIT,
// MULTIAPPEND, LIST-EXTENDED): their RFCs' examples over a real
// connection, and Python's imaplib.

// TestID: RFC 2971 section 4's example, in every state.
func TestID(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial()
	mustContain(t, "CAPABILITY before login", c.ok("CAPABILITY"), " ID")
	un := c.ok(`ID ("name" "sodr" "version" "19.34" "vendor" "Pink Floyd Music Limited")`)
	mustContain(t, "ID", un, `* ID ("name" "Mailferry" "vendor" "Mailferry")`)
	mustContain(t, "ID NIL", c.ok("ID NIL"), "* ID (")
	// RFC 2971 3.3: at most 30 pairs.
	var sb strings.Builder
	for i := 0; i < 31; i++ {
		fmt.Fprintf(&sb, `"k%d" "v" `, i)
	}
	if got, all := c.status("ID (%s)", strings.TrimSpace(sb.String())); got != "BAD" {
		t.Fatalf("31 ID pairs: %s", all)
	}
	for _, bad := range []string{"ID", "ID ()x", `ID ("name")`, `ID name`, `ID ("` + strings.Repeat("k", 31) + `" "v")`} {
		if got, all := c.status("%s", bad); got != "BAD" {
			t.Fatalf("%s: %s", bad, all)
		}
	}
	c.ok("LOGIN %s %s", user, pass)
	c.ok("SELECT INBOX")
	mustContain(t, "ID selected", c.ok(`ID ("name" "x")`), `* ID ("name" "Mailferry"`)
}

// TestUnselect: RFC 3691's example: UNSELECT closes without expunging.
func TestUnselect(t *testing.T) {
	e := newEnv(t, nil)
	e.put(e.inbox(), simple)
	c := e.login()
	mustContain(t, "CAPABILITY", c.ok("CAPABILITY"), " UNSELECT")
	if got, all := c.status("UNSELECT"); got != "BAD" {
		t.Fatalf("UNSELECT with nothing selected: %s", all)
	}
	c.ok("SELECT INBOX")
	c.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	if un := c.ok("UNSELECT"); strings.Contains(un, "EXPUNGE") {
		t.Fatalf("UNSELECT expunged: %s", un)
	}
	if got, _ := c.status("FETCH 1 FLAGS"); got != "BAD" {
		t.Fatal("still selected after UNSELECT")
	}
	mustContain(t, "STATUS", c.ok("STATUS INBOX (MESSAGES)"), "MESSAGES 1")
}

// TestEnable: RFC 5161's examples: unknown extensions are not enabled,
// ENABLE needs a login.
func TestEnable(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial()
	if got, all := c.status("ENABLE UTF8=ACCEPT"); got != "BAD" {
		t.Fatalf("ENABLE before login: %s", all)
	}
	c.ok("LOGIN %s %s", user, pass)
	mustContain(t, "CAPABILITY", c.ok("CAPABILITY"), " ENABLE")
	if un := c.ok("ENABLE X-GOOD-IDEA"); strings.TrimSpace(un) != "* ENABLED" {
		t.Fatalf("ENABLE X-GOOD-IDEA: %q", un)
	}
	if un := c.ok("ENABLE X-GOOD-IDEA UTF8=ACCEPT"); strings.TrimSpace(un) != "* ENABLED UTF8=ACCEPT" {
		t.Fatalf("ENABLE UTF8=ACCEPT: %q", un)
	}
}

// TestAppendLimit: RFC 7889: the limit is advertised, given by STATUS, and
// a larger APPEND is refused with TOOBIG before its literal is sent.
func TestAppendLimit(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	mustContain(t, "CAPABILITY", c.ok("CAPABILITY"), " APPENDLIMIT=67108864")
	mustContain(t, "STATUS", c.ok("STATUS INBOX (APPENDLIMIT)"), "APPENDLIMIT 67108864")
	got, all := c.status("APPEND INBOX {67108865}")
	if got != "NO" || !strings.Contains(all, "[TOOBIG]") || strings.Contains(all, "+ ") {
		t.Fatalf("APPEND over the limit: %s", all)
	}
	c.ok("NOOP")
}

// TestMultiAppend: RFC 3502's example (two messages, one command, APPENDUID
// with both UIDs), and all or none.
func TestMultiAppend(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	mustContain(t, "CAPABILITY", c.ok("CAPABILITY"), " MULTIAPPEND")
	c.ok("CREATE saved-messages")
	m1 := "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nFrom: Fred Foobar <foobar@Blurdybloop.example.COM>\r\n" +
		"Subject: afternoon meeting\r\nTo: mooch@owatagu.example.net\r\nMessage-Id: <B27397-0100000@Blurdybloop.example.COM>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\nHello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
	m2 := "Date: Mon, 7 Feb 1994 22:43:04 -0800 (PST)\r\nFrom: Joe Mooch <mooch@OWaTaGu.example.net>\r\n" +
		"Subject: Re: afternoon meeting\r\nTo: foobar@blurdybloop.example.com\r\nMessage-Id: <a0434793874930@OWaTaGu.example.net>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n3:30 is fine with me.\r\n"
	c.send(fmt.Sprintf("A003 APPEND saved-messages (\\Seen) {%d}\r\n", len(m1)))
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("no continuation: %q", l)
	}
	c.send(m1 + fmt.Sprintf(` (\Seen) " 7-Feb-1994 22:43:04 -0800" {%d}`+"\r\n", len(m2)))
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("no continuation for the second message: %q", l)
	}
	c.send(m2 + "\r\n")
	_, tagged := c.until("A003")
	v := uidValidityRe.FindStringSubmatch(c.ok("STATUS saved-messages (UIDVALIDITY)"))[1]
	if want := fmt.Sprintf("A003 OK [APPENDUID %s 1:2]", v); !strings.HasPrefix(tagged, want) {
		t.Fatalf("MULTIAPPEND: %q, want %q", tagged, want)
	}
	c.ok("SELECT saved-messages")
	un := c.ok("FETCH 1:2 (FLAGS INTERNALDATE BODY.PEEK[])")
	if literalOf(t, un, "BODY[]") != m1 || !strings.Contains(un, m2) || !strings.Contains(un, `INTERNALDATE " 7-Feb-1994 22:43:04 -0800"`) {
		t.Fatalf("messages differ:\n%s", un)
	}

	// All or none: a bad second message leaves nothing appended.
	c.send(fmt.Sprintf("A004 APPEND saved-messages {%d+}\r\n%s {67108865}\r\n", len(m1), m1))
	_, tagged = c.until("A004")
	if !strings.HasPrefix(tagged, "A004 NO [TOOBIG]") {
		t.Fatalf("second message too big: %q", tagged)
	}
	// A bad flag on a later message: BAD, nothing appended.
	c.send(fmt.Sprintf("A005 APPEND saved-messages {%d+}\r\n%s (\\Bogus) {%d}\r\n", len(m1), m1, len(m2)))
	if l := c.line(); strings.HasPrefix(l, "+") {
		c.send(m2 + "\r\n")
		_, tagged = c.until("A005")
	} else {
		tagged = l
	}
	if !strings.HasPrefix(tagged, "A005 BAD") {
		t.Fatalf("bad flag on the second message: %q", tagged)
	}
	mustContain(t, "STATUS after a failed MULTIAPPEND", c.ok("STATUS saved-messages (MESSAGES)"), "MESSAGES 2")
	// A missing mailbox is refused before any message is sent.
	c.send("A006 APPEND nosuch {10}\r\n")
	if l := c.line(); !strings.HasPrefix(l, "A006 NO [TRYCREATE]") {
		t.Fatalf("APPEND to a missing mailbox: %q", l)
	}
	c.ok("NOOP")
}

// TestPythonImaplibExtensions: the extensions through a third-party client.
func TestPythonImaplibExtensions(t *testing.T) {
	runImaplib(t, newEnv(t, nil), "testdata/imaplib_extensions.py", "imaplib extensions OK")
}
