package imapfront_test

import (
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mailferry/core/imapfront"
	"mailferry/core/internal/pgtest"
)

// CONTEXT=SEARCH (RFC 5267 4): PARTIAL, UPDATE with ADDTO/REMOVEFROM,
// CANCELUPDATE, and what an attacker can make of them (context.go, fork
// change 56).

// tagOf returns the tag of a tagged response line.
func tagOf(tagged string) string { return strings.Fields(tagged)[0] }

// contextMailbox puts n messages in INBOX: message i has subject "n<i>"
// and, for odd i, the word "needle" in its body.
func contextMailbox(e *env, n int) {
	for i := 1; i <= n; i++ {
		body := "hay"
		if i%2 == 1 {
			body = "hay needle hay"
		}
		e.put(e.inbox(), fmt.Sprintf("From: a@example.test\r\nSubject: n%d\r\n\r\n%s\r\n", i, body))
	}
}

// TestContextSearchRFC5267 runs RFC 5267's examples over a real
// connection: PARTIAL (4.4: "UID SEARCH RETURN (PARTIAL 1:500) ..."), an
// UPDATE search told of another session's STORE, APPEND and EXPUNGE and of
// its own (4.3.3, 4.3.4), REMOVEFROM before the EXPUNGE it goes with, and
// CANCELUPDATE (4.3.5).
func TestContextSearchRFC5267(t *testing.T) {
	e := newEnv(t, nil)
	contextMailbox(e, 6)
	c := e.login()
	if caps := c.ok("CAPABILITY"); !strings.Contains(caps, " CONTEXT=SEARCH") {
		t.Fatalf("CONTEXT=SEARCH not offered: %s", caps)
	}
	c.ok("SELECT INBOX")

	// PARTIAL: positions of the result, by sequence number or UID.
	for _, tc := range []struct{ cmd, want string }{
		{"SEARCH RETURN (PARTIAL 1:2) BODY needle", `PARTIAL (1:2 1,3)`},
		{"SEARCH RETURN (PARTIAL 2:500) BODY needle", `PARTIAL (2:500 3,5)`},
		{"UID SEARCH RETURN (PARTIAL 1:500) UNDELETED", `UID PARTIAL (1:500 1:6)`},
		{"SEARCH RETURN (PARTIAL 5:3) ALL", `PARTIAL (3:5 3:5)`},
		{"SEARCH RETURN (PARTIAL 7:9) ALL", `PARTIAL (7:9 NIL)`},
		{"SEARCH RETURN (COUNT PARTIAL 1:1) BODY needle", `PARTIAL (1:1 1) COUNT 3`},
		{"SEARCH RETURN (MIN MAX PARTIAL 2:2) BODY needle", `MIN 1 MAX 5 PARTIAL (2:2 3)`},
		{"SEARCH RETURN (CONTEXT COUNT) ALL", `COUNT 6`},
	} {
		un, tagged := c.do("%s", tc.cmd)
		want := fmt.Sprintf("* ESEARCH (TAG %q) %s\r\n", tagOf(tagged), tc.want)
		if un != want || !strings.Contains(tagged, " OK") {
			t.Errorf("%s:\n got %q %s\nwant %q", tc.cmd, un, tagged, want)
		}
	}
	// SAVE with PARTIAL keeps the messages returned.
	c.ok("SEARCH RETURN (SAVE PARTIAL 2:3) BODY needle")
	if un := c.ok("SEARCH $"); un != "* SEARCH 3 5\r\n" {
		t.Errorf("$ after SAVE PARTIAL 2:3: %q", un)
	}

	// UPDATE: the result now (UPDATE alone: the tag only), then changes.
	un, tagged := c.do("SEARCH RETURN (UPDATE) BODY needle SEEN")
	seqTag := tagOf(tagged)
	if un != fmt.Sprintf("* ESEARCH (TAG %q)\r\n", seqTag) || !strings.Contains(tagged, " OK") {
		t.Fatalf("UPDATE: %q %s", un, tagged)
	}
	un, tagged = c.do("UID SEARCH RETURN (UPDATE ALL) BODY needle")
	uidTag := tagOf(tagged)
	if un != fmt.Sprintf("* ESEARCH (TAG %q) UID ALL 1,3,5\r\n", uidTag) {
		t.Fatalf("UID UPDATE ALL: %q %s", un, tagged)
	}
	// The session's own STORE is told in its answer.
	un = c.ok("STORE 1:4 +FLAGS.SILENT (\\Seen)")
	if want := fmt.Sprintf("* ESEARCH (TAG %q) ADDTO (0 1,3)\r\n", seqTag); un != want {
		t.Errorf("own STORE:\n got %q\nwant %q", un, want)
	}
	// Another session's STORE, APPEND and EXPUNGE, at this one's NOOP.
	o := e.login()
	o.ok("SELECT INBOX")
	o.ok("STORE 1 -FLAGS.SILENT (\\Seen)")
	o.ok("STORE 5 +FLAGS.SILENT (\\Seen)")
	un = c.ok("NOOP")
	for _, want := range []string{
		fmt.Sprintf("* ESEARCH (TAG %q) REMOVEFROM (0 1) ADDTO (0 5)\r\n", seqTag),
		"* 1 FETCH (UID 1 FLAGS (\\Recent))\r\n",
	} {
		if !strings.Contains(un, want) {
			t.Errorf("NOOP after another session's STOREs: no %q in\n%s", want, un)
		}
	}
	if strings.Contains(un, uidTag) {
		t.Errorf("flags are not in the UID search's criteria, yet:\n%s", un)
	}
	o.appendMsg("INBOX", `(\Seen)`, "Subject: n7\r\n\r\nneedle\r\n")
	un = c.ok("NOOP")
	for _, want := range []string{"* 7 EXISTS\r\n",
		fmt.Sprintf("* ESEARCH (TAG %q) ADDTO (0 7)\r\n", seqTag),
		fmt.Sprintf("* ESEARCH (TAG %q) UID ADDTO (0 7)\r\n", uidTag)} {
		if !strings.Contains(un, want) {
			t.Errorf("NOOP after another session's APPEND: no %q in\n%s", want, un)
		}
	}
	if strings.Index(un, "EXISTS") > strings.Index(un, "ADDTO") {
		t.Errorf("ADDTO before the EXISTS that numbers it:\n%s", un)
	}
	o.ok("STORE 3,4 +FLAGS.SILENT (\\Deleted)")
	o.ok("EXPUNGE")
	un = c.ok("NOOP")
	// REMOVEFROM names message 3 as the client knows it, before the
	// EXPUNGE responses renumber the mailbox.
	rm := fmt.Sprintf("* ESEARCH (TAG %q) REMOVEFROM (0 3)\r\n", seqTag)
	urm := fmt.Sprintf("* ESEARCH (TAG %q) UID REMOVEFROM (0 3)\r\n", uidTag)
	if i, j := strings.Index(un, rm), strings.Index(un, "* 3 EXPUNGE"); i < 0 || j < 0 || i > j || !strings.Contains(un, urm) {
		t.Errorf("NOOP after another session's EXPUNGE of 3 and 4:\n%s", un)
	}
	// The session's own EXPUNGE.
	c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)") // 1 is no longer \Seen: not in the first result
	un = c.ok("EXPUNGE")
	if want := fmt.Sprintf("* ESEARCH (TAG %q) UID REMOVEFROM (0 1)\r\n", uidTag); !strings.Contains(un, want) || strings.Contains(un, seqTag+`") REMOVEFROM`) {
		t.Errorf("own EXPUNGE of UID 1: want %q only in\n%s", want, un)
	}
	// CANCELUPDATE: every tag must be known, then none is told again.
	if st, all := c.status(`CANCELUPDATE %q "nosuch"`, seqTag); st != "NO" {
		t.Errorf("CANCELUPDATE of an unknown tag: %s", all)
	}
	if st, all := c.status("CANCELUPDATE"); st != "BAD" {
		t.Errorf("CANCELUPDATE without a tag: %s", all)
	}
	c.ok(`CANCELUPDATE %q %q`, seqTag, uidTag)
	o.ok("STORE 1:* -FLAGS.SILENT (\\Seen)")
	if un := c.ok("NOOP"); strings.Contains(un, "ESEARCH") {
		t.Errorf("ESEARCH after CANCELUPDATE:\n%s", un)
	}
	if st, all := c.status(`CANCELUPDATE %q`, seqTag); st != "NO" {
		t.Errorf("second CANCELUPDATE: %s", all)
	}
	// Updates end with the selected mailbox; CLOSE tells nothing of the
	// messages it expunges (RFC 3501 6.4.2), REMOVEFROM neither.
	c.ok("SEARCH RETURN (UPDATE) SEEN")
	c.ok("STORE 1 +FLAGS.SILENT (\\Seen \\Deleted)")
	if un := c.ok("CLOSE"); un != "" {
		t.Errorf("CLOSE with an UPDATE search holding a deleted message: %q", un)
	}
	c.ok("SELECT INBOX")
	c.ok("SEARCH RETURN (UPDATE) SEEN")
	c.ok("UNSELECT")
	c.ok("SELECT INBOX")
	o.ok("STORE 1 +FLAGS.SILENT (\\Seen)")
	if un := c.ok("NOOP"); strings.Contains(un, "ESEARCH") {
		t.Errorf("ESEARCH after a new SELECT:\n%s", un)
	}
}

// TestContextSearchHostileRanges: PARTIAL ranges that are no range are
// BAD, a huge one is a range like any other, and the options that cannot
// go together are refused, as Dovecot 2.3 answers.
func TestContextSearchHostileRanges(t *testing.T) {
	e := newEnv(t, nil)
	contextMailbox(e, 3)
	c := e.login()
	c.ok("SELECT INBOX")
	for _, cmd := range []string{
		"SEARCH RETURN (PARTIAL 1) ALL",
		"SEARCH RETURN (PARTIAL 1:*) ALL",
		"SEARCH RETURN (PARTIAL *:1) ALL",
		"SEARCH RETURN (PARTIAL 0:5) ALL",
		"SEARCH RETURN (PARTIAL -1:-5) ALL", // RFC 9394's negative ranges are not offered
		"SEARCH RETURN (PARTIAL 1:-5) ALL",
		"SEARCH RETURN (PARTIAL 1:4294967296) ALL",
		"SEARCH RETURN (PARTIAL 99999999999:1) ALL",
		"SEARCH RETURN (PARTIAL +1:+2) ALL",
		"SEARCH RETURN (PARTIAL 1:2:3) ALL",
		"SEARCH RETURN (PARTIAL) ALL",
		"SEARCH RETURN (PARTIAL 1:2 PARTIAL 3:4) ALL",
		"SEARCH RETURN (ALL PARTIAL 1:2) ALL",
		"SEARCH RETURN (UPDATE UPDATE) ALL",
		"SORT RETURN (PARTIAL 1:2) (DATE) UTF-8 ALL", // CONTEXT=SORT is not offered
		"SORT RETURN (UPDATE) (DATE) UTF-8 ALL",
	} {
		if st, all := c.status("%s", cmd); st != "BAD" {
			t.Errorf("%s: %s", cmd, all)
		}
	}
	for _, tc := range []struct{ cmd, want string }{
		{"SEARCH RETURN (PARTIAL 4294967295:1) ALL", `PARTIAL (1:4294967295 1:3)`},
		{"SEARCH RETURN (PARTIAL 4294967295:4294967295) ALL", `PARTIAL (4294967295:4294967295 NIL)`},
		{"UID SEARCH RETURN (PARTIAL 3:3) ALL", `UID PARTIAL (3:3 3)`},
	} {
		un, tagged := c.do("%s", tc.cmd)
		want := fmt.Sprintf("* ESEARCH (TAG %q) %s\r\n", tagOf(tagged), tc.want)
		if un != want || !strings.Contains(tagged, " OK") {
			t.Errorf("%s:\n got %q %s\nwant %q", tc.cmd, un, tagged, want)
		}
	}
	// An UPDATE's tag names it: a second search under the same tag is BAD.
	c.send("dup SEARCH RETURN (UPDATE) ALL\r\n")
	if _, tagged := c.until("dup"); !strings.Contains(tagged, "OK") {
		t.Fatalf("first UPDATE: %s", tagged)
	}
	c.send("dup SEARCH RETURN (UPDATE) ALL\r\n")
	if _, tagged := c.until("dup"); !strings.HasPrefix(tagged, "dup BAD") {
		t.Errorf("second UPDATE under the same tag: %s", tagged)
	}
	// CANCELUPDATE takes quoted tags only; before login it is unknown.
	if st, all := c.status("CANCELUPDATE dup"); st != "BAD" {
		t.Errorf("CANCELUPDATE with an atom: %s", all)
	}
	n := e.dial()
	if st, all := n.status(`CANCELUPDATE "dup"`); st != "BAD" {
		t.Errorf("CANCELUPDATE before login: %s", all)
	}
}

// TestContextSearchUpdateLimit: thousands of UPDATE searches in one
// session keep 10; the others are answered untagged NO [NOUPDATE "tag"]
// and run once, and a change is told at most 10 times.
func TestContextSearchUpdateLimit(t *testing.T) {
	e := newEnv(t, nil)
	contextMailbox(e, 3)
	c := e.login()
	c.ok("SELECT INBOX")
	var pipe strings.Builder
	const n = 2000
	for i := 0; i < n; i++ {
		fmt.Fprintf(&pipe, "u%d SEARCH RETURN (UPDATE COUNT) SEEN\r\n", i)
	}
	done := c.sendAll(pipe.String())
	refused := 0
	for i := 0; i < n; i++ {
		un, tagged := c.until(fmt.Sprintf("u%d", i))
		if !strings.Contains(tagged, " OK") {
			t.Fatalf("u%d: %s", i, tagged)
		}
		noUpdate := strings.Contains(un, fmt.Sprintf(`* NO [NOUPDATE "u%d"]`, i))
		if noUpdate != (i >= 10) {
			t.Fatalf("u%d: NOUPDATE %v:\n%s", i, noUpdate, un)
		}
		if noUpdate {
			refused++
		}
		if !strings.Contains(un, fmt.Sprintf(`* ESEARCH (TAG "u%d") COUNT 0`, i)) {
			t.Fatalf("u%d: no result:\n%s", i, un)
		}
	}
	<-done
	if refused != n-10 {
		t.Errorf("%d refused, want %d", refused, n-10)
	}
	un := c.ok("STORE 2 +FLAGS.SILENT (\\Seen)")
	if got := strings.Count(un, "ADDTO (0 2)"); got != 10 {
		t.Errorf("%d ADDTO for one change, want 10:\n%s", got, un)
	}
	// A cancelled update frees its place.
	c.ok(`CANCELUPDATE "u3"`)
	c.send("u3 SEARCH RETURN (UPDATE) SEEN\r\n")
	if un, _ := c.until("u3"); strings.Contains(un, "NOUPDATE") {
		t.Errorf("after CANCELUPDATE: %s", un)
	}
	c.send("u4000 SEARCH RETURN (UPDATE) SEEN\r\n")
	if un, _ := c.until("u4000"); !strings.Contains(un, `* NO [NOUPDATE "u4000"]`) {
		t.Errorf("an 11th: %s", un)
	}
}

// TestContextSearchUpdateCost: an UPDATE search with a costly key (TEXT)
// on a mailbox of 400 messages matches only the messages that changed,
// once for all the session's searches, and reads a message's bytes only
// when its flags let the costly key decide; the session's own STORE is
// matched once, not again at the sync after it.
func TestContextSearchUpdateCost(t *testing.T) {
	e := newEnv(t, nil)
	contextMailbox(e, 400)
	c := e.login()
	c.ok("SELECT INBOX")
	c.ok("SEARCH RETURN (UPDATE) FLAGGED TEXT needle")
	o := e.login()
	o.ok("SELECT INBOX")
	counts := func(what string, f func()) {
		t.Helper()
		ev0, ld0 := imapfront.SearchUpdateCounts()
		f()
		ev1, ld1 := imapfront.SearchUpdateCounts()
		if want := strings.Fields(what); fmt.Sprint(ev1-ev0) != want[0] || fmt.Sprint(ld1-ld0) != want[1] {
			t.Errorf("%s: %d matched again, %d read; want %s and %s", what[4:], ev1-ev0, ld1-ld0, want[0], want[1])
		}
	}
	// \Seen on an unflagged message: FLAGGED decides, the body is not read.
	counts("1 0 another session's \\Seen on 7", func() {
		o.ok("STORE 7 +FLAGS.SILENT (\\Seen)")
		if un := c.ok("NOOP"); un != "* 7 FETCH (UID 7 FLAGS (\\Seen \\Recent))\r\n" {
			t.Errorf("NOOP: %q", un)
		}
	})
	c.ok("SEARCH RETURN (UPDATE) TEXT needle")
	counts("1 1 another session's \\Flagged on 9", func() {
		o.ok("STORE 9 +FLAGS.SILENT (\\Flagged)")
		if un := c.ok("NOOP"); !strings.Contains(un, "ADDTO (0 9)") {
			t.Errorf("NOOP after \\Flagged on 9 (needle): %q", un)
		}
	})
	counts("1 1 own \\Flagged on 11", func() {
		if un := c.ok("STORE 11 +FLAGS.SILENT (\\Flagged)"); !strings.Contains(un, "ADDTO (0 11)") {
			t.Errorf("own STORE \\Flagged on 11 (needle): %q", un)
		}
		c.ok("NOOP")
	})
}

// TestContextSearchUpdateSlowReader: a session with UPDATE searches in
// IDLE that stops reading its socket holds up neither the session making
// the changes nor the server's memory: its answers are written to the
// socket as they come (when it is full the session's write waits, up to
// the 30 s write timeout that ends it), nothing queues in memory; changes
// made meanwhile are read from the store at its next sync. When it reads
// again, the ADDTO and REMOVEFROM it got, applied in order, give the
// result a new SEARCH gives.
func TestContextSearchUpdateSlowReader(t *testing.T) {
	e := newEnv(t, nil)
	contextMailbox(e, 300)
	c := e.login()
	c.ok("SELECT INBOX")
	var tags []string
	for i := 0; i < 10; i++ {
		_, tagged := c.do("SEARCH RETURN (UPDATE) SEEN")
		tags = append(tags, tagOf(tagged))
	}
	c.send("idle IDLE\r\n")
	if l := c.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	// c reads no more until the STOREs are done: 600 rounds of FETCH
	// FLAGS for 150 messages and ten REMOVEFROM or ADDTO of 150 numbers
	// (about 12 KB a round when each is told; the IDLE session's syncs
	// take several rounds at once when its writes wait).
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	o := e.login()
	o.ok("SELECT INBOX")
	var odd []string
	for i := 1; i <= 300; i += 2 {
		odd = append(odd, fmt.Sprint(i))
	}
	set := strings.Join(odd, ",")
	start := time.Now()
	const rounds = 600
	for i := 0; i < rounds; i++ {
		op := "+"
		if i%2 == 1 {
			op = "-"
		}
		if i == rounds-1 {
			set = "1:7" // the last: a result that is no repeat
		}
		o.ok("STORE %s %sFLAGS.SILENT (\\Seen)", set, op)
	}
	took := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	grew := int64(ms.HeapAlloc) - int64(before)
	t.Logf("%d STOREs in %v while the IDLE session read nothing; heap %+d KiB", rounds, took, grew/1024)
	if grew > 32<<20 {
		t.Errorf("heap grew %d MiB while a client read nothing", grew>>20)
	}
	// Read again: apply each search's updates in order.
	c.send("DONE\r\n") // IDLE's answer syncs the view: the last change is in it
	un, tagged := c.until("idle")
	if !strings.Contains(tagged, "OK") {
		t.Fatalf("IDLE: %s", tagged)
	}
	t.Logf("the IDLE session then read %d KiB", len(un)/1024)
	results := map[string]map[uint32]bool{}
	for _, tag := range tags {
		results[tag] = map[uint32]bool{}
	}
	for _, l := range strings.Split(un, "\r\n") {
		if tag, ok := searchUpdateOf(l); ok && results[tag] != nil {
			applySearchUpdate(t, l, results[tag])
		}
	}
	want := map[uint32]bool{}
	for _, n := range strings.Fields(strings.TrimPrefix(strings.TrimSpace(c.ok("SEARCH SEEN")), "* SEARCH")) {
		var v uint32
		fmt.Sscan(n, &v)
		want[v] = true
	}
	for _, tag := range tags {
		if got := results[tag]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("search %s after its updates: %v, SEARCH SEEN: %v", tag, got, want)
		}
	}
}

// searchUpdateOf returns the tag of an ESEARCH line.
func searchUpdateOf(l string) (tag string, ok bool) {
	_, err := fmt.Sscanf(l, "* ESEARCH (TAG %q)", &tag)
	return tag, err == nil
}

// applySearchUpdate applies an ESEARCH line's REMOVEFROM, then its ADDTO,
// to a result (the numbers in it).
func applySearchUpdate(t *testing.T, l string, result map[uint32]bool) {
	rest := l[strings.Index(l, ")")+1:]
	for _, part := range []struct {
		key string
		in  bool
	}{{"REMOVEFROM (0 ", false}, {"ADDTO (0 ", true}} {
		i := strings.Index(rest, part.key)
		if i < 0 {
			continue
		}
		nums := rest[i+len(part.key):]
		for _, n := range expandSet(t, nums[:strings.Index(nums, ")")]) {
			if part.in {
				result[n] = true
			} else {
				delete(result, n)
			}
		}
	}
}

// expandSet expands a sequence set without "*".
func expandSet(t *testing.T, s string) []uint32 {
	var out []uint32
	for _, r := range strings.Split(s, ",") {
		var a, b uint32
		if n, _ := fmt.Sscanf(r, "%d:%d", &a, &b); n == 2 {
			for i := min(a, b); i <= max(a, b); i++ {
				out = append(out, i)
			}
		} else if _, err := fmt.Sscan(r, &a); err == nil {
			out = append(out, a)
		} else {
			t.Fatalf("set %q", s)
		}
	}
	return out
}

// TestPythonImaplibContext drives CONTEXT=SEARCH with Python's imaplib
// (testdata/imaplib_context.py): PARTIAL, an UPDATE search told of another
// connection's STORE, EXPUNGE and APPEND, CANCELUPDATE; on SQLite and on
// PostgreSQL (skipped without the fixture, failed with
// MAILFERRY_REQUIRE_POSTGRES=1), and across two nodes on one PostgreSQL
// database: an UPDATE search in IDLE on one told of a STORE on the other.
func TestPythonImaplibContext(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			o := &envOpts{}
			if engine == "postgres" {
				o.databaseURL = pgtest.URL(t)
			}
			e := newEnv(t, o)
			host, port, _ := net.SplitHostPort(e.addr)
			cmd := exec.Command(py, "testdata/imaplib_context.py")
			cmd.Env = append(os.Environ(), "IMAP_HOST="+host, "IMAP_PORT="+port, "IMAP_USER="+user, "IMAP_PASS="+pass)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "imaplib context OK") {
				t.Fatalf("imaplib: %v\n%s", err, out)
			}
		})
	}
	t.Run("across-nodes", func(t *testing.T) {
		nodeA := newEnv(t, &envOpts{databaseURL: pgtest.URL(t)})
		nodeB := newEnv(t, &envOpts{peer: nodeA})
		contextMailbox(nodeA, 4)
		b := nodeB.login()
		b.ok("SELECT INBOX")
		_, tagged := b.do("UID SEARCH RETURN (UPDATE) SEEN")
		tag := tagOf(tagged)
		b.send("i1 IDLE\r\n")
		if l := b.line(); !strings.HasPrefix(l, "+ ") {
			t.Fatalf("IDLE: %q", l)
		}
		a := nodeA.login()
		a.ok("SELECT INBOX")
		a.ok("STORE 2 +FLAGS.SILENT (\\Seen)")
		want := fmt.Sprintf("* ESEARCH (TAG %q) UID ADDTO (0 2)", tag)
		for {
			l := b.line() // 10 s at most
			if l == want {
				break
			}
			if !strings.HasPrefix(l, "* 2 FETCH") {
				t.Fatalf("IDLE on node B after a STORE on node A: %q, want %q", l, want)
			}
		}
		b.send("DONE\r\n")
		if _, tagged := b.until("i1"); !strings.HasPrefix(tagged, "i1 OK") {
			t.Fatal(tagged)
		}
	})
}

// The side-by-side script of CONTEXT=SEARCH (TestSideBySide,
// MAILFERRY_IMAP_SIDEBYSIDE_ONLY=context-search): PARTIAL, its broken
// ranges, UPDATE told of the session's own and another session's changes,
// REMOVEFROM with EXPUNGE, NOUPDATE past the limit, CANCELUPDATE.
func init() {
	sideScripts = append(sideScripts, struct {
		name string
		run  func(sd *side)
	}{"context-search", func(sd *side) {
		a := sd.login()
		a.x("CREATE %s", sd.box)
		for i := 1; i <= 6; i++ {
			a.appendx(sd.box, "", msgN(i))
		}
		a.x("SELECT %s", sd.box)
		a.x("SEARCH RETURN (PARTIAL 2:4) ALL")
		a.x("SEARCH RETURN (PARTIAL 5:2) ALL")
		a.x("UID SEARCH RETURN (PARTIAL 6:9 COUNT) ALL")
		a.x("SEARCH RETURN (PARTIAL 9:10) ALL")
		a.x("SEARCH RETURN (MIN MAX PARTIAL 1:1) BODY body")
		a.x("SEARCH RETURN (PARTIAL 1:4294967295) ALL")
		a.x("SEARCH RETURN (PARTIAL 0:1) ALL")
		a.x("SEARCH RETURN (PARTIAL 1:4294967296) ALL")
		a.x("SEARCH RETURN (PARTIAL -1:-2) ALL")
		a.x("SEARCH RETURN (PARTIAL 1:2 ALL) ALL")
		a.x("SEARCH RETURN (SAVE PARTIAL 2:3) ALL")
		a.x("SEARCH $")
		a.x("SEARCH RETURN (UPDATE) SEEN")
		a.x("UID SEARCH RETURN (UPDATE ALL) OR SEEN FLAGGED")
		a.x("STORE 1,3 +FLAGS (\\Seen)")
		sd.note("B changes, A polls")
		b := sd.login()
		b.x("SELECT %s", sd.box)
		b.x("STORE 2 +FLAGS (\\Flagged)")
		b.x("STORE 1 -FLAGS (\\Seen)")
		a.x("NOOP")
		b.appendx(sd.box, `(\Seen)`, msgN(7))
		a.x("NOOP")
		b.x("STORE 3 +FLAGS (\\Deleted)")
		b.x("EXPUNGE")
		a.x("NOOP")
		sd.note("A expunges")
		a.x("STORE 1 +FLAGS (\\Deleted)")
		a.x("EXPUNGE")
		sd.note("past the limit of updates")
		for i := 0; i < 9; i++ {
			a.x("SEARCH RETURN (UPDATE COUNT) DELETED")
		}
		a.x("CANCELUPDATE \"nosuch\"")
		a.x("CANCELUPDATE \"t999\"")
		a.x("UNSELECT")
		a.x("DELETE %s", sd.box)
	}})
}

// TestContextSearchUpdateConcurrent: five sessions STORE, APPEND and
// EXPUNGE on one mailbox at once while a sixth keeps two UPDATE searches
// (one by sequence number, one by UID) and polls, STOREing now and then
// itself. Applied in the order they come, with each EXPUNGE renumbering the
// sequence-number result (a REMOVEFROM must come before the EXPUNGE of a
// message in it), its ADDTO and REMOVEFROM give at the end what a new
// SEARCH gives.
func TestContextSearchUpdateConcurrent(t *testing.T) {
	e := newEnv(t, nil)
	contextMailbox(e, 40)
	obs := e.login()
	obs.ok("SELECT INBOX")
	_, tagged := obs.do("SEARCH RETURN (UPDATE ALL) SEEN")
	seqTag := tagOf(tagged)
	_, tagged = obs.do("UID SEARCH RETURN (UPDATE ALL) FLAGGED NOT SEEN")
	uidTag := tagOf(tagged)
	// Start from the results the observer has now.
	seqs, uids := map[uint32]bool{}, map[uint32]bool{}
	updates, expunges := 0, 0
	apply := func(un string) {
		for _, l := range strings.Split(un, "\r\n") {
			var n uint32
			if _, err := fmt.Sscanf(l, "* %d EXPUNGE", &n); err == nil {
				expunges++
				if seqs[n] {
					t.Errorf("EXPUNGE of %d, still in the result (no REMOVEFROM before it)", n)
				}
				next := map[uint32]bool{}
				for s := range seqs {
					if s > n {
						next[s-1] = true
					} else if s < n {
						next[s] = true
					}
				}
				seqs = next
				continue
			}
			tag, ok := searchUpdateOf(l)
			if !ok || (tag != seqTag && tag != uidTag) {
				continue // not an update, or a search's own result
			}
			set := seqs
			if tag == uidTag {
				set = uids
			}
			updates++
			applySearchUpdate(t, l, set)
		}
	}
	seed := func(un, kind string) {
		for _, l := range strings.Split(un, "\r\n") {
			if i := strings.Index(l, " ALL "); i >= 0 && strings.HasPrefix(l, "* ESEARCH") {
				for _, n := range expandSet(t, l[i+5:]) {
					if kind == "uid" {
						uids[n] = true
					} else {
						seqs[n] = true
					}
				}
			}
		}
	}
	seed(obs.ok("SEARCH RETURN (ALL) SEEN"), "seq")
	seed(obs.ok("UID SEARCH RETURN (ALL) FLAGGED NOT SEEN"), "uid")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for w := 0; w < 5; w++ {
		c := e.login()
		c.ok("SELECT INBOX")
		wg.Add(1)
		go func(w int, c *conn) {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(int64(w)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				var cmd string
				switch k := rnd.Intn(10); {
				case k < 6:
					cmd = fmt.Sprintf("UID STORE %d %sFLAGS.SILENT (%s)", 1+rnd.Intn(60), []string{"+", "-"}[rnd.Intn(2)], []string{`\Seen`, `\Flagged`}[rnd.Intn(2)])
				case k < 8:
					c.appendMsg("INBOX", []string{"()", `(\Seen)`, `(\Flagged)`}[rnd.Intn(3)], "Subject: new\r\n\r\nx\r\n")
					continue
				default:
					cmd = fmt.Sprintf("UID STORE %d +FLAGS.SILENT (\\Deleted)", 1+rnd.Intn(60))
					if _, tagged := c.do("%s", cmd); !strings.Contains(tagged, " OK") {
						errs <- cmd + ": " + tagged
					}
					cmd = "EXPUNGE"
				}
				if _, tagged := c.do("%s", cmd); !strings.Contains(tagged, " OK") {
					select {
					case errs <- cmd + ": " + tagged:
					default:
					}
				}
			}
		}(w, c)
	}
	deadline := time.Now().Add(3 * time.Second)
	rnd := rand.New(rand.NewSource(99))
	for time.Now().Before(deadline) {
		if rnd.Intn(4) == 0 {
			un, tagged := obs.do("UID STORE %d %sFLAGS.SILENT (\\Seen)", 1+rnd.Intn(60), []string{"+", "-"}[rnd.Intn(2)])
			if !strings.Contains(tagged, " OK") {
				t.Errorf("observer STORE: %s", tagged)
			}
			apply(un)
			continue
		}
		apply(obs.ok("NOOP"))
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	apply(obs.ok("NOOP"))
	t.Logf("%d ESEARCH updates and %d EXPUNGE applied", updates, expunges)
	want := func(cmd string) string {
		un := obs.ok("%s", cmd)
		apply(un) // nothing but the result: the view is up to date
		for _, l := range strings.Split(un, "\r\n") {
			if i := strings.Index(l, " ALL "); i >= 0 {
				return fmt.Sprint(expandSet(t, l[i+5:]))
			}
		}
		return "[]"
	}
	sorted := func(m map[uint32]bool) string {
		var out []uint32
		for n := range m {
			out = append(out, n)
		}
		slices.Sort(out)
		if out == nil {
			return "[]"
		}
		return fmt.Sprint(out)
	}
	if got, w := sorted(seqs), want("SEARCH RETURN (ALL) SEEN"); got != w {
		t.Errorf("sequence-number result after its updates:\n%s\nSEARCH SEEN:\n%s", got, w)
	}
	if got, w := sorted(uids), want("UID SEARCH RETURN (ALL) FLAGGED NOT SEEN"); got != w {
		t.Errorf("UID result after its updates:\n%s\nUID SEARCH:\n%s", got, w)
	}
}

// BenchmarkSearchUpdateChange: what another session's STORE of one message
// costs a session that polls (NOOP) on a mailbox of 2,000 messages,
// without UPDATE searches and with ten of TEXT (the costliest key: each
// matched message's bytes read and parsed), beside one SEARCH TEXT of the
// whole mailbox, what a client without CONTEXT=SEARCH sends instead. An
// op is the STORE and the NOOP.
func BenchmarkSearchUpdateChange(b *testing.B) {
	e := newEnv(b, nil)
	contextMailbox(e, 2000)
	for _, bc := range []struct {
		name    string
		updates int
		search  bool
	}{{"no-updates", 0, false}, {"10-text-updates", 10, false}, {"search-text-instead", 0, true}} {
		b.Run(bc.name, func(b *testing.B) {
			c := e.login()
			c.ok("SELECT INBOX")
			for i := 0; i < bc.updates; i++ {
				c.ok("SEARCH RETURN (UPDATE) TEXT needle%d", i)
			}
			o := e.login()
			o.ok("SELECT INBOX")
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				o.ok("STORE 7 %sFLAGS.SILENT (\\Flagged)", []string{"+", "-"}[i%2])
				c.ok("NOOP")
				if bc.search {
					c.ok("SEARCH TEXT needle")
				}
			}
		})
	}
}
