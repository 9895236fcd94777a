package imapfront_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"mailferry/core/imapfront"
)

// bigInbox fills e's INBOX with n messages of 1 MiB of text (one message
// copied: one blob), which SEARCH TEXT reads and searches whole.
func bigInbox(t *testing.T, e *env, n int) {
	t.Helper()
	var body strings.Builder
	body.WriteString("From: a@example.test\r\nSubject: big\r\nContent-Type: text/plain\r\n\r\n")
	for i := 0; body.Len() < 1<<20; i++ {
		fmt.Fprintf(&body, "line %07d of a long text that nobody searches for in the end\r\n", i)
	}
	inbox := e.inbox()
	uids := []uint32{e.put(inbox, body.String()).UID}
	for len(uids) < n {
		pairs, err := e.st.Copy(context.Background(), inbox.ID, uids[:min(len(uids), n-len(uids))], inbox.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pairs {
			uids = append(uids, p.Dst)
		}
	}
}

const searchAbsent = `SEARCH TEXT "needle-not-there"`

// A client that sends SEARCH TEXT over a big mailbox (200 messages of
// 1 MiB of text, each read and searched) and hangs up does not leave the
// search running to its end: its reads of the store take the
// connection's context, cancelled when the connection ends. Measured in
// CPU time, from the hang-up to the end of the session, against a whole
// search's; another session goes on.
func TestHangupStopsSearch(t *testing.T) {
	e := newEnv(t, nil)
	n := 200
	if raceEnabled {
		n = 40 // ten times slower: a whole search well within the client's deadline
	}
	bigInbox(t, e, n)
	c1 := e.login()
	c1.ok("SELECT INBOX")
	cpu0, start := cpuTime(t), time.Now()
	if un := c1.ok(searchAbsent); strings.TrimSpace(un) != "* SEARCH" {
		t.Fatalf("search found %q", un)
	}
	full, fullWall := cpuTime(t)-cpu0, time.Since(start)

	c2 := e.login()
	c2.ok("SELECT INBOX")
	if n := imapfront.OpenSessions(e.srv); n != 2 {
		t.Fatalf("%d sessions open, want 2", n)
	}
	c2.send("h1 " + searchAbsent + "\r\n")
	cpu0, start = cpuTime(t), time.Now()
	c2.c.Close()
	for imapfront.OpenSessions(e.srv) > 1 {
		if time.Since(start) > 2*time.Minute {
			t.Fatal("the session that hung up still open after 2 minutes")
		}
		time.Sleep(2 * time.Millisecond)
	}
	after, afterWall := cpuTime(t)-cpu0, time.Since(start)
	t.Logf("whole search: %v CPU, %v; after the hang-up: %v CPU, %v", full, fullWall, after, afterWall)
	if after > full/4 {
		t.Errorf("after the hang-up the session used %v of CPU (%v), a whole search %v", after, afterWall, full)
	}
	c1.ok("NOOP")
}

// The watch for a hang-up reads the connection while a command runs: a
// command the client sends meanwhile (pipelined, or TLS records) is kept
// for the server's next read, and answered after the long one, in clear
// and under implicit TLS; the session goes on with its deadlines.
func TestHangupWatchKeepsPipelined(t *testing.T) {
	cfg, err := imapfront.SelfSignedTLS(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, &envOpts{tls: cfg})
	bigInbox(t, e, 30) // a search of 0.1-0.3 s (3 s under the race detector)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.srv.ServeTLS(ln)
	for _, implicit := range []bool{false, true} {
		var c *conn
		if implicit {
			c = dialAddr(t, ln.Addr().String())
			tc := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true})
			c.c, c.r = tc, bufio.NewReader(tc)
			if g := c.line(); !strings.HasPrefix(g, "* OK ") {
				t.Fatalf("greeting %q", g)
			}
			c.ok("LOGIN %s %s", user, pass)
		} else {
			c = e.login()
		}
		c.ok("SELECT INBOX")
		for round := 0; round < 3; round++ {
			watches := imapfront.HangupWatches()
			c.send("a1 " + searchAbsent + "\r\n")
			start := time.Now()
			for imapfront.HangupWatches() == watches {
				if time.Since(start) > time.Minute {
					t.Fatal("no watch started during a long SEARCH")
				}
				time.Sleep(time.Millisecond)
			}
			c.send("a2 FETCH 3 (UID RFC822.SIZE)\r\na3 NOOP\r\n")
			un, tagged := c.until("a1")
			if strings.TrimSpace(un) != "* SEARCH" || !strings.HasPrefix(tagged, "a1 OK") {
				t.Fatalf("implicit TLS %v: SEARCH answered %q %q", implicit, un, tagged)
			}
			if un, tagged = c.until("a2"); !strings.Contains(un, "* 3 FETCH (UID 3 RFC822.SIZE ") || !strings.HasPrefix(tagged, "a2 OK") {
				t.Fatalf("implicit TLS %v: FETCH sent during the SEARCH answered %q %q", implicit, un, tagged)
			}
			if _, tagged = c.until("a3"); !strings.HasPrefix(tagged, "a3 OK") {
				t.Fatalf("implicit TLS %v: NOOP answered %q", implicit, tagged)
			}
		}
		c.ok("NOOP")
		c.send("z LOGOUT\r\n")
		if _, tagged := c.until("z"); !strings.HasPrefix(tagged, "z OK") {
			t.Fatalf("LOGOUT: %q", tagged)
		}
	}
}

// What a client sends while a watched command runs reaches the server as
// if nobody had read it: an APPEND's synchronizing literal (sent after
// the + that comes once the SEARCH is done) and a LITERAL+ one of 300 KB
// (more than the watch keeps) give the exact bytes; an IDLE sent along
// waits for its DONE; a line over the command bound is still answered
// BAD and its tail never run as a command.
func TestHangupWatchLiteralsIdleTooLong(t *testing.T) {
	e := newEnv(t, nil)
	bigInbox(t, e, 30)
	c := e.login()
	c.ok("SELECT INBOX")
	c.ok("CREATE Dst")
	c.ok("CREATE Trash")
	during := func(tag string) {
		t.Helper()
		w := imapfront.HangupWatches()
		c.send(tag + " " + searchAbsent + "\r\n")
		for start := time.Now(); imapfront.HangupWatches() == w; time.Sleep(time.Millisecond) {
			if time.Since(start) > time.Minute {
				t.Fatal("no watch started during a long SEARCH")
			}
		}
	}
	searched := func(tag string) {
		t.Helper()
		if un, tagged := c.until(tag); strings.TrimSpace(un) != "* SEARCH" || !strings.HasPrefix(tagged, tag+" OK") {
			t.Fatalf("%s: %q %q", tag, un, tagged)
		}
	}
	body := "From: x@example.test\r\nSubject: lit\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 17000)

	during("a1")
	c.send(fmt.Sprintf("a2 APPEND Dst {%d}\r\n", len(body)))
	searched("a1")
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND's literal: %q, want a continuation request", l)
	}
	c.send(body + "\r\n")
	if _, tagged := c.until("a2"); !strings.HasPrefix(tagged, "a2 OK") {
		t.Fatalf("APPEND: %q", tagged)
	}

	during("b1")
	sent := c.sendAll(fmt.Sprintf("b2 APPEND Dst {%d+}\r\n%s\r\nb3 NOOP\r\n", len(body), body))
	searched("b1")
	for _, tag := range []string{"b2", "b3"} {
		if _, tagged := c.until(tag); !strings.HasPrefix(tagged, tag+" OK") {
			t.Fatalf("%s: %q", tag, tagged)
		}
	}
	<-sent

	during("c1")
	c.send("c2 IDLE\r\n")
	searched("c1")
	if l := c.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	c.send("DONE\r\n")
	if _, tagged := c.until("c2"); !strings.HasPrefix(tagged, "c2 OK") {
		t.Fatalf("IDLE: %q", tagged)
	}

	during("d1")
	sent = c.sendAll("d2 SEARCH TEXT \"" + strings.Repeat("a", 200000) + " DELETE \"Trash\"\r\nd3 NOOP\r\n")
	searched("d1")
	if un, tagged := c.until("d3"); !strings.HasPrefix(un, "d2 BAD ") || strings.Count(un, "\n") != 1 || !strings.HasPrefix(tagged, "d3 OK") {
		t.Fatalf("a line of 200,000 bytes: %.200q then %q, want d2 BAD alone, then d3 OK", un, tagged)
	}
	<-sent
	if _, err := e.st.Mailbox(context.Background(), e.acct.ID, "Trash"); err != nil {
		t.Fatalf("Trash after the over-long line: %v", err)
	}

	c.ok("SELECT Dst")
	un := c.ok("FETCH 1:* BODY.PEEK[]")
	if n := strings.Count(un, body); n != 2 {
		t.Fatalf("%d of the 2 APPENDed messages found byte for byte", n)
	}
}
