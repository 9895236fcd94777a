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
