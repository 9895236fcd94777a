package imapfront_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var highestModSeqRe = regexp.MustCompile(`\[HIGHESTMODSEQ (\d+)\]`)

// highestModSeq returns the HIGHESTMODSEQ a SELECT answered.
func highestModSeq(t *testing.T, un string) uint64 {
	t.Helper()
	m := highestModSeqRe.FindStringSubmatch(un)
	if m == nil {
		t.Fatalf("no HIGHESTMODSEQ in %q", un)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// modSeqOf returns the MODSEQ of message seq in FETCH responses.
func modSeqOf(t *testing.T, un string, seq int) uint64 {
	t.Helper()
	m := regexp.MustCompile(fmt.Sprintf(`(?m)^\* %d FETCH \(.*MODSEQ \((\d+)\)`, seq)).FindStringSubmatch(un)
	if m == nil {
		t.Fatalf("no MODSEQ for %d in %q", seq, un)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// fill5 puts five messages in INBOX.
func fill5(e *env) {
	for i := 1; i <= 5; i++ {
		e.put(e.inbox(), fmt.Sprintf("Subject: m%d\r\nMessage-ID: <c%d@example.test>\r\n\r\nbody %d\r\n", i, i, i))
	}
}

// TestCondStore follows RFC 7162 3.1 over a real connection: HIGHESTMODSEQ
// on SELECT and STATUS, FETCH MODSEQ and CHANGEDSINCE, SEARCH MODSEQ,
// conditional STORE with MODIFIED, and MODSEQ in unsolicited FETCH.
func TestCondStore(t *testing.T) {
	e := newEnv(t, nil)
	fill5(e)
	// Another session claims \Recent (RFC 3501 2.3.2), so the flags
	// below are the stored ones.
	e.login().ok("SELECT INBOX")
	c := e.login()
	if un := c.ok("CAPABILITY"); !strings.Contains(un, " CONDSTORE") || !strings.Contains(un, " QRESYNC") {
		t.Fatalf("CAPABILITY: %s", un)
	}
	un := c.ok("SELECT INBOX (CONDSTORE)")
	hms := highestModSeq(t, un)

	// RFC 7162 3.1.4: FETCH MODSEQ, then only what changed.
	un = c.ok("FETCH 1:* (FLAGS MODSEQ)")
	if n := strings.Count(un, "MODSEQ ("); n != 5 {
		t.Fatalf("FETCH MODSEQ: %d responses\n%s", n, un)
	}
	un = c.ok(`STORE 2 +FLAGS (\Seen)`)
	ms2 := modSeqOf(t, un, 2)
	if ms2 <= hms || !strings.Contains(un, `FLAGS (\Seen)`) {
		t.Fatalf("STORE: MODSEQ %d after HIGHESTMODSEQ %d\n%s", ms2, hms, un)
	}
	un = c.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", hms)
	if strings.Count(un, "FETCH") != 1 || !strings.Contains(un, "* 2 FETCH") || !strings.Contains(un, fmt.Sprintf("MODSEQ (%d)", ms2)) {
		t.Fatalf("FETCH CHANGEDSINCE %d:\n%s", hms, un)
	}
	if un = c.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", ms2); strings.Contains(un, "FETCH") {
		t.Fatalf("FETCH CHANGEDSINCE the highest answered:\n%s", un)
	}

	// RFC 7162 3.1.3, its example: STORE 7,5,9 (UNCHANGEDSINCE ...)
	// +FLAGS.SILENT (\Deleted) changes only what is unchanged since; the
	// others are named in MODIFIED.
	un, tagged := c.do(`STORE 1,2,4 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\Deleted)`, hms)
	if !strings.Contains(tagged, "OK [MODIFIED 2]") {
		t.Fatalf("conditional STORE: %s\n%s", tagged, un)
	}
	if !strings.Contains(un, "* 1 FETCH (UID 1 MODSEQ (") || !strings.Contains(un, "* 4 FETCH (UID 4 MODSEQ (") || strings.Contains(un, "* 2 FETCH") || strings.Contains(un, "FLAGS") {
		t.Fatalf("conditional STORE .SILENT responses:\n%s", un)
	}
	un = c.ok("FETCH 1:4 (FLAGS)")
	if !strings.Contains(un, `* 2 FETCH (UID 2 FLAGS (\Seen))`) || !strings.Contains(un, `* 1 FETCH (UID 1 FLAGS (\Deleted))`) {
		t.Fatalf("flags after conditional STORE:\n%s", un)
	}
	// UID STORE names UIDs; UNCHANGEDSINCE 0 always fails (RFC 7162 3.1.3).
	if _, tagged = c.do(`UID STORE 3,5 (UNCHANGEDSINCE 0) +FLAGS ($MDNSent)`); !strings.Contains(tagged, "OK [MODIFIED 3,5]") {
		t.Fatalf("UNCHANGEDSINCE 0: %s", tagged)
	}
	if un = c.ok("FETCH 3,5 (FLAGS)"); strings.Contains(un, "$MDNSent") {
		t.Fatalf("UNCHANGEDSINCE 0 changed flags:\n%s", un)
	}

	// RFC 7162 3.1.5: SEARCH MODSEQ and the highest MODSEQ found.
	un = c.ok("SEARCH MODSEQ %d", hms+1)
	m := regexp.MustCompile(`\* SEARCH 1 2 4 \(MODSEQ (\d+)\)`).FindStringSubmatch(un)
	if m == nil {
		t.Fatalf("SEARCH MODSEQ:\n%s", un)
	}
	if un = c.ok(`SEARCH MODSEQ "/flags/\\draft" all %d`, hms+1); !strings.Contains(un, "* SEARCH 1 2 4 (MODSEQ") {
		t.Fatalf("SEARCH MODSEQ with an entry:\n%s", un)
	}
	if un = c.ok("SEARCH RETURN (COUNT) MODSEQ %d", hms+1); !strings.Contains(un, "COUNT 3 MODSEQ "+m[1]) {
		t.Fatalf("ESEARCH MODSEQ:\n%s", un)
	}
	if un = c.ok("SEARCH MODSEQ 999999"); !strings.Contains(un, "* SEARCH\r\n") {
		t.Fatalf("SEARCH MODSEQ, nothing found:\n%s", un)
	}

	// RFC 7162 3.1.2.1 and 3.1.3 STATUS HIGHESTMODSEQ.
	st := e.dial()
	st.ok("LOGIN %s %s", user, pass)
	if un = st.ok("STATUS INBOX (HIGHESTMODSEQ MESSAGES)"); !strings.Contains(un, "HIGHESTMODSEQ "+m[1]) {
		t.Fatalf("STATUS HIGHESTMODSEQ %s:\n%s", m[1], un)
	}
	// Another session's change reaches this one with its MODSEQ.
	st.ok("SELECT INBOX")
	st.ok(`STORE 5 +FLAGS (\Flagged)`)
	un = c.ok("NOOP")
	if !regexp.MustCompile(`\* 5 FETCH \(UID 5 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)`).MatchString(un) {
		t.Fatalf("unsolicited FETCH without MODSEQ:\n%s", un)
	}
}

// TestCondStoreHostile sends CONDSTORE and QRESYNC syntax a client should
// not: each is BAD, nothing changes, the session goes on.
func TestCondStoreHostile(t *testing.T) {
	e := newEnv(t, nil)
	fill5(e)
	c := e.login()
	if got, all := c.status("SELECT INBOX (QRESYNC (1 1))"); got != "BAD" {
		t.Fatalf("QRESYNC before ENABLE: %s", all)
	}
	c.ok("SELECT INBOX")
	for _, cmd := range []string{
		"FETCH 1 (FLAGS) (CHANGEDSINCE)",
		"FETCH 1 (FLAGS) (CHANGEDSINCE 0)",
		"FETCH 1 (FLAGS) (CHANGEDSINCE 99999999999999999999999)",
		"FETCH 1 (FLAGS) (CHANGEDSINCE -1)",
		"FETCH 1 (FLAGS) (FROB 1)",
		"UID FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)", // QRESYNC not enabled
		`STORE 1 (UNCHANGEDSINCE x) +FLAGS (\Seen)`,
		`STORE 1 (FROB 1) +FLAGS (\Seen)`,
		`STORE 1 (UNCHANGEDSINCE 1 +FLAGS (\Seen)`,
		"SEARCH MODSEQ",
		`SEARCH MODSEQ "/flags/\\seen" bogus 1`,
		"SELECT INBOX (FROB)",
	} {
		if got, all := c.status("%s", cmd); got != "BAD" {
			t.Errorf("%s: %s", cmd, all)
		}
	}
	c.ok("ENABLE QRESYNC")
	c.ok("SELECT INBOX")
	for _, cmd := range []string{
		"FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)", // not UID FETCH
		"UID FETCH 1:* (FLAGS) (VANISHED)",            // no CHANGEDSINCE
		"SELECT INBOX (QRESYNC (0 1))",
		"SELECT INBOX (QRESYNC (1 1 1:x))",
		"SELECT INBOX (QRESYNC (1 1 1:5 (1:2)))",
	} {
		if got, all := c.status("%s", cmd); got != "BAD" {
			t.Errorf("%s: %s", cmd, all)
		}
	}
	if un := e.login(); un == nil {
		t.Fatal("no session")
	}
	c.ok("SELECT INBOX")
	if un := c.ok(`FETCH 1:* (FLAGS)`); strings.Count(un, "FLAGS ()") != 5 {
		t.Fatalf("flags changed by refused commands:\n%s", un)
	}
}

// TestQResync follows RFC 7162 3.2 over a real connection: ENABLE QRESYNC,
// VANISHED instead of EXPUNGE, SELECT (QRESYNC ...) with VANISHED (EARLIER)
// and the changed flags, UID FETCH (CHANGEDSINCE ... VANISHED).
func TestQResync(t *testing.T) {
	e := newEnv(t, nil)
	fill5(e)
	// Another session claims \Recent (RFC 3501 2.3.2), so the flags
	// below are the stored ones.
	e.login().ok("SELECT INBOX")
	c := e.login()
	if un := c.ok("ENABLE QRESYNC"); !strings.Contains(un, "* ENABLED QRESYNC") {
		t.Fatalf("ENABLE QRESYNC: %s", un)
	}
	un := c.ok("SELECT INBOX")
	hms := highestModSeq(t, un)
	uv := regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(un)[1]

	// Expunges in this session come as VANISHED.
	c.ok(`STORE 2,4 +FLAGS.SILENT (\Deleted)`)
	un = c.ok("EXPUNGE")
	if !strings.Contains(un, "* VANISHED 2,4") || strings.Contains(un, "EXPUNGE") {
		t.Fatalf("EXPUNGE after ENABLE QRESYNC:\n%s", un)
	}
	// ... and from another session, at the next NOOP.
	o := e.login()
	o.ok("SELECT INBOX")
	o.ok(`UID STORE 3 +FLAGS.SILENT (\Deleted)`)
	o.ok("EXPUNGE")
	o.ok(`STORE 1 +FLAGS (\Answered)`)
	un = c.ok("NOOP")
	if !strings.Contains(un, "* VANISHED 3\r\n") || !regexp.MustCompile(`\* 1 FETCH \(UID 1 FLAGS \(\\Answered\) MODSEQ \(\d+\)\)`).MatchString(un) {
		t.Fatalf("NOOP after another session's EXPUNGE:\n%s", un)
	}
	// RFC 7162 3.2.6: UID FETCH with VANISHED.
	un = c.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", hms)
	if !strings.Contains(un, "* VANISHED (EARLIER) 2:4\r\n") || !strings.Contains(un, "* 1 FETCH (UID 1 FLAGS (\\Answered) MODSEQ (") || strings.Contains(un, "UID 5") {
		t.Fatalf("UID FETCH VANISHED:\n%s", un)
	}
	if un = c.ok("UID FETCH 4:5 (FLAGS) (CHANGEDSINCE %d VANISHED)", hms); !strings.Contains(un, "* VANISHED (EARLIER) 4\r\n") {
		t.Fatalf("UID FETCH VANISHED in a range:\n%s", un)
	}

	// RFC 7162 3.2.5.1: a new session resynchronises in its SELECT.
	n := e.login()
	n.ok("ENABLE QRESYNC")
	un = n.ok("SELECT INBOX (QRESYNC (%s %d))", uv, hms)
	iV, iF, iOK := strings.Index(un, "* VANISHED (EARLIER) 2:4"), strings.Index(un, "* 1 FETCH (UID 1 FLAGS (\\Answered) MODSEQ ("), strings.Index(un, "[HIGHESTMODSEQ")
	if iV < 0 || iF < iV || iOK > iV || strings.Contains(un, "UID 5") {
		t.Fatalf("SELECT QRESYNC:\n%s", un)
	}
	// With known UIDs only those are reported; a wrong UIDVALIDITY is a
	// plain SELECT.
	if un = n.ok("SELECT INBOX (QRESYNC (%s %d 1:2 (1:2 1:2)))", uv, hms); !strings.Contains(un, "* VANISHED (EARLIER) 2\r\n") {
		t.Fatalf("SELECT QRESYNC with known UIDs:\n%s", un)
	}
	if un = n.ok("EXAMINE INBOX (QRESYNC (%s %d))", "1", hms); strings.Contains(un, "VANISHED") || strings.Contains(un, "FETCH") {
		t.Fatalf("SELECT QRESYNC with another UIDVALIDITY:\n%s", un)
	}
}
