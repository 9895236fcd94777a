package imapfront_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// appendArgs is a message APPENDed with flags and/or a date.
type appendArgs struct {
	args, body string
}

// withinMsgs are the messages of the "within" script and TestWithin:
// INTERNALDATEs of 2020, two hours, thirty minutes and two seconds before
// now, the third one \Seen.
func withinMsgs(now time.Time) []appendArgs {
	date := func(d time.Duration) string {
		return `"` + now.Add(-d).UTC().Format("02-Jan-2006 15:04:05 -0700") + `"`
	}
	body := func(n int) string {
		return fmt.Sprintf("From: a@example.test\r\nSubject: w%d\r\nDate: Mon, 7 Dec 2026 01:00:00 +0000\r\n\r\nbody %d\r\n", n, n)
	}
	return []appendArgs{
		{`"01-Jan-2020 10:00:00 +0000"`, body(1)},
		{date(2 * time.Hour), body(2)},
		{`(\Seen) ` + date(30*time.Minute), body(3)},
		{date(2 * time.Second), body(4)},
	}
}

// withinCmds are the "within" script's commands; the answers Dovecot 2.3
// gives are TestWithin's.
var withinCmds = []string{
	"SEARCH YOUNGER 3600",
	"SEARCH OLDER 3600",
	"SEARCH OLDER 86400",
	"SEARCH YOUNGER 86400 OLDER 3600",
	"SEARCH UNSEEN YOUNGER 259200",
	"SEARCH NOT YOUNGER 3600",
	"SEARCH OR YOUNGER 60 OLDER 86400",
	"SEARCH YOUNGER 4294967295",
	"UID SEARCH OLDER 4294967295",
	"SEARCH RETURN (MIN MAX COUNT) YOUNGER 10800",
	"SORT (REVERSE ARRIVAL) UTF-8 YOUNGER 10800",
	"SEARCH YOUNGER 3600 YOUNGER 60",
	"SEARCH OLDER 60 OLDER 3600",
	"SEARCH YOUNGER 0",
	"SEARCH OLDER 4294967296",
	"SEARCH YOUNGER 99999999999999999999999999999",
	"SEARCH OLDER -5",
	"SEARCH OLDER",
	"SEARCH YOUNGER abc",
	"SEARCH SMALLER 1000 LARGER 5",
}

// threadRefsMsgs are the messages of the "thread-refs" script and
// TestThreadRefs: threadMailbox's eleven (RFC 5256's example shape) and a
// twelfth, a late reply to the first, and a thirteenth, answering a
// message not in the mailbox, its Date invalid so that its INTERNALDATE
// (the earliest) orders it.
func threadRefsMsgs() []appendArgs {
	type msg struct {
		subject, refs string
		order         int
	}
	msgs := []msg{
		1:  {"alone", "", 1},
		2:  {"topic", "", 2},
		3:  {"Re: topic", "<2@t> <5@t>", 4},
		4:  {"Re: topic", "<2@t> <5@t>", 6},
		5:  {"Re: topic", "<2@t>", 3},
		6:  {"Re: Re: topic", "<2@t> <5@t> <4@t>", 7},
		7:  {"RE: [list] topic", "<2@t> <5@t> <3@t>", 5},
		8:  {"Fwd: Re: topic (fwd)", "<2@t> <5@t> <4@t> <6@t>", 8},
		9:  {"Re: alone", "", 9},
		10: {"x10", "<missing@t>", 10},
		11: {"x11", "<missing@t>", 11},
		12: {"Re: alone", "<1@t>", 12},
		13: {"x13", "<gone@t>", 0},
	}
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	var out []appendArgs
	for i := 1; i < len(msgs); i++ {
		m := msgs[i]
		date := base.Add(time.Duration(m.order) * time.Hour).Format(time.RFC1123Z)
		if m.order == 0 {
			date = "no date at all"
		}
		h := fmt.Sprintf("From: f%d@x.test\r\nTo: alice@example.test\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d@t>\r\n",
			i, m.subject, date, i)
		if m.refs != "" {
			h += "References: " + m.refs + "\r\n"
		}
		idate := base.Add(-time.Duration(i) * 24 * time.Hour).Format("02-Jan-2006 15:04:05 -0700")
		out = append(out, appendArgs{`"` + idate + `"`, h + "\r\n" + strings.Repeat("x", i*100) + "\r\n"})
	}
	return out
}

// threadRefsCmds are the "thread-refs" script's commands with the answers
// Dovecot 2.3 gives.
var threadRefsCmds = []struct{ cmd, want string }{
	{"THREAD REFS UTF-8 ALL", "* THREAD (13)(2 5 (3 7)(4 6 8))(9)((10)(11))(1 12)"},
	{"UID THREAD REFS UTF-8 ALL", "* THREAD (13)(2 5 (3 7)(4 6 8))(9)((10)(11))(1 12)"},
	{"THREAD REFS UTF-8 NOT 5", "* THREAD (13)(2 (3 7)(4 6 8))(9)((10)(11))(1 12)"},
	{"THREAD REFS UTF-8 1:9", "* THREAD (1)(2 5 (3 7)(4 6 8))(9)"},
	{"THREAD REFS UTF-8 10:11", "* THREAD ((10)(11))"},
	{"THREAD REFS UTF-8 SUBJECT nothing", "* THREAD"},
	{"THREAD REFERENCES UTF-8 ALL", "* THREAD (13)(1 (9)(12))(2 5 (3 7)(4 6 8))((10)(11))"},
	{"THREAD REFS US-ASCII 13", "* THREAD (13)"},
}

// TestWithin: WITHIN (RFC 5032; JavaMail's OlderTerm and YoungerTerm,
// which FairEmail and other JavaMail clients send, are refused by
// JavaMail unless the server advertises it). OLDER/YOUNGER count seconds
// back from the command's time against INTERNALDATE, time of day
// included; combined with other keys, NOT, OR, ESEARCH and SORT; an
// interval of 0, above 2^32-1, negative or missing is BAD. The answers
// are Dovecot 2.3's on the same messages (TestSideBySide "within"); the
// RFC's example is "SEARCH UNSEEN YOUNGER 259200".
func TestWithin(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	mustContain(t, "CAPABILITY", c.ok("CAPABILITY"), " WITHIN ")
	for _, m := range withinMsgs(time.Now()) {
		if tagged := c.appendMsg("INBOX", m.args, m.body); !strings.Contains(tagged, " OK ") {
			t.Fatalf("APPEND: %s", tagged)
		}
	}
	c.ok("SELECT INBOX")
	want := map[string]string{
		"SEARCH YOUNGER 3600":                         "* SEARCH 3 4",
		"SEARCH OLDER 3600":                           "* SEARCH 1 2",
		"SEARCH OLDER 86400":                          "* SEARCH 1",
		"SEARCH YOUNGER 86400 OLDER 3600":             "* SEARCH 2",
		"SEARCH UNSEEN YOUNGER 259200":                "* SEARCH 2 4",
		"SEARCH NOT YOUNGER 3600":                     "* SEARCH 1 2",
		"SEARCH OR YOUNGER 60 OLDER 86400":            "* SEARCH 1 4",
		"SEARCH YOUNGER 4294967295":                   "* SEARCH 1 2 3 4",
		"UID SEARCH OLDER 4294967295":                 "* SEARCH",
		"SEARCH RETURN (MIN MAX COUNT) YOUNGER 10800": "MIN 2 MAX 4 COUNT 3",
		"SORT (REVERSE ARRIVAL) UTF-8 YOUNGER 10800":  "* SORT 4 3 2",
		"SEARCH YOUNGER 3600 YOUNGER 60":              "* SEARCH 4",
		"SEARCH OLDER 60 OLDER 3600":                  "* SEARCH 1 2",
		"SEARCH SMALLER 1000 LARGER 5":                "* SEARCH 1 2 3 4",
	}
	for _, cmd := range withinCmds {
		w, ok := want[cmd]
		if !ok {
			if st, all := c.status("%s", cmd); st != "BAD" {
				t.Errorf("%s: %s, want BAD", cmd, all)
			}
			continue
		}
		un := c.ok("%s", cmd)
		if strings.HasPrefix(w, "*") {
			if un != w+"\r\n" {
				t.Errorf("%s: got %q, want %q", cmd, un, w)
			}
		} else if !strings.Contains(un, w+"\r\n") {
			t.Errorf("%s: got %q, want %q", cmd, un, w)
		}
	}
	// Hostile: a number of 40,000 digits (a command line is at most 50
	// KiB) is BAD, and the session goes on.
	start := time.Now()
	if st, all := c.status("SEARCH YOUNGER %s", strings.Repeat("9", 40000)); st != "BAD" {
		t.Errorf("YOUNGER of 40,000 digits: %.200s", all)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("YOUNGER of 40,000 digits took %v", d)
	}
	c.ok("NOOP")
}

// TestSearchSmallerLarger: "SMALLER n LARGER m" keeps both bounds (go-imap
// dropped SMALLER when a LARGER followed it: fork change 42).
func TestSearchSmallerLarger(t *testing.T) {
	e := newEnv(t, nil)
	e.put(e.inbox(), "Subject: small\r\n\r\nx\r\n")
	e.put(e.inbox(), "Subject: big\r\n\r\n"+strings.Repeat("x", 5000)+"\r\n")
	c := e.login()
	c.ok("SELECT INBOX")
	c.expect(map[string]string{
		"SEARCH SMALLER 1000 LARGER 5":         "* SEARCH 1\r\n",
		"SEARCH LARGER 5 SMALLER 1000":         "* SEARCH 1\r\n",
		"SEARCH SMALLER 1000 SMALLER 100000":   "* SEARCH 1\r\n",
		"SEARCH LARGER 1000 LARGER 5":          "* SEARCH 2\r\n",
		"SEARCH SMALLER 100000 LARGER 1000":    "* SEARCH 2\r\n",
		"SEARCH NOT SMALLER 1000 SMALLER 5":    "* SEARCH\r\n",
		"SEARCH OR SMALLER 10 LARGER 1000 ALL": "* SEARCH 2\r\n",
	})
}

// TestThreadRefs: THREAD=REFS (draft-ietf-morg-inthread; SnappyMail's
// and RainLoop's THREAD requests pick REFS first when advertised):
// REFERENCES' links without gathering by subject (9 answers 1 by subject
// only and stays apart), the threads by their latest message (1's thread
// comes last for 12, its late reply; 13 without a valid Date goes by its
// INTERNALDATE, the earliest). The answers are Dovecot 2.3's on the same
// messages (TestSideBySide "thread-refs").
func TestThreadRefs(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	mustContain(t, "CAPABILITY", c.ok("CAPABILITY"), " THREAD=REFERENCES THREAD=REFS ")
	for _, m := range threadRefsMsgs() {
		if tagged := c.appendMsg("INBOX", m.args, m.body); !strings.Contains(tagged, " OK ") {
			t.Fatalf("APPEND: %s", tagged)
		}
	}
	c.ok("SELECT INBOX")
	for _, tc := range threadRefsCmds {
		if got := c.ok("%s", tc.cmd); got != tc.want+"\r\n" {
			t.Errorf("%s:\n got %q\nwant %q", tc.cmd, got, tc.want)
		}
	}
}

// TestSortRecent: SORT and THREAD search as SEARCH does, \Recent included
// (RECENT, NEW and OLD matched nothing in SORT and THREAD: their search
// did not know which messages were recent to the session).
func TestSortRecent(t *testing.T) {
	e := newEnv(t, nil)
	e.put(e.inbox(), "Subject: a\r\n\r\nx\r\n")
	e.put(e.inbox(), "Subject: b\r\n\r\nx\r\n", `\Seen`)
	c := e.login()
	mustContain(t, "SELECT", c.ok("SELECT INBOX"), "* 2 RECENT")
	c.expect(map[string]string{
		"SEARCH RECENT":                      "* SEARCH 1 2\r\n",
		"SORT (ARRIVAL) UTF-8 RECENT":        "* SORT 1 2\r\n",
		"SORT (REVERSE ARRIVAL) UTF-8 NEW":   "* SORT 1\r\n",
		"SORT (ARRIVAL) UTF-8 OLD":           "* SORT\r\n",
		"THREAD ORDEREDSUBJECT UTF-8 RECENT": "* THREAD (1)(2)\r\n",
		"THREAD REFS UTF-8 NEW":              "* THREAD (1)\r\n",
	})
}

// expect runs each command and checks its untagged answer.
func (c *conn) expect(answers map[string]string) {
	c.t.Helper()
	for cmd, want := range answers {
		if got := c.ok("%s", cmd); got != want {
			c.t.Errorf("%s: got %q, want %q", cmd, got, want)
		}
	}
}

// TestLongCommandLine: a command line longer than the 50 KiB the server
// reads is answered BAD and the rest of the line dropped, as Dovecot 2.3
// answers one over its 64 KiB ("Too long argument", TestSideBySide
// "long-line"); it was answered NO [SERVERBUG] and the rest of the line was
// then read as commands (fork change 44). A 10 MB line too; a long line
// that announces a non-synchronizing literal ends the session with BYE
// (its literal could not be told from commands).
func TestLongCommandLine(t *testing.T) {
	e := newEnv(t, nil)
	e.put(e.inbox(), msgN(1))
	c := e.login()
	c.ok("SELECT INBOX")
	set := func(n int) string {
		var b strings.Builder
		for i := 1; b.Len() < n; i += 2 {
			fmt.Fprintf(&b, "%d,", i)
		}
		return strings.TrimSuffix(b.String(), ",")
	}
	if un := c.ok("UID SEARCH UID %s", set(40<<10)); un != "* SEARCH 1\r\n" {
		t.Fatalf("40 KiB: %q", un)
	}
	for _, n := range []int{70 << 10, 10 << 20} {
		un, tagged := c.do("UID SEARCH UID %s", set(n))
		if un != "" || !strings.Contains(tagged, " BAD ") {
			t.Fatalf("%d bytes: %.200q %q", n, un, tagged)
		}
		// The rest of the line was dropped: NOOP is answered alone.
		if un := c.ok("NOOP"); un != "" {
			t.Fatalf("after %d bytes, NOOP: %.200q", n, un)
		}
	}
	c.send(fmt.Sprintf("x1 APPEND INBOX (%s) {5+}\r\nhello\r\n", strings.Repeat(`\Seen `, 20<<10)))
	if l := c.line(); !strings.HasPrefix(l, "* BYE ") {
		t.Fatalf("non-synchronizing literal after a long line: %q", l)
	}
	msgs, err := e.st.Messages(context.Background(), e.inbox().ID)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("INBOX after the BYE: %d messages, %v", len(msgs), err)
	}
}
