package imapfront_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailferry/core/imapfront"
	"mailferry/core/store"
)

// cpuCost is the CPU time the process spent while c ran cmd.
func cpuCost(t *testing.T, c *conn, cmd string) time.Duration {
	t.Helper()
	t0 := cpuTime(t)
	c.ok("%s", cmd)
	return cpuTime(t) - t0
}

// cpuTime is the CPU time this process has used (user and system).
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestContextSearchUpdateLargeChange (review1): a STORE or an EXPUNGE of
// every message of a large mailbox with ten UPDATE searches holding them
// all costs about what it costs without them. Each message leaving a
// result was deleted from the result's UID slice one at a time
// (slices.Delete, a copy of the rest of the slice): quadratic, n²/2 UIDs
// moved per search, seconds of CPU for one command, ten times over.
func TestContextSearchUpdateLargeChange(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("large mailbox: -short or the race detector")
	}
	const n = 160000
	e := newEnv(t, nil)
	msgs := make([]*store.NewMessage, n)
	for i := range msgs {
		msgs[i] = &store.NewMessage{Body: []byte(fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i))}
	}
	tx, err := e.st.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.AppendMany(e.inbox().ID, msgs); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	c := e.login()
	c.ok("SELECT INBOX")
	cost := func(cmd string) time.Duration { return cpuCost(t, c, cmd) }
	// The same change of every message without and with ten searches
	// that every message leaves.
	base := cost("STORE 1:* +FLAGS.SILENT (\\Flagged)")
	var tags []string
	for range 10 {
		c.ok("SEARCH RETURN (UPDATE) UNSEEN")
		tags = append(tags, fmt.Sprintf("%q", fmt.Sprintf("t%d", c.tag)))
	}
	store := cost("STORE 1:* +FLAGS.SILENT (\\Seen)")
	c.ok("CANCELUPDATE %s", strings.Join(tags, " "))
	for range 10 {
		c.ok("SEARCH RETURN (UPDATE) ALL")
	}
	c.ok("STORE 1:* +FLAGS.SILENT (\\Deleted)")
	t0 := cpuTime(t)
	un, _ := c.do("EXPUNGE")
	expunge := cpuTime(t) - t0
	if !strings.HasPrefix(un, "* ESEARCH (TAG ") || !strings.Contains(un, fmt.Sprintf(" REMOVEFROM (0 1:%d)", n)) {
		t.Fatalf("EXPUNGE: %.200q", un)
	}
	t.Logf("%d messages: STORE %v CPU without updates, %v with ten leaving them; EXPUNGE with ten %v", n, base, store, expunge)
	if store > base*5/2 {
		t.Errorf("STORE of %d messages: %v CPU with ten UPDATE searches, %v without", n, store, base)
	}
	if expunge > base*4 {
		t.Errorf("EXPUNGE of %d messages: %v CPU with ten UPDATE searches (a STORE of them all without: %v)", n, expunge, base)
	}
}

// TestSectionsOfLargeMessage (review1): a command naming one part of a
// large multipart message many times (CATENATE URLs, FETCH BODY[1]
// items) reads the message's bytes once, not once per name: each reading
// of a 24 MB message (splitting its multipart) took milliseconds, and a
// command of 50 KiB names it 1,000 to 3,000 times. Compared with the same
// command naming a small message's part as often.
func TestSectionsOfLargeMessage(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("large message: -short or the race detector (CPU times ten times larger)")
	}
	e := newEnv(t, nil)
	small := "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\r\nhello\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\nAAAA\r\n--b--\r\n"
	var big strings.Builder
	big.WriteString("Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\r\nhello\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n")
	for big.Len() < 24<<20 {
		big.WriteString(strings.Repeat("A", 76) + "\r\n")
	}
	big.WriteString("--b--\r\n")
	e.put(e.inbox(), small)
	e.put(e.inbox(), big.String())
	c := e.login()
	c.ok("SELECT INBOX")
	cost := func(cmd string) time.Duration { return cpuCost(t, c, cmd) }
	const n = 999
	catSmall := cost(catenateOf(n, "URL /INBOX/;UID=1/;SECTION=1"))
	catBig := cost(catenateOf(n, "URL /INBOX/;UID=2/;SECTION=1"))
	if un := c.ok("FETCH 3:4 BODY.PEEK[]"); strings.Count(un, fmt.Sprintf("{%d}\r\n%s)", 5*n, strings.Repeat("hello", n))) != 2 {
		t.Fatalf("the appended messages: %.300q", un)
	}
	fetch := func(seq int) string {
		return fmt.Sprintf("FETCH %d (%s)", seq, strings.TrimSuffix(strings.Repeat("BODY.PEEK[1] ", n), " "))
	}
	fetchSmall := cost(fetch(1))
	fetchBig := cost(fetch(2))
	t.Logf("%d URLs to part 1: %v CPU of a small message, %v of a %d-byte one; %d FETCH BODY[1]: %v and %v", n, catSmall, catBig, big.Len(), n, fetchSmall, fetchBig)
	if catBig > 2*catSmall+time.Second/2 {
		t.Errorf("CATENATE of %d URLs to part 1 of a %d-byte message: %v CPU; of a small one %v", n, big.Len(), catBig, catSmall)
	}
	if fetchBig > 2*fetchSmall+time.Second/2 {
		t.Errorf("FETCH of %d BODY[1] of a %d-byte message: %v CPU; of a small one %v", n, big.Len(), fetchBig, fetchSmall)
	}
}

// TestUnknownCommandsCANCELUPDATE (review1): the unknown-command path
// that CANCELUPDATE shares (fork change 57) ends a session only where it
// did: before authentication, CANCELUPDATE is an unknown command like any
// other, counted, the tenth answered BAD then BYE; after it, unknown
// commands (and CANCELUPDATE without a selected mailbox, NO) never end
// the session; an HTTP request line still ends it at once.
func TestUnknownCommandsCANCELUPDATE(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial()
	for i := 1; i < 10; i++ {
		if st, all := c.status(`CANCELUPDATE "t%d"`, i); st != "BAD" || strings.Contains(all, "BYE") {
			t.Fatalf("CANCELUPDATE %d before login: %q", i, all)
		}
	}
	c.send("z CANCELUPDATE \"x\"\r\n")
	if got := c.readUntilClosed(); !strings.HasPrefix(got, "z BAD") || !strings.Contains(got, "* BYE") {
		t.Errorf("tenth unknown command before login: %q", got)
	}

	a := e.login()
	for i := range 30 {
		if st, all := a.status("FROB%d x", i); st != "BAD" || strings.Contains(all, "BYE") {
			t.Fatalf("unknown command %d after login: %q", i, all)
		}
	}
	if st, all := a.status(`CANCELUPDATE "x"`); st != "NO" {
		t.Errorf("CANCELUPDATE without a mailbox: %q", all)
	}
	a.ok("SELECT INBOX")
	for range 12 {
		if st, all := a.status(`CANCELUPDATE "nosuch"`); st != "NO" {
			t.Fatalf("CANCELUPDATE of an unknown tag: %q", all)
		}
	}
	a.ok("NOOP")

	h := e.dial()
	h.send("GET / HTTP/1.1\r\n")
	if got := h.readUntilClosed(); !strings.Contains(got, "BAD") || !strings.Contains(got, "* BYE") {
		t.Errorf("HTTP request line: %q", got)
	}
}

// TestCatenateReadCounted (review1): the message a CATENATE URL read, held
// until the command ends, which a client can put off at will (a
// synchronizing literal after the URL, sent minutes later, and another
// URL and literal after it), counts in the account's APPEND memory bound:
// else each of a user's sessions held a message of up to 4 times
// APPENDLIMIT outside it. Given back when the command ends.
func TestCatenateReadCounted(t *testing.T) {
	const limit = 1 << 20
	e := newEnv(t, &envOpts{appendLimit: limit})
	e.put(e.inbox(), "Subject: big\r\n\r\n"+strings.Repeat("x", 700<<10)+"\r\n")
	c := e.login()
	c.send(`a APPEND INBOX CATENATE (URL "/INBOX/;UID=1/;PARTIAL=0.1" TEXT {1}` + "\r\n")
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("continuation: %q", l)
	}
	if held := imapfront.AppendHeld(e.srv, e.acct.ID); held < 700<<10 {
		t.Errorf("while the command waits for its literal, the account holds %d bytes of APPEND memory; the URL read %d", held, 700<<10)
	}
	c.send("y)\r\n")
	if _, tagged := c.until("a"); !strings.Contains(tagged, "OK [APPENDUID") {
		t.Fatalf("APPEND: %q", tagged)
	}
	if held := imapfront.AppendHeld(e.srv, e.acct.ID); held != 0 {
		t.Errorf("after the command, the account holds %d bytes of APPEND memory", held)
	}
	c.ok("SELECT INBOX")
	if un := c.ok("FETCH 2 BODY.PEEK[]"); !strings.Contains(un, "{2}\r\nSy)") {
		t.Errorf("the message appended: %q", un)
	}
}
