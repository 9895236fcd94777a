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
// EXPUNGE and APPEND at once (issue 15): no NO or BAD (Dovecot gives none
// here), every response consistent with what the session was told, and
// after a final NOOP every session sees exactly the store's messages.
func TestStressOneMailbox(t *testing.T) {
	e := newEnv(t, nil)
	for i := 0; i < 20; i++ {
		e.put(e.inbox(), simple)
	}
	d := stressDuration(t)
	sessions := make([]*stressSession, 10)
	for i := range sessions {
		s := &stressSession{c: e.login(), rnd: rand.New(rand.NewSource(int64(i)))}
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
	uids, err := e.st.Snapshot(context.Background(), e.inbox().ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i, u := range uids.UIDs {
		fmt.Fprintf(&want, "%d:%d ", i+1, u)
	}
	total := 0
	for i, s := range sessions {
		total += steps[i]
		for _, f := range s.fails {
			t.Errorf("session %d: %s", i, f)
		}
		s.run("NOOP")
		if s.n != len(uids.UIDs) {
			t.Errorf("session %d: told of %d messages, the store has %d", i, s.n, len(uids.UIDs))
		}
		var got strings.Builder
		for _, m := range uidOnlyRe.FindAllStringSubmatch(s.run("FETCH 1:* (UID)"), -1) {
			fmt.Fprintf(&got, "%s:%s ", m[1], m[2])
		}
		if got.String() != want.String() {
			t.Errorf("session %d sees %s\nthe store has %s", i, got.String(), want.String())
		}
	}
	t.Logf("%d commands in %v by %d sessions; %d messages at the end", total, d, len(sessions), len(uids.UIDs))
}
