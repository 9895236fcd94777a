package imapfront_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// foldedSubject is a Subject field of n repeats of word, then n of tail,
// folded into lines of at most 998 characters (RFC 5322 2.1.1), as a
// message from outside can carry it.
func foldedSubject(word string, n int, tail string) string {
	var b strings.Builder
	b.WriteString("Subject:")
	line := len("Subject:")
	for i := 0; i < 2*n; i++ {
		if i == n {
			if tail == "" {
				break
			}
			word = tail
		}
		if line+len(word)+1 > 998 {
			b.WriteString("\r\n")
			line = 0
		}
		b.WriteString(" " + word)
		line += len(word) + 1
	}
	b.WriteString("\r\n")
	return b.String()
}

// TestSortHostileSubject sorts and threads messages whose Subject is a
// megabyte of "Re: " leaders, of blobs, of "[fwd: " wrappers: anyone can
// send such a message to a user, whose client then sorts its mailbox by
// subject. Each base subject was a pass over the subject per leader or
// blob (quadratic: a megabyte of "Re: " minutes of a core), and was taken
// again at every comparison of the sort. Each command is answered at once
// and the session goes on.
func TestSortHostileSubject(t *testing.T) {
	e := newEnv(t, nil)
	const size = 1 << 20
	for _, subj := range []string{
		foldedSubject("Re:", size/4, ""),
		foldedSubject("[a]", size/4, ""),
		foldedSubject("[fwd:", size/8, "]"),
		"Subject: plain\r\n",
	} {
		e.put(e.inbox(), "From: a@x.test\r\n"+subj+"\r\nbody\r\n")
	}
	c := e.login()
	c.ok("SELECT INBOX")
	for _, cmd := range []string{
		"SORT (SUBJECT) UTF-8 ALL",
		"SORT (REVERSE SUBJECT FROM) UTF-8 ALL",
		"THREAD ORDEREDSUBJECT UTF-8 ALL",
		"THREAD REFERENCES UTF-8 ALL",
	} {
		start := time.Now()
		un := c.ok("%s", cmd)
		took := time.Since(start)
		for n := 1; n <= 4; n++ {
			if !strings.Contains(un+" ", fmt.Sprintf("%d", n)) {
				t.Errorf("%s: message %d missing: %s", cmd, n, un)
			}
		}
		t.Logf("%s: %v", cmd, took)
	}
	c.ok("NOOP")
}
