package imapfront_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mailferry/core/oldserver/oldtest"
)

// stressDuration is how long TestStressOneMailbox runs: the
// MAILFERRY_IMAP_STRESS duration (make test sets 20s), or 3 seconds.
func stressDuration(t *testing.T) time.Duration {
	if v := os.Getenv("MAILFERRY_IMAP_STRESS"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("MAILFERRY_IMAP_STRESS=%q: %v", v, err)
		}
		return d
	}
	return 3 * time.Second
}

var (
	existsRe  = regexp.MustCompile(`(?m)^\* (\d+) EXISTS\r$`)
	expungeRe = regexp.MustCompile(`(?m)^\* (\d+) EXPUNGE\r$`)
	fetchRe   = regexp.MustCompile(`(?m)^\* (\d+) FETCH \(`)
	uidOnlyRe = regexp.MustCompile(`(?m)^\* (\d+) FETCH \(UID (\d+)\)\r$`)
	uidRe     = regexp.MustCompile(`^\* \d+ FETCH \(.*\bUID (\d+)\b`)
)

// stressSession is one client and its model of the mailbox: the number of
// messages it was told of.
type stressSession struct {
	c     *conn
	n     int
	rnd   *rand.Rand
	fails []string
}

// run sends a command and checks its answer: tagged OK, and every untagged
// response consistent with the model, which it updates.
func (s *stressSession) run(format string, args ...any) string {
	cmd := fmt.Sprintf(format, args...)
	un, tagged := s.c.do("%s", cmd)
	if !strings.Contains(tagged, " OK") {
		s.fails = append(s.fails, fmt.Sprintf("%s: %s", cmd, tagged))
	}
	s.track(cmd, un)
	return un
}

func (s *stressSession) track(cmd, un string) {
	// Responses come in order; EXISTS and EXPUNGE change the numbering
	// for what follows them.
	for _, line := range strings.SplitAfter(un, "\n") {
		if m := existsRe.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			if n < s.n && !strings.HasPrefix(cmd, "SELECT") {
				s.fails = append(s.fails, fmt.Sprintf("%s: EXISTS %d below %d", cmd, n, s.n))
			}
			s.n = n
		} else if m := expungeRe.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			if n < 1 || n > s.n {
				s.fails = append(s.fails, fmt.Sprintf("%s: EXPUNGE %d of %d", cmd, n, s.n))
			}
			s.n--
		} else if m := fetchRe.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			if n < 1 || n > s.n {
				s.fails = append(s.fails, fmt.Sprintf("%s: FETCH %d of %d", cmd, n, s.n))
			}
		}
	}
}

func (s *stressSession) step() {
	switch r := s.rnd.Intn(20); {
	case r == 0:
		s.n = 0
		s.run("SELECT INBOX")
	case r < 6:
		if s.n > 0 {
			a := 1 + s.rnd.Intn(s.n)
			s.run("FETCH %d:%d (UID FLAGS RFC822.SIZE ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)])", a, min(s.n, a+5))
		}
	case r < 8:
		s.run("UID FETCH 1:* (FLAGS BODY.PEEK[])")
	case r < 11:
		if s.n > 0 {
			flag := []string{`\Seen`, `\Flagged`, `$Label1`, `\Deleted`}[s.rnd.Intn(4)]
			s.run("STORE %d %sFLAGS (%s)", 1+s.rnd.Intn(s.n), []string{"+", "-"}[s.rnd.Intn(2)], flag)
		}
	case r < 13:
		s.run("EXPUNGE")
	case r < 17:
		msg := fmt.Sprintf("From: s@example.test\r\nSubject: stress %d\r\n\r\nbody\r\n", s.rnd.Int())
		s.c.tag++
		tag := fmt.Sprintf("t%d", s.c.tag)
		s.c.send(fmt.Sprintf("%s APPEND INBOX {%d+}\r\n%s\r\n", tag, len(msg), msg))
		un, tagged := s.c.until(tag)
		if !strings.Contains(tagged, " OK") {
			s.fails = append(s.fails, "APPEND: "+tagged)
		}
		s.track("APPEND", un)
	case r < 19:
		s.run("NOOP")
	default:
		s.run("SEARCH UNSEEN")
	}
}

// TestStressOneMailbox: 10 sessions on one mailbox SELECT, FETCH, STORE,
// EXPUNGE and APPEND at once (issue 15): no NO or BAD, every response
// consistent with what the session was told, and after a final NOOP every
// session sees exactly the store's messages. The dovecot subtest runs the
// same load against the project's Dovecot fixture, to show that Dovecot
// gives no NO or BAD to it either.
func TestStressOneMailbox(t *testing.T) {
	t.Run("mailferry", func(t *testing.T) {
		e := newEnv(t, nil)
		for i := 0; i < 20; i++ {
			e.put(e.inbox(), simple)
		}
		got := stress(t, e.login)
		snap, err := e.st.Snapshot(context.Background(), e.inbox().ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		var want strings.Builder
		for i, u := range snap.UIDs {
			fmt.Fprintf(&want, "%d:%d ", i+1, u)
		}
		if got != want.String() {
			t.Errorf("sessions see %s\nthe store has %s", got, want.String())
		}
	})
	t.Run("dovecot", func(t *testing.T) {
		old := oldtest.Start(t, nil)
		const u, p = "alice@example.test", "AliceSecret1"
		for i := 0; i < 20; i++ {
			old.Append(t, u, "INBOX", nil, time.Now(), []byte(simple))
		}
		o := &env{t: t, addr: old.IMAPAddr}
		stress(t, func() *conn {
			c := o.dial()
			c.ok("LOGIN %s %s", u, p)
			return c
		})
	})
}

// stress runs the load on sessions from login and returns the view they
// all have after a final NOOP ("seq:uid ...").
func stress(t *testing.T, login func() *conn) string {
	d := stressDuration(t)
	sessions := make([]*stressSession, 10)
	for i := range sessions {
		s := &stressSession{c: login(), rnd: rand.New(rand.NewSource(int64(i)))}
		s.run("SELECT INBOX")
		sessions[i] = s
	}
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	steps := make([]int, len(sessions))
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && len(s.fails) < 5 {
				s.step()
				steps[i]++
			}
		}()
	}
	wg.Wait()
	total := 0
	var first string
	recentTo := map[string]int{} // UID: the session it is \Recent to
	for i, s := range sessions {
		total += steps[i]
		for _, f := range s.fails {
			t.Errorf("session %d: %s", i, f)
		}
		s.fails = nil
		s.run("NOOP")
		var got strings.Builder
		n := 0
		for _, m := range uidOnlyRe.FindAllStringSubmatch(s.run("FETCH 1:* (UID)"), -1) {
			fmt.Fprintf(&got, "%s:%s ", m[1], m[2])
			n++
		}
		if s.n != n {
			t.Errorf("session %d: told of %d messages, FETCH 1:* gives %d", i, s.n, n)
		}
		// \Recent is never shown to two sessions (RFC 3501 2.3.2).
		for _, line := range strings.Split(s.run("FETCH 1:* (UID FLAGS)"), "\n") {
			m := uidRe.FindStringSubmatch(line)
			if m == nil || !strings.Contains(line, `\Recent`) {
				continue
			}
			if j, ok := recentTo[m[1]]; ok {
				t.Errorf("UID %s is \\Recent to sessions %d and %d", m[1], j, i)
			}
			recentTo[m[1]] = i
		}
		for _, f := range s.fails {
			t.Errorf("session %d, final NOOP: %s", i, f)
		}
		if i == 0 {
			first = got.String()
		} else if got.String() != first {
			t.Errorf("session %d sees %s\nsession 0 sees %s", i, got.String(), first)
		}
	}
	t.Logf("%d commands in %v by %d sessions; %d messages at the end, %d of them \\Recent to a session", total, d, len(sessions), sessions[0].n, len(recentTo))
	return first
}
