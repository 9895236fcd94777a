package imapfront_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"mailferry/core/store"
)

// threadMailbox fills INBOX with eleven messages (UIDs 1 to 11) whose
// References make RFC 5256's example shape, "(2 5 (3 7)(4 6 8))": 2 is
// the root, 5 its reply, 3 and 4 replies to 5, 7 to 3, 6 to 4 and 8 to 6.
// 9 answers 1 by subject only; 10 and 11 answer a message not in the
// mailbox. Sent dates follow order; INTERNALDATEs run backwards.
func threadMailbox(t *testing.T, e *env) {
	t.Helper()
	type msg struct {
		from, subject, refs string
		order               int
	}
	msgs := []msg{
		1:  {"carol@x.test", "alone", "", 1},
		2:  {"alice@x.test", "topic", "", 2},
		3:  {"Bob@x.test", "Re: topic", "<2@t> <5@t>", 4},
		4:  {"dave@x.test", "Re: topic", "<2@t> <5@t>", 6},
		5:  {"bob@x.test", "Re: topic", "<2@t>", 3},
		6:  {"erin@x.test", "Re: Re: topic", "<2@t> <5@t> <4@t>", 7},
		7:  {"frank@x.test", "RE: [list] topic", "<2@t> <5@t> <3@t>", 5},
		8:  {"alice@x.test", "Fwd: Re: topic (fwd)", "<2@t> <5@t> <4@t> <6@t>", 8},
		9:  {"zed@x.test", "Re: alone", "", 9},
		10: {"amy@x.test", "x10", "<missing@t>", 10},
		11: {"amy@x.test", "x11", "<missing@t>", 11},
	}
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := 1; i < len(msgs); i++ {
		m := msgs[i]
		h := fmt.Sprintf("From: %s\r\nTo: alice@example.test\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d@t>\r\n",
			m.from, m.subject, base.Add(time.Duration(m.order)*time.Hour).Format(time.RFC1123Z), i)
		if m.refs != "" {
			h += "References: " + m.refs + "\r\n"
		}
		body := h + "\r\n" + strings.Repeat("x", i*200) + "\r\n"
		_, err := e.st.AppendMessage(context.Background(), e.inbox().ID, &store.NewMessage{Body: []byte(body), InternalDate: base.Add(-time.Duration(i) * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestSortAndThread runs RFC 5256's commands over a real connection.
func TestSortAndThread(t *testing.T) {
	e := newEnv(t, nil)
	threadMailbox(t, e)
	c := e.login()
	if un := c.ok("CAPABILITY"); !strings.Contains(un, " SORT") || !strings.Contains(un, " THREAD=ORDEREDSUBJECT THREAD=REFERENCES") {
		t.Fatalf("CAPABILITY: %s", un)
	}
	c.ok("SELECT INBOX")
	for _, tc := range []struct{ cmd, want string }{
		{"SORT (SUBJECT) UTF-8 ALL", "* SORT 1 9 2 3 4 5 6 7 8 10 11"},
		{"SORT (DATE) UTF-8 ALL", "* SORT 1 2 5 3 7 4 6 8 9 10 11"},
		{"SORT (REVERSE DATE) UTF-8 ALL", "* SORT 11 10 9 8 6 4 7 3 5 2 1"},
		{"SORT (ARRIVAL) UTF-8 ALL", "* SORT 11 10 9 8 7 6 5 4 3 2 1"},
		{"SORT (SIZE) US-ASCII ALL", "* SORT 1 2 3 4 5 6 7 8 9 10 11"},
		{"SORT (REVERSE SIZE) UTF-8 1:3", "* SORT 3 2 1"},
		{"SORT (FROM DATE) UTF-8 ALL", "* SORT 2 8 10 11 5 3 1 4 6 7 9"},
		{"SORT (SUBJECT REVERSE DATE) UTF-8 ALL", "* SORT 9 1 8 6 4 7 3 5 2 10 11"},
		{"SORT (CC) UTF-8 ALL", "* SORT 1 2 3 4 5 6 7 8 9 10 11"},
		{"SORT (TO SUBJECT) UTF-8 ALL", "* SORT 1 9 2 3 4 5 6 7 8 10 11"},
		{"SORT (DATE) UTF-8 SUBJECT topic", "* SORT 2 5 3 7 4 6 8"},
		{`SORT (SUBJECT) US-ASCII TEXT "not in mailbox"`, "* SORT\r\n"},
		{"UID SORT (REVERSE ARRIVAL) UTF-8 UID 2:4", "* SORT 2 3 4"},
		{"THREAD ORDEREDSUBJECT UTF-8 ALL", "* THREAD (1 9)(2 (5)(3)(7)(4)(6)(8))(10)(11)"},
		{"THREAD REFERENCES UTF-8 ALL", "* THREAD (1 9)(2 5 (3 7)(4 6 8))((10)(11))"},
		{"THREAD REFERENCES UTF-8 NOT 5", "* THREAD (1 9)(2 (3 7)(4 6 8))((10)(11))"},
		{"UID THREAD REFERENCES UTF-8 1:8", "* THREAD (1)(2 5 (3 7)(4 6 8))"},
		{"THREAD REFERENCES UTF-8 10", "* THREAD (10)"},
		{`THREAD ORDEREDSUBJECT UTF-8 TEXT "not in mailbox"`, "* THREAD\r\n"},
	} {
		un := c.ok("%s", tc.cmd)
		if !strings.Contains(un, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.cmd, un, tc.want)
		}
	}
	for _, tc := range []struct{ cmd, want string }{
		{"SORT (SUBJECT) ISO-2022-JP ALL", "NO [BADCHARSET]"},
		{"SORT () UTF-8 ALL", "BAD"},
		{"SORT (BOGUS) UTF-8 ALL", "BAD"},
		{"SORT (REVERSE) UTF-8 ALL", "BAD"},
		{"SORT SUBJECT UTF-8 ALL", "BAD"},
		{"SORT (SUBJECT) UTF-8", "BAD"},
		{"THREAD BOGUS UTF-8 ALL", "BAD"},
		{"THREAD REFERENCES", "BAD"},
		{"THREAD REFERENCES KOI8-R ALL", "NO [BADCHARSET]"},
	} {
		_, tagged := c.do("%s", tc.cmd)
		if !strings.Contains(tagged, tc.want) {
			t.Errorf("%s: %s, want %s", tc.cmd, tagged, tc.want)
		}
	}
	c.ok("NOOP")
}

// TestThreadHostileReferences threads messages whose References loop,
// name themselves, repeat a Message-ID or run long: THREAD answers, each
// message once, and the session goes on.
func TestThreadHostileReferences(t *testing.T) {
	e := newEnv(t, nil)
	var long strings.Builder
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(&long, " <l%d@t>", i)
	}
	for _, m := range []string{
		"Message-ID: <a@t>\r\nReferences: <b@t>\r\nSubject: loop\r\n",
		"Message-ID: <b@t>\r\nReferences: <a@t>\r\nSubject: loop\r\n",
		"Message-ID: <c@t>\r\nReferences: <c@t> <c@t>\r\nSubject: self\r\n",
		"Message-ID: <c@t>\r\nReferences: <a@t>\r\nSubject: duplicate id\r\n",
		"Message-ID: <d@t>\r\nReferences:" + long.String() + " <d@t>\r\nSubject: long\r\n",
		"Message-ID: <>\r\nIn-Reply-To: garbage <<<\r\nReferences: <<>> <@> <\r\nSubject: Re:\r\n",
		"Subject: \r\n",
	} {
		e.put(e.inbox(), m+"\r\nbody\r\n")
	}
	c := e.login()
	c.ok("SELECT INBOX")
	for _, alg := range []string{"REFERENCES", "ORDEREDSUBJECT", "REFS"} {
		un := c.ok("THREAD %s UTF-8 ALL", alg)
		line := strings.TrimSpace(un)
		for n := 1; n <= 7; n++ {
			if got := strings.Count(" "+strings.NewReplacer("(", " ", ")", " ").Replace(line)+" ", fmt.Sprintf(" %d ", n)); got != 1 {
				t.Errorf("THREAD %s: message %d appears %d times: %s", alg, n, got, line)
			}
		}
	}
	c.ok("NOOP")
}
