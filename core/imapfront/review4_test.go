package imapfront_test

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"mailferry/core/internal/pgtest"
	"mailferry/core/store"
)

// eachEngine runs fn with a session's store e and the store another
// session writes through, each a subtest: the same store, another store on the same
// SQLite file (`mailferry migrate` or a second serve beside it), one
// PostgreSQL node, two nodes.
func eachEngine(t *testing.T, fn func(t *testing.T, e, other *env)) {
	t.Run("sqlite", func(t *testing.T) {
		e := newEnv(t, nil)
		fn(t, e, e)
	})
	t.Run("sqlite-two-stores", func(t *testing.T) {
		e := newEnv(t, nil)
		fn(t, e, newEnv(t, &envOpts{peer: e}))
	})
	t.Run("postgres", func(t *testing.T) {
		e := newEnv(t, &envOpts{databaseURL: pgtest.URL(t)})
		fn(t, e, e)
	})
	t.Run("postgres-two-nodes", func(t *testing.T) {
		e := newEnv(t, &envOpts{databaseURL: pgtest.URL(t)})
		fn(t, e, newEnv(t, &envOpts{peer: e}))
	})
}

// noopCollect sends NOOPs until what they told, together, contains want
// (or 10 s passed), and returns all of it.
func noopCollect(c *conn, want string) string {
	c.t.Helper()
	var all strings.Builder
	deadline := time.Now().Add(10 * time.Second)
	for {
		all.WriteString(c.ok("NOOP"))
		if strings.Contains(all.String(), want) || time.Now().After(deadline) {
			return all.String()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var highestRe = regexp.MustCompile(`HIGHESTMODSEQ (\d+)`)

// TestReview4SelectedSeesEveryChange: a session with INBOX selected is
// told at its next command of every other session's change to it, on
// this store or another (SQLite file, PostgreSQL node): FETCH FLAGS with
// MODSEQ, COPY into it, MOVE and EXPUNGE out of it, changes made while it
// had another mailbox selected, a RENAME of INBOX (which empties it); its
// HIGHESTMODSEQ is the mailbox's; STATUS of another mailbox is right.
func TestReview4SelectedSeesEveryChange(t *testing.T) {
	eachEngine(t, func(t *testing.T, e, other *env) {
		inbox := e.inbox()
		for i := 0; i < 4; i++ {
			e.put(inbox, fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i))
		}
		a := e.login()
		a.ok("CREATE Other")
		a.ok("APPEND Other {%d+}\r\n%s", len(simple), simple)
		mustContain(t, "SELECT", a.ok("SELECT INBOX (CONDSTORE)"), "* 4 EXISTS\r\n")
		b := other.login()
		b.ok("SELECT INBOX")

		b.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
		mustContain(t, "NOOP after another session's STORE", noopCollect(a, "FETCH"), "\\Flagged", "MODSEQ (")

		b.ok("SELECT Other")
		b.ok("COPY 1 INBOX")
		mustContain(t, "NOOP after a COPY into INBOX", noopCollect(a, "EXISTS"), "* 5 EXISTS\r\n")

		b.ok("SELECT INBOX")
		b.ok("MOVE 2 Other")
		mustContain(t, "NOOP after a MOVE out of INBOX", noopCollect(a, "EXPUNGE"), "* 2 EXPUNGE\r\n")

		b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
		b.ok("EXPUNGE")
		mustContain(t, "NOOP after an EXPUNGE", noopCollect(a, "EXPUNGE"), "* 1 EXPUNGE\r\n")
		// a: 3 messages now.

		// Between SELECTs: changes to INBOX while a has Other selected.
		a.ok("SELECT Other")
		b.ok("STORE 1:* +FLAGS.SILENT ($Review4)")
		b.ok("APPEND INBOX {%d+}\r\n%s", len(simple), simple)
		time.Sleep(300 * time.Millisecond) // another process's commit: seen within a poll
		un := a.ok("SELECT INBOX (CONDSTORE)")
		mustContain(t, "SELECT after changes made while another mailbox was selected", un, "* 4 EXISTS\r\n", "$Review4")
		if n := strings.Count(a.ok("FETCH 1:* (FLAGS)"), "$Review4"); n != 3 {
			t.Errorf("%d messages show $Review4 after the re-SELECT, want 3", n)
		}
		st := b.ok("STATUS INBOX (HIGHESTMODSEQ MESSAGES)")
		hb, ha := highestRe.FindStringSubmatch(st), highestRe.FindStringSubmatch(un)
		if hb == nil || ha == nil || hb[1] != ha[1] {
			t.Errorf("HIGHESTMODSEQ: SELECT says %v, another session's STATUS %q", ha, st)
		}

		// STATUS of another mailbox, changed by the other session.
		b.ok("APPEND Other {%d+}\r\n%s", len(simple), simple)
		time.Sleep(300 * time.Millisecond)
		mustContain(t, "STATUS Other", a.ok("STATUS Other (MESSAGES UIDNEXT)"), "MESSAGES 3 UIDNEXT 4")

		// RENAME INBOX empties it: every message is expunged to a.
		b.ok("RENAME INBOX Old")
		un = noopCollect(a, "* 1 EXPUNGE")
		if n := strings.Count(un, " EXPUNGE\r\n"); n != 4 {
			t.Errorf("NOOP after RENAME INBOX: %d EXPUNGEs, want 4:\n%s", n, un)
		}
		if s := a.ok("SEARCH ALL"); s != "* SEARCH\r\n" {
			t.Errorf("SEARCH ALL in the emptied INBOX: %q", s)
		}
	})
}

// TestReview4IdleToldOfOwnMailbox: an IDLE session is told of a new
// message in its mailbox made by another session or process.
func TestReview4IdleToldOfOwnMailbox(t *testing.T) {
	eachEngine(t, func(t *testing.T, e, other *env) {
		a := e.login()
		a.ok("CREATE Other")
		a.ok("SELECT INBOX")
		a.tag++
		tag := fmt.Sprintf("t%d", a.tag)
		a.send(tag + " IDLE\r\n")
		if l := a.line(); !strings.HasPrefix(l, "+") {
			t.Fatalf("IDLE: %q", l)
		}
		b := other.login()
		b.ok("APPEND Other {%d+}\r\n%s", len(simple), simple)
		b.ok("APPEND INBOX {%d+}\r\n%s", len(simple), simple)
		if l := a.line(); l != "* 1 EXISTS" {
			t.Fatalf("IDLE told %q, want * 1 EXISTS", l)
		}
		a.send("DONE\r\n")
		a.until(tag)
	})
}

// TestReview4RecentToOne: a session APPENDs into its selected INBOX while
// another SELECTs it again and again: no message is \Recent to both.
func TestReview4RecentToOne(t *testing.T) {
	eachEngine(t, func(t *testing.T, e, other *env) {
		a := e.login()
		a.ok("SELECT INBOX")
		b := other.login()
		const n = 15
		var wg sync.WaitGroup
		stop := make(chan struct{})
		bRecent := map[string]bool{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			re := regexp.MustCompile(`UID (\d+) FLAGS \(([^)]*)\)`)
			for {
				select {
				case <-stop:
					return
				default:
				}
				un, tagged := b.do("SELECT INBOX")
				if !strings.Contains(tagged, " OK") {
					return
				}
				if strings.Contains(un, "* 0 EXISTS") {
					continue
				}
				un, _ = b.do("FETCH 1:* (UID FLAGS)")
				for _, m := range re.FindAllStringSubmatch(un, -1) {
					if strings.Contains(m[2], `\Recent`) {
						bRecent[m[1]] = true
					}
				}
			}
		}()
		for i := 0; i < n; i++ {
			a.ok("APPEND INBOX {%d+}\r\n%s", len(simple), simple)
		}
		close(stop)
		wg.Wait()
		re := regexp.MustCompile(`UID (\d+) FLAGS \(([^)]*)\)`)
		un := a.ok("FETCH 1:* (UID FLAGS)")
		for _, m := range re.FindAllStringSubmatch(un, -1) {
			if strings.Contains(m[2], `\Recent`) && bRecent[m[1]] {
				t.Errorf("UID %s is \\Recent to both sessions", m[1])
			}
		}
	})
}

// TestReview4SelectRacesWriters: SELECTs of INBOX race appends and
// expunges committed in this process (the watcher's creation against
// their commits, Watcher.Changed against the MODSEQ read): once they
// stopped, one NOOP tells the session the mailbox as it is.
func TestReview4SelectRacesWriters(t *testing.T) {
	e := newEnv(t, nil)
	inbox := e.inbox()
	a := e.login()
	ctx := t.Context()
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				m, err := e.st.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: []byte(fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i))})
				if err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					if _, err := e.st.Expunge(ctx, inbox.ID, []uint32{m.UID}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
		for i := 0; i < 10; i++ {
			a.ok("SELECT INBOX")
			a.ok("NOOP")
		}
		wg.Wait()
		a.ok("NOOP")
		msgs, err := e.st.Messages(ctx, inbox.ID)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Count(a.ok("SEARCH ALL"), " ") - 1
		un := a.ok("FETCH 1:* (UID)")
		if n := strings.Count(un, "FETCH"); n != len(msgs) || got != len(msgs) {
			t.Fatalf("round %d: the session's view has %d messages (SEARCH %d), the mailbox %d", round, n, got, len(msgs))
		}
	}
}

// TestReview4RecentExactlyOne: two sessions have INBOX selected
// read-write throughout; one APPENDs into it, the other polls, and mail
// is delivered into it beside them (another session's APPEND claims
// what was delivered before its message, unclaimed): at the end every
// message is \Recent to exactly one of the two.
func TestReview4RecentExactlyOne(t *testing.T) {
	eachEngine(t, func(t *testing.T, e, other *env) {
		inbox := e.inbox()
		a := e.login()
		a.ok("SELECT INBOX")
		b := other.login()
		b.ok("SELECT INBOX")
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Add(2)
		go func() { // delivery
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if _, err := other.st.AppendMessage(t.Context(), inbox.ID, &store.NewMessage{Body: []byte(simple)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, tagged := b.do("NOOP"); !strings.Contains(tagged, " OK") {
					return
				}
			}
		}()
		for i := 0; i < 15; i++ {
			a.ok("APPEND INBOX {%d+}\r\n%s", len(simple), simple)
		}
		close(stop)
		wg.Wait()
		settle(a, 35)
		settle(b, 35)
		re := regexp.MustCompile(`UID (\d+) FLAGS \(([^)]*)\)`)
		to := map[string]int{}
		var outs []string
		for _, c := range []*conn{a, b} {
			out := c.ok("FETCH 1:* (UID FLAGS)")
			outs = append(outs, out)
			recent := map[string]bool{}
			for _, m := range re.FindAllStringSubmatch(out, -1) {
				to[m[1]] += 0
				if strings.Contains(m[2], `\Recent`) {
					recent[m[1]] = true
				}
			}
			for u := range recent {
				to[u]++
			}
		}
		defer func() {
			if t.Failed() {
				t.Logf("A's FETCH:\n%s\nB's FETCH:\n%s", outs[0], outs[1])
			}
		}()
		if len(to) != 35 {
			t.Fatalf("%d messages fetched, want 35", len(to))
		}
		for uid, n := range to {
			if n != 1 {
				t.Errorf("UID %s is \\Recent to %d of the two sessions", uid, n)
			}
		}
	})
}

// settle sends NOOPs until the session's view holds n messages (SEARCH
// ALL), for at most 10 s.
func settle(c *conn, n int) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.ok("NOOP")
		if got := len(strings.Fields(c.ok("SEARCH ALL"))) - 2; got == n || time.Now().After(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
