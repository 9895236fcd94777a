package imapfront_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Issue 15's conformance failures, each over a real connection with raw
// protocol lines.

// mustContain fails unless s holds every want, in order.
func mustContain(t *testing.T, what, s string, want ...string) {
	t.Helper()
	rest := s
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("%s: lacks %q (in order) in:\n%s", what, w, s)
		}
		rest = rest[i+len(w):]
	}
}

// TestRecent: RFC 3501 2.3.2, 6.3.1, 6.3.10, 7.3.2: \Recent goes to the
// first session that selects the mailbox after a message arrived.
func TestRecent(t *testing.T) {
	e := newEnv(t, nil)
	e.put(e.inbox(), simple)
	e.put(e.inbox(), simple)
	watcher := e.login()
	mustContain(t, "STATUS before anyone selected", watcher.ok("STATUS INBOX (RECENT MESSAGES)"), "RECENT 2")

	a := e.login()
	mustContain(t, "first SELECT", a.ok("SELECT INBOX"), "* 2 EXISTS\r\n* 2 RECENT\r\n")
	mustContain(t, "FETCH FLAGS", a.ok("FETCH 1:* FLAGS"), `* 1 FETCH (UID 1 FLAGS (\Recent))`, `* 2 FETCH (UID 2 FLAGS (\Recent))`)
	b := e.login()
	mustContain(t, "second SELECT", b.ok("SELECT INBOX"), "* 2 EXISTS\r\n* 0 RECENT\r\n")
	mustContain(t, "FETCH FLAGS elsewhere", b.ok("FETCH 1:* FLAGS"), `* 1 FETCH (UID 1 FLAGS ())`)
	mustContain(t, "STATUS after a SELECT", watcher.ok("STATUS INBOX (RECENT)"), "RECENT 0")

	// New mail: the first session to learn of it gets it as recent.
	e.put(e.inbox(), simple)
	mustContain(t, "STATUS after new mail", watcher.ok("STATUS INBOX (RECENT)"), "RECENT 1")
	mustContain(t, "NOOP after new mail", a.ok("NOOP"), "* 3 EXISTS\r\n* 3 RECENT\r\n")
	mustContain(t, "NOOP elsewhere", b.ok("NOOP"), "* 3 EXISTS\r\n* 0 RECENT\r\n")

	// SEARCH RECENT, NEW (recent and unseen), OLD (not recent).
	a.ok(`STORE 1 +FLAGS.SILENT (\Seen)`)
	mustContain(t, "SEARCH RECENT", a.ok("SEARCH RECENT"), "* SEARCH 1 2 3\r\n")
	mustContain(t, "SEARCH NEW", a.ok("SEARCH NEW"), "* SEARCH 2 3\r\n")
	mustContain(t, "SEARCH OLD", a.ok("SEARCH OLD"), "* SEARCH\r\n")
	mustContain(t, "SEARCH OLD elsewhere", b.ok("SEARCH OLD"), "* SEARCH 1 2 3\r\n")
	mustContain(t, "SEARCH RECENT elsewhere", b.ok("SEARCH RECENT"), "* SEARCH\r\n")

	// COPY into the selected mailbox: the copy is new mail.
	un, tagged := a.do("COPY 1 INBOX")
	if !strings.Contains(tagged, "OK") {
		t.Fatal(tagged)
	}
	mustContain(t, "COPY", un, "* 4 EXISTS\r\n* 4 RECENT\r\n")

	// EXAMINE shows recent messages but claims none (RFC 3501 6.3.2).
	e.put(e.inbox(), simple)
	a.ok("LOGOUT")
	b.ok("LOGOUT")
	x := e.login()
	mustContain(t, "EXAMINE", x.ok("EXAMINE INBOX"), "* 5 EXISTS\r\n* 1 RECENT\r\n")
	y := e.login()
	mustContain(t, "SELECT after EXAMINE", y.ok("SELECT INBOX"), "* 5 EXISTS\r\n* 1 RECENT\r\n")
	mustContain(t, "FETCH after EXAMINE", y.ok("FETCH 5 FLAGS"), `\Recent`)
	// STATUS of the selected mailbox counts the session's recent messages,
	// as Dovecot.
	mustContain(t, "STATUS of the selected mailbox", y.ok("STATUS INBOX (RECENT)"), "RECENT 1")
}

// TestStatusRecentExamined: STATUS (RECENT) of the mailbox a session has
// EXAMINEd counts each recent message once, as Dovecot 2.3 does. The
// unclaimed messages the EXAMINE shows as recent were counted twice (as
// unclaimed, and as the session's): RECENT 4 of 2 messages.
func TestStatusRecentExamined(t *testing.T) {
	e := newEnv(t, nil)
	e.put(e.inbox(), simple)
	e.put(e.inbox(), simple)
	x := e.login()
	mustContain(t, "EXAMINE", x.ok("EXAMINE INBOX"), "* 2 EXISTS\r\n* 2 RECENT\r\n")
	mustContain(t, "STATUS of the examined mailbox", x.ok("STATUS INBOX (MESSAGES RECENT)"), "MESSAGES 2 ", "RECENT 2)")
	// Another session claims them: still the examining session's (its
	// FETCH shows \Recent), counted once.
	y := e.login()
	mustContain(t, "SELECT", y.ok("SELECT INBOX"), "* 2 RECENT\r\n")
	mustContain(t, "STATUS after another claimed", x.ok("STATUS INBOX (RECENT)"), "RECENT 2)")
	// New mail, unclaimed, seen by the examining session first.
	e.put(e.inbox(), simple)
	mustContain(t, "NOOP", x.ok("NOOP"), "* 3 EXISTS\r\n* 3 RECENT\r\n")
	mustContain(t, "STATUS with one unclaimed", x.ok("STATUS INBOX (RECENT)"), "RECENT 3)")
}

var uidValidityRe = regexp.MustCompile(`UIDVALIDITY (\d+)`)

// TestUIDValidityRecreated: a mailbox deleted and made again within the
// same second gets a higher UIDVALIDITY (RFC 3501 2.3.1.1).
func TestUIDValidityRecreated(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	var last uint64
	for i := 0; i < 4; i++ {
		c.ok("CREATE Box")
		m := uidValidityRe.FindStringSubmatch(c.ok("STATUS Box (UIDVALIDITY)"))
		if m == nil {
			t.Fatal("no UIDVALIDITY")
		}
		v, _ := strconv.ParseUint(m[1], 10, 32)
		if v <= last {
			t.Fatalf("round %d: UIDVALIDITY %d after %d", i, v, last)
		}
		last = v
		c.ok("DELETE Box")
	}
}

// TestNewKeywordFlags: a new keyword brings FLAGS and PERMANENTFLAGS again
// (RFC 3501 7.2.6), to the session that set it (before its FETCH) and to
// others.
func TestNewKeywordFlags(t *testing.T) {
	e := newEnv(t, nil)
	e.put(e.inbox(), simple)
	a, b := e.login(), e.login()
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")
	un := a.ok(`STORE 1 +FLAGS ($Urgent)`)
	mustContain(t, "STORE", un,
		`* FLAGS (\Seen \Answered \Flagged \Deleted \Draft $Urgent)`,
		`* OK [PERMANENTFLAGS (\Seen \Answered \Flagged \Deleted \Draft $Urgent \*)]`,
		`* 1 FETCH (UID 1 FLAGS ($Urgent \Recent))`)
	if un := a.ok(`STORE 1 +FLAGS ($Urgent)`); strings.Contains(un, "* FLAGS") {
		t.Fatalf("known keyword announced again: %s", un)
	}
	mustContain(t, "NOOP elsewhere", b.ok("NOOP"),
		`* FLAGS (\Seen \Answered \Flagged \Deleted \Draft $Urgent)`,
		`* OK [PERMANENTFLAGS (`,
		`* 1 FETCH (UID 1 FLAGS ($Urgent))`)
}

// TestEnvelopeGroups: ENVELOPE keeps RFC 5322 groups as RFC 3501 7.4.2
// group markers.
func TestEnvelopeGroups(t *testing.T) {
	e := newEnv(t, nil)
	e.put(e.inbox(), "From: Bob <bob@example.test>\r\nTo: undisclosed-recipients:;\r\n"+
		"Cc: team: a@x.test, \"B (b)\" <b@y.test>;, c@z.test\r\nSubject: groups\r\n\r\nbody\r\n")
	c := e.login()
	c.ok("SELECT INBOX")
	un := c.ok("FETCH 1 ENVELOPE")
	mustContain(t, "ENVELOPE", un,
		`((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))`,
		`((NIL NIL "team" NIL)(NIL NIL "a" "x.test")("B (b)" NIL "b" "y.test")(NIL NIL NIL NIL)(NIL NIL "c" "z.test"))`)
}

const binaryMsg = "From: a@example.test\r\nSubject: binary\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\ntext\r\n" +
	"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgcICQ==\r\n" +
	"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\nab\x00cd\x00\r\n--b--\r\n"

// TestBinarySections: BINARY[part]<origin.n> names its origin, and BODY[]
// of a binary part never carries NUL in a literal (RFC 3516 4.2, 4.3).
func TestBinarySections(t *testing.T) {
	e := newEnv(t, nil)
	e.put(e.inbox(), binaryMsg)
	c := e.login()
	c.ok("SELECT INBOX")
	un := c.ok("FETCH 1 BINARY.PEEK[2]<0.7>")
	mustContain(t, "BINARY partial", un, "BINARY[2]<0> ~{7}\r\n\x00\x01\x02\x03\x04\x05\x06)")
	un = c.ok("FETCH 1 BINARY.PEEK[2]<3.100>")
	mustContain(t, "BINARY partial", un, "BINARY[2]<3> ~{7}\r\n\x03\x04\x05\x06\x07\x08\x09)")
	for _, item := range []string{"BODY.PEEK[3]", "BODY.PEEK[]", "RFC822"} {
		un = c.ok("FETCH 1 %s", item)
		if strings.IndexByte(un, 0) >= 0 {
			t.Fatalf("%s carries NUL: %q", item, un)
		}
	}
	un = c.ok("FETCH 1 BINARY.PEEK[3]")
	mustContain(t, "BINARY[3]", un, "BINARY[3] ~{6}\r\nab\x00cd\x00)")
}

// TestListOddPatterns: a pattern that is not valid modified UTF-7 is the
// client's mistake (BAD, or no match), never a server bug.
func TestListOddPatterns(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	for _, cmd := range []string{`LIST "" &`, `LIST "" "&"`, `LIST "" &Jjo`, `LIST "" "&AGE"`, `LIST "" "a&-&"`, `LSUB "" "&"`,
		`LIST "&" *`, `SELECT "&"`, `STATUS "&Jjo" (MESSAGES)`, `LIST "" ]`, `LIST "" "\\"`} {
		_, tagged := c.do("%s", cmd)
		if strings.Contains(tagged, "SERVERBUG") || !(strings.Contains(tagged, " OK") || strings.Contains(tagged, " BAD") || strings.Contains(tagged, " NO")) {
			t.Fatalf("%s: %s", cmd, tagged)
		}
	}
	c.ok("NOOP")
}

// TestLsubNoselectParents: RFC 3501 6.3.9: "%" reaching only the parent of
// a subscribed mailbox gives that parent as \Noselect.
func TestLsubNoselectParents(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	c.ok("CREATE foo/bar")
	c.ok("SUBSCRIBE foo/bar")
	if un := c.ok("%s", `LSUB "" "%"`); !strings.Contains(un, `* LSUB (\Noselect) "/" "foo"`) || strings.Contains(un, `"foo/bar"`) {
		t.Fatalf(`LSUB "" "%%": %q`, un)
	}
	if un := c.ok(`LSUB "" "*"`); !strings.Contains(un, `* LSUB () "/" "foo/bar"`) || strings.Contains(un, `"/" "foo"\r`) {
		t.Fatalf(`LSUB "" "*": %q`, un)
	}
}

// TestListSubscribedExtended: RFC 5258: LIST (SUBSCRIBED) lists subscribed
// names that are no mailbox as \NonExistent, and RECURSIVEMATCH gives
// CHILDINFO for parents of subscribed names the pattern does not reach.
func TestListSubscribedExtended(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	c.ok("CREATE Gone")
	c.ok("SUBSCRIBE Gone")
	c.ok("DELETE Gone")
	c.ok("CREATE Foo/Bar")
	c.ok("SUBSCRIBE Foo/Bar")
	un := c.ok(`LIST (SUBSCRIBED) "" "*"`)
	mustContain(t, "LIST (SUBSCRIBED)", un, `* LIST (\HasNoChildren \Subscribed) "/" "Foo/Bar"`, `* LIST (\NonExistent \Subscribed) "/" "Gone"`)
	if strings.Contains(un, `"/" "Foo"\r`) {
		t.Fatalf("unsubscribed parent listed: %s", un)
	}
	// A plain LIST does not show a name that is no mailbox.
	if un := c.ok(`LIST "" "*"`); strings.Contains(un, "Gone") {
		t.Fatalf("LIST shows a deleted mailbox: %s", un)
	}
	un = c.ok("%s", `LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`)
	mustContain(t, "RECURSIVEMATCH", un, `"/" "Foo" (CHILDINFO ("SUBSCRIBED"))`, `* LIST (\NonExistent \Subscribed) "/" "Gone"`)
	// Made again, the mailbox is subscribed again.
	c.ok("CREATE Gone")
	mustContain(t, "made again", c.ok(`LIST "" "Gone" RETURN (SUBSCRIBED)`), `* LIST (\HasNoChildren \Subscribed) "/" "Gone"`)
	c.ok("UNSUBSCRIBE Gone")
	c.ok("UNSUBSCRIBE Gone") // not subscribed: OK, as Dovecot
	if got, all := c.status("SUBSCRIBE Never"); got != "NO" {
		t.Fatalf("SUBSCRIBE to no mailbox: %s", all)
	}
	c.ok("DELETE Gone")
	if un := c.ok(`LIST (SUBSCRIBED) "" "*"`); strings.Contains(un, "Gone") {
		t.Fatalf("unsubscribed name listed: %s", un)
	}
}

// TestMoveIntoSelected: MOVE to the selected mailbox is OK with COPYUID,
// as Dovecot (RFC 6851 allows it).
func TestMoveIntoSelected(t *testing.T) {
	e := newEnv(t, nil)
	e.put(e.inbox(), simple)
	e.put(e.inbox(), simple)
	c := e.login()
	v := uidValidityRe.FindStringSubmatch(c.ok("SELECT INBOX"))[1]
	un, tagged := c.do("UID MOVE 1 INBOX")
	if !strings.Contains(tagged, " OK") {
		t.Fatalf("MOVE: %s\n%s", tagged, un)
	}
	mustContain(t, "MOVE", un, fmt.Sprintf("* OK [COPYUID %s 1 3]", v), "* 1 EXPUNGE\r\n", "* 2 EXISTS\r\n")
	mustContain(t, "after MOVE", c.ok("FETCH 1:* UID"), "* 1 FETCH (UID 2)", "* 2 FETCH (UID 3)")
}

// TestSearchFromComments: SEARCH FROM finds an address written with
// comments and spaces (RFC 5322 3.4.1 obsolete syntax), as Dovecot.
func TestSearchFromComments(t *testing.T) {
	e := newEnv(t, nil)
	e.put(e.inbox(), "From: <user (c)@ (c) domain.org>\r\nTo: Someone <x . y @ example.test>\r\nSubject: c\r\n\r\nbody\r\n")
	e.put(e.inbox(), simple)
	c := e.login()
	c.ok("SELECT INBOX")
	mustContain(t, "SEARCH FROM", c.ok("SEARCH FROM user@domain.org"), "* SEARCH 1\r\n")
	mustContain(t, "SEARCH TO", c.ok("SEARCH TO x.y@example.test"), "* SEARCH 1\r\n")
	mustContain(t, "SEARCH FROM name", c.ok("SEARCH FROM bob"), "* SEARCH 2\r\n")
}

// TestUnknownCommandsAndIDBeforeLogin: ID works before login (RFC 2971),
// and an unknown command is answered BAD without ending the session (RFC
// 3501 7.1.5); an HTTP request line still ends it (cross-protocol
// attacks).
func TestUnknownCommandsAndIDBeforeLogin(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial()
	mustContain(t, "ID before login", c.ok(`ID ("name" "test")`), `* ID ("name" "Mailferry"`)
	for i := 0; i < 3; i++ {
		if got, all := c.status("FROBNICATE"); got != "BAD" {
			t.Fatalf("unknown command before login: %s", all)
		}
	}
	c.ok("LOGIN %s %s", user, pass)
	if got, all := c.status("FROBNICATE x"); got != "BAD" {
		t.Fatalf("unknown command after login: %s", all)
	}
	c.ok("NOOP")

	h := e.dial()
	h.send("POST / HTTP/1.1\r\n")
	if l := h.line(); !strings.HasPrefix(l, "POST BAD") && !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("HTTP request: %q", l)
	}
	mustEnd(t, h)

	// Many unknown commands before login end the connection.
	f := e.dial()
	for i := 0; i < 10; i++ {
		f.send(fmt.Sprintf("f%d FROBNICATE\r\n", i))
	}
	mustEnd(t, f)
}

// mustEnd reads until the server closes the connection, with a BYE.
func mustEnd(t *testing.T, c *conn) {
	t.Helper()
	var all strings.Builder
	for {
		l, err := c.r.ReadString('\n')
		all.WriteString(l)
		if err != nil {
			break
		}
	}
	if !strings.Contains(all.String(), "* BYE") {
		t.Fatalf("no BYE before the end: %q", all.String())
	}
}

// TestFetchExpungedElsewhere: a FETCH that names a message another session
// expunged (its EXPUNGE not yet told, as RFC 3501 7.4.1 forbids telling it
// during FETCH) answers OK and sends what can be sent: the other messages,
// whole (RFC 3501 5.5, as Dovecot); the next NOOP tells the EXPUNGE. Before
// issue 15 it answered NO [NONEXISTENT], failing the whole FETCH.
func TestFetchExpungedElsewhere(t *testing.T) {
	e := newEnv(t, nil)
	bodies := []string{}
	for i := 1; i <= 3; i++ {
		b := strings.Replace(simple, "Hi Alice.", fmt.Sprintf("Message %d.", i), 1)
		bodies = append(bodies, b)
		e.put(e.inbox(), b)
	}
	a, b := e.login(), e.login()
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")
	b.ok(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	b.ok("EXPUNGE")
	told := ""
	for _, cmd := range []string{"FETCH 1:3 (UID BODY.PEEK[])", "FETCH 2 (FLAGS BODY.PEEK[TEXT])", "UID FETCH 1:3 (UID BODY.PEEK[])"} {
		un, tagged := a.do("%s", cmd)
		if !strings.Contains(tagged, " OK") {
			t.Fatalf("%s: %s\n%s", cmd, tagged, un)
		}
		if strings.Contains(un, "Message 2.") {
			t.Fatalf("%s: sent the expunged message:\n%s", cmd, un)
		}
		// An EXPUNGE may follow a UID command, never a FETCH (RFC 3501 7.4.1).
		if strings.Contains(un, "EXPUNGE") && !strings.HasPrefix(cmd, "UID ") {
			t.Fatalf("%s: told the expunge during FETCH:\n%s", cmd, un)
		}
		if i := strings.Index(un, "* 2 EXPUNGE\r\n"); i >= 0 {
			told += un[i:]
		}
		if strings.HasPrefix(cmd, "FETCH 2") {
			continue
		}
		mustContain(t, cmd, un,
			fmt.Sprintf("* 1 FETCH (UID 1 BODY[] {%d}\r\n%s)", len(bodies[0]), bodies[0]),
			fmt.Sprintf("* 3 FETCH (UID 3 BODY[] {%d}\r\n%s)", len(bodies[2]), bodies[2]))
	}
	told += a.ok("NOOP")
	if told != "* 2 EXPUNGE\r\n" {
		t.Fatalf("the expunge elsewhere told as %q, want once", told)
	}
}
