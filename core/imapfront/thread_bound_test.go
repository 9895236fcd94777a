package imapfront_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestThreadReferencesBoundedOverMailbox: one THREAD takes at most
// 500,000 References over the whole mailbox (thread_bound.go). 501
// messages each naming a common ancestor, not in the mailbox, then 999
// references of their own: 501,000 References, so each message keeps its
// last 500 and the common ancestor no longer groups them (it did: one
// thread of 501 under a dummy, and 20,000 such messages held 20 million
// References and containers, GiBs, for one THREAD). A message's parent,
// its last reference, still threads it.
func TestThreadReferencesBoundedOverMailbox(t *testing.T) {
	e := newEnv(t, nil)
	own := func(i int) string {
		var sb strings.Builder
		for j := 0; j < 999; j++ {
			fmt.Fprintf(&sb, " <%d.%d@t>", i, j)
		}
		return sb.String()
	}
	const n = 501
	for i := 0; i < n; i++ {
		e.put(e.inbox(), fmt.Sprintf("Message-ID: <m%d@t>\r\nSubject: s%d\r\nReferences: <common@t>%s\r\n\r\nbody\r\n", i, i, own(i)))
	}
	e.put(e.inbox(), "Message-ID: <p@t>\r\nSubject: parent\r\n\r\nbody\r\n")
	e.put(e.inbox(), "Message-ID: <q@t>\r\nSubject: Re: parent\r\nReferences:"+own(n)+" <p@t>\r\n\r\nbody\r\n")
	c := e.login()
	c.ok("SELECT INBOX")
	for _, alg := range []string{"REFERENCES", "REFS"} {
		un := strings.TrimSpace(c.ok("THREAD %s UTF-8 ALL", alg))
		if !strings.Contains(un, fmt.Sprintf("(%d %d)", n+1, n+2)) {
			t.Errorf("THREAD %s: no thread (%d %d) of a message and its reply: %.300s", alg, n+1, n+2, un)
		}
		// Every message of the 501 a thread of its own.
		if got := topThreads(un); got != n+1 {
			t.Errorf("THREAD %s: %d threads, want %d (the common ancestor is past the bound): %.300s", alg, got, n+1, un)
		}
	}
}

// topThreads counts the threads of a THREAD response: its top-level
// parenthesized lists.
func topThreads(resp string) int {
	depth, n := 0, 0
	for _, r := range resp {
		switch r {
		case '(':
			if depth == 0 {
				n++
			}
			depth++
		case ')':
			depth--
		}
	}
	return n
}
