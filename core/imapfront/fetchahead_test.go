package imapfront_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestFetchBodiesReadAhead: a FETCH of many bodies reads them ahead
// (store.ReadAhead, up to 1 MiB at a time, messages side by side in one
// read) and serves each message's bytes exactly: small messages around
// ones whose sizes cross the 1 MiB bound and one larger than it, and with
// CHANGEDSINCE only the changed ones.
func TestFetchBodiesReadAhead(t *testing.T) {
	e := newEnv(t, nil)
	mb := e.inbox()
	sizes := []int{50, 300, 700 << 10, 600 << 10, 20, 2000, 1536 << 10, 10, 100, 5000, 7}
	var bodies []string
	for i, n := range sizes {
		var sb strings.Builder
		fmt.Fprintf(&sb, "Subject: %d\r\n\r\n", i)
		for sb.Len() < n {
			fmt.Fprintf(&sb, "line %d of message %d\r\n", sb.Len(), i)
		}
		b := sb.String()
		bodies = append(bodies, b)
		e.put(mb, b)
	}
	c := e.login()
	c.ok("ENABLE CONDSTORE")
	sel := c.ok("SELECT INBOX")
	body := func(un string, seq int) (string, bool) {
		i := strings.Index(un, fmt.Sprintf("* %d FETCH (", seq))
		if i < 0 {
			return "", false
		}
		return literalOf(t, un[i:], "BODY[]"), true
	}
	un := c.ok("FETCH 1:* (UID BODY.PEEK[])")
	for i, want := range bodies {
		if got, ok := body(un, i+1); !ok || got != want {
			t.Fatalf("message %d (%d bytes): %d bytes served, found %v; want exactly its bytes", i+1, len(want), len(got), ok)
		}
	}
	var modseq uint64
	if _, err := fmt.Sscanf(sel[strings.Index(sel, "HIGHESTMODSEQ "):], "HIGHESTMODSEQ %d", &modseq); err != nil {
		t.Fatalf("no HIGHESTMODSEQ in %q", sel)
	}
	c.ok(`STORE 2,4,7,11 +FLAGS.SILENT ($Changed)`)
	un = c.ok("FETCH 1:* (BODY.PEEK[]) (CHANGEDSINCE %d)", modseq)
	for i, want := range bodies {
		got, ok := body(un, i+1)
		changed := i+1 == 2 || i+1 == 4 || i+1 == 7 || i+1 == 11
		if ok != changed || (changed && got != want) {
			t.Fatalf("CHANGEDSINCE: message %d served %v (%d bytes), changed %v", i+1, ok, len(got), changed)
		}
	}
}
