package imapfront_test

import (
	"strings"
	"testing"
)

// Issue 15's differences from Dovecot found in session 14, each over a real
// connection with raw protocol lines (TestSideBySide's "seqset",
// "create-parents" and "envelope-date" scripts show Dovecot's answers).

// TestSeqSetBeyondMailbox: a FETCH, STORE, COPY or MOVE by sequence numbers
// naming a message the session was not told of is BAD, as Dovecot answers
// (RFC 3501 9 seq-number); UID commands, SEARCH and "$" are not.
func TestSeqSetBeyondMailbox(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	c.ok("CREATE Dst")
	c.ok("CREATE Empty")
	c.ok("SELECT Empty")
	bad := func(cmds ...string) {
		t.Helper()
		for _, cmd := range cmds {
			if got, all := c.status("%s", cmd); got != "BAD" || !strings.Contains(all, "Invalid message sequence set") {
				t.Fatalf("%s: want BAD Invalid message sequence set, got %s", cmd, all)
			}
		}
	}
	good := func(cmds ...string) {
		t.Helper()
		for _, cmd := range cmds {
			c.ok("%s", cmd)
		}
	}
	bad("FETCH 1 (FLAGS)", "FETCH * (FLAGS)", "FETCH 1:* (FLAGS)", `STORE 1:* +FLAGS (\Seen)`, "COPY 1:* Dst", "MOVE * Dst",
		"COPY 1 Nonexistent")
	good("UID FETCH 1:* (FLAGS)", `UID STORE * +FLAGS (\Seen)`, "SEARCH 1:*", "UID COPY 1:* Dst")
	c.ok("UNSELECT")
	for i := 0; i < 3; i++ {
		e.put(e.inbox(), simple)
	}
	c.ok("SELECT INBOX")
	bad("FETCH 4 (FLAGS)", "FETCH 2:4 (FLAGS)", "FETCH 4:* (FLAGS)", "FETCH 1,5 (FLAGS)", "FETCH 5,1 (FLAGS)",
		`STORE 4 +FLAGS (\Seen)`, "COPY 3:4 Dst", "MOVE 9 Dst")
	if un := c.ok("FETCH 3:* (FLAGS)"); !strings.Contains(un, "* 3 FETCH") {
		t.Fatalf("FETCH 3:*: %q", un)
	}
	good("FETCH * (FLAGS)", "UID FETCH 4:9 (FLAGS)", "SEARCH 4", "SEARCH RETURN (SAVE) 2:3", "FETCH $ (FLAGS)")
	// Nothing was stored, copied or moved by the refused commands.
	if un := c.ok("STATUS Dst (MESSAGES)"); !strings.Contains(un, "MESSAGES 0") {
		t.Fatalf("refused COPY/MOVE copied: %q", un)
	}
	if un := c.ok("FETCH 1:3 (FLAGS)"); strings.Contains(un, `\Seen`) {
		t.Fatalf("refused STORE stored: %q", un)
	}
	// Another session's EXPUNGE, not yet told: the third message is still
	// a number this session knows.
	d := e.login()
	d.ok("SELECT INBOX")
	d.ok(`STORE 3 +FLAGS.SILENT (\Deleted)`)
	d.ok("EXPUNGE")
	if got, all := c.status("FETCH 3 (FLAGS)"); got == "BAD" {
		t.Fatalf("FETCH of a message expunged elsewhere, not yet told: %s", all)
	}
	c.ok("NOOP")
	bad("FETCH 3 (FLAGS)")
}

// TestCreateLeavesParentsImplied: CREATE a/b does not make "a" a mailbox
// (RFC 3501 6.3.3 lets the server create superiors; Dovecot 2.3 does not):
// LIST shows "a" \Noselect (\NonExistent in an extended LIST), SELECT,
// STATUS, SUBSCRIBE and APPEND find no mailbox, RENAME a renames its
// children, DELETE a is NONEXISTENT, and "a" goes with its last child.
func TestCreateLeavesParentsImplied(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	c.ok("CREATE P/a/b")
	mustContain(t, "LIST", c.ok(`LIST "" P*`),
		`* LIST (\Noselect \HasChildren) "/" "P"`, `* LIST (\Noselect \HasChildren) "/" "P/a"`, `* LIST (\HasNoChildren) "/" "P/a/b"`)
	mustContain(t, "LIST %", c.ok(`LIST "" P/%%`), `* LIST (\Noselect \HasChildren) "/" "P/a"`)
	un := c.ok(`LIST "" (P P/a) RETURN (CHILDREN STATUS (MESSAGES))`)
	mustContain(t, "extended LIST", un, `* LIST (\NonExistent \HasChildren) "/" "P"`, `* LIST (\NonExistent \HasChildren) "/" "P/a"`)
	if strings.Contains(un, "* STATUS") {
		t.Fatalf("STATUS of a level that is no mailbox: %s", un)
	}
	for _, cmd := range []string{"SELECT P/a", "EXAMINE P", "STATUS P/a (MESSAGES)", "SUBSCRIBE P/a", "DELETE P/a"} {
		if got, all := c.status("%s", cmd); got != "NO" || !strings.Contains(all, "NONEXISTENT") {
			t.Fatalf("%s: want NO [NONEXISTENT], got %s", cmd, all)
		}
	}
	if got, all := c.status("APPEND P/a {%d+}\r\n%s", len(simple), simple); got != "NO" || !strings.Contains(all, "[TRYCREATE]") {
		t.Fatalf("APPEND to a level that is no mailbox: %s", all)
	}
	// RENAME of the level renames its children; the new name's superiors
	// are not made mailboxes either.
	c.ok("RENAME P/a P/z")
	mustContain(t, "after RENAME", c.ok(`LIST "" P*`),
		`* LIST (\Noselect \HasChildren) "/" "P"`, `* LIST (\Noselect \HasChildren) "/" "P/z"`, `* LIST (\HasNoChildren) "/" "P/z/b"`)
	c.ok("RENAME P/z/b P/y/x")
	un = c.ok(`LIST "" P*`)
	mustContain(t, "after RENAME to a new level", un, `* LIST (\Noselect \HasChildren) "/" "P/y"`, `* LIST (\HasNoChildren) "/" "P/y/x"`)
	if strings.Contains(un, `"P/z"`) {
		t.Fatalf("the level stayed without children: %s", un)
	}
	if got, all := c.status("RENAME P/z P/q"); got != "NO" || !strings.Contains(all, "NONEXISTENT") {
		t.Fatalf("RENAME of a name that is nothing: %s", all)
	}
	// Created itself, the level is a mailbox; a trailing separator
	// creates the name without it.
	c.ok("CREATE P/y")
	c.ok("CREATE P/w/")
	mustContain(t, "after CREATE", c.ok(`LIST "" P*`),
		`* LIST (\Noselect \HasChildren) "/" "P"`, `* LIST (\HasNoChildren) "/" "P/w"`, `* LIST (\HasChildren) "/" "P/y"`)
	c.ok("SELECT P/y")
	c.ok("UNSELECT")
	c.ok("DELETE P/y/x")
	c.ok("DELETE P/y")
	c.ok("DELETE P/w")
	if un := c.ok(`LIST "" P*`); strings.Contains(un, "* LIST") {
		t.Fatalf("levels left without children: %s", un)
	}
}

// TestEnvelopeDateAsSent: ENVELOPE's date is the Date field's text as the
// message has it (RFC 3501 7.4.2; what Dovecot sends), also when it is no
// date; NIL without a Date field; the same in a message/rfc822 part's
// BODYSTRUCTURE. Mailferry formatted the parsed date again, or sent NIL.
func TestEnvelopeDateAsSent(t *testing.T) {
	e := newEnv(t, nil)
	for _, date := range []string{
		"Mon, 07 Dec 2026 01:00:00 +0000 (UTC)",
		"7 Dec 26 01:00 EST",
		"Mon,  7 Dec 2026 01:00:00 -0800\r\n (folded)",
		"next tuesday, maybe",
		`"quoted" date`,
		"",
	} {
		msg := "From: a@example.test\r\nSubject: d\r\n"
		if date != "" {
			msg += "Date: " + date + "\r\n"
		}
		e.put(e.inbox(), msg+"\r\nbody\r\n")
	}
	e.put(e.inbox(), "From: a@example.test\r\nDate: outer, not a date\r\nContent-Type: message/rfc822\r\n\r\n"+
		"From: b@example.test\r\nDate: inner,  not a date either\r\nSubject: inner\r\n\r\ninner body\r\n")
	c := e.login()
	c.ok("EXAMINE INBOX")
	un := c.ok("FETCH 1:* (ENVELOPE)")
	mustContain(t, "ENVELOPE", un,
		`* 1 FETCH (UID 1 ENVELOPE ("Mon, 07 Dec 2026 01:00:00 +0000 (UTC)" "d"`,
		`* 2 FETCH (UID 2 ENVELOPE ("7 Dec 26 01:00 EST" "d"`,
		`* 3 FETCH (UID 3 ENVELOPE ("Mon,  7 Dec 2026 01:00:00 -0800 (folded)" "d"`,
		`* 4 FETCH (UID 4 ENVELOPE ("next tuesday, maybe" "d"`,
		`* 5 FETCH (UID 5 ENVELOPE ("\"quoted\" date" "d"`,
		`* 6 FETCH (UID 6 ENVELOPE (NIL "d"`,
		`* 7 FETCH (UID 7 ENVELOPE ("outer, not a date" NIL`)
	mustContain(t, "BODYSTRUCTURE", c.ok("FETCH 7 (BODYSTRUCTURE)"), `("inner,  not a date either" "inner"`)
	// SORT still orders by the date parsed (RFC 5256 2.2), the
	// unparsable ones by their arrival.
	if un := c.ok("SORT (DATE) UTF-8 1:3"); !strings.Contains(un, "* SORT 1 2 3") {
		t.Fatalf("SORT (DATE): %q", un)
	}
}

// TestSortDisplay: SORT=DISPLAY (RFC 5957; Roundcube's and SnappyMail's
// sort() send DISPLAYFROM/DISPLAYTO for FROM/TO when it is advertised):
// by the first address's display name, else its addr-spec, else (a group)
// the group's name, "" without one; i;unicode-casemap ("Émile" with the
// E's); ties by sequence number, also REVERSEd. The orders are Dovecot
// 2.3's on the same messages (TestSideBySide "sort-display").
func TestSortDisplay(t *testing.T) {
	e := newEnv(t, nil)
	for _, ft := range sortDisplayMsgs {
		e.put(e.inbox(), ft+"Subject: s\r\n\r\nbody\r\n")
	}
	c := e.login()
	mustContain(t, "CAPABILITY", c.ok("CAPABILITY"), " SORT SORT=DISPLAY ")
	c.ok("SELECT INBOX")
	c.expect(map[string]string{
		"SORT (DISPLAYFROM) UTF-8 ALL":                    "* SORT 5 6 4 7 2 3 8 1\r\n",
		"SORT (REVERSE DISPLAYFROM) UTF-8 ALL":            "* SORT 1 8 3 2 4 7 6 5\r\n",
		"SORT (DISPLAYTO) UTF-8 ALL":                      "* SORT 8 5 6 7 1 3 4 2\r\n",
		"UID SORT (DISPLAYTO REVERSE DATE) US-ASCII 2:*":  "* SORT 8 5 6 7 3 4 2\r\n",
		"SORT (DISPLAYFROM) UTF-8 OR FROM alice FROM zed": "* SORT 4 7 1\r\n",
	})
	if got, all := c.status("SORT (DISPLAYCC) UTF-8 ALL"); got != "BAD" {
		t.Fatalf("unknown sort key: %s", all)
	}
}

// TestESort: ESORT (RFC 5267 3; Cypht's hm-imap sends "UID SORT RETURN
// (...)" when it is advertised): SORT RETURN answers ESEARCH with MIN and
// MAX the first and last in the sort order, ALL the messages in that order,
// COUNT; RETURN () is ALL; with no match only COUNT 0; SAVE (RFC 5182)
// keeps the result as "$" and answers nothing. The answers are Dovecot
// 2.3's on the same messages (TestSideBySide "esort"), and the RFC's
// example's form: "S1 SORT RETURN (MIN) (DATE) UTF-8 UNDELETED" answered
// "* ESEARCH (TAG "S1") MIN n".
func TestESort(t *testing.T) {
	e := newEnv(t, nil)
	for _, subj := range []string{"c", "a", "d", "b", "a", "e"} {
		e.put(e.inbox(), "From: x@example.test\r\nSubject: "+subj+"\r\n\r\nbody\r\n")
	}
	c := e.login()
	mustContain(t, "CAPABILITY", c.ok("CAPABILITY"), " ESORT ")
	c.ok("SELECT INBOX")
	c.ok(`STORE 4 +FLAGS.SILENT (\Seen)`)
	for _, tc := range []struct{ cmd, want string }{
		{"SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL", "MIN 2 MAX 6 ALL 2,5,4,1,3,6 COUNT 6"},
		{"SORT RETURN (ALL) (SUBJECT) UTF-8 ALL", "ALL 2,5,4,1,3,6"},
		{"SORT RETURN () (REVERSE SUBJECT) UTF-8 ALL", "ALL 6,3,1,4,2,5"},
		{"UID SORT RETURN (MIN MAX) (SUBJECT) UTF-8 ALL", "UID MIN 2 MAX 6"},
		{"UID SORT RETURN (COUNT ALL) (REVERSE SUBJECT) UTF-8 UNSEEN", "UID ALL 6,3,1:2,5 COUNT 5"},
		{"SORT RETURN (ALL) (ARRIVAL) UTF-8 ALL", "ALL 1:6"},
		{"SORT RETURN (ALL MIN) (REVERSE SUBJECT) UTF-8 ALL", "MIN 6 ALL 6,3,1,4,2,5"},
		{"SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 SUBJECT zzz", "COUNT 0"},
		{"SORT RETURN (MIN MAX ALL) (SUBJECT) UTF-8 SUBJECT zzz", ""},
		{"SORT RETURN (COUNT) (SUBJECT) UTF-8 2:4", "COUNT 3"},
		{"SORT RETURN (MIN) (DATE) UTF-8 UNDELETED", "MIN 1"},
	} {
		un, tagged := c.do("%s", tc.cmd)
		tag := strings.Fields(tagged)[0]
		want := `* ESEARCH (TAG "` + tag + `")`
		if tc.want != "" {
			want += " " + tc.want
		}
		if !strings.Contains(tagged, " OK ") || un != want+"\r\n" {
			t.Errorf("%s: got %q %q, want %q", tc.cmd, un, tagged, want)
		}
	}
	// SAVE: nothing answered, "$" is the result (MIN alone: the first in
	// the sort order).
	if un := c.ok("SORT RETURN (SAVE) (SUBJECT) UTF-8 SUBJECT a"); un != "" {
		t.Fatalf("SORT RETURN (SAVE): %q", un)
	}
	mustContain(t, "FETCH $", c.ok("FETCH $ (UID)"), "* 2 FETCH (UID 2)", "* 5 FETCH (UID 5)")
	mustContain(t, "SAVE MIN", c.ok("SORT RETURN (SAVE MIN) (REVERSE SUBJECT) UTF-8 ALL"), "MIN 6")
	if un := c.ok("UID SEARCH UID $"); un != "* SEARCH 6\r\n" {
		t.Fatalf("$ after SAVE MIN: %q", un)
	}
	// A SAVE answered NO empties "$" (RFC 5182 2.1).
	if got, all := c.status("SORT RETURN (SAVE) (SUBJECT) BOGUS-CHARSET ALL"); got != "NO" || !strings.Contains(all, "BADCHARSET") {
		t.Fatalf("bad charset: %s", all)
	}
	if un := c.ok("UID SEARCH UID $"); un != "* SEARCH\r\n" {
		t.Fatalf("$ after a failed SAVE: %q", un)
	}
	for _, cmd := range []string{"SORT RETURN (PARTIAL 1:2) (SUBJECT) UTF-8 ALL", "SORT RETURN (BOGUS) (SUBJECT) UTF-8 ALL",
		"SORT RETURN COUNT (SUBJECT) UTF-8 ALL", "SORT RETUR (COUNT) (SUBJECT) UTF-8 ALL"} {
		if got, all := c.status("%s", cmd); got != "BAD" {
			t.Errorf("%s: %s", cmd, all)
		}
	}
	// A plain SORT is answered as before.
	if un := c.ok("SORT (SUBJECT) UTF-8 ALL"); un != "* SORT 2 5 4 1 3 6\r\n" {
		t.Fatalf("SORT: %q", un)
	}
}
