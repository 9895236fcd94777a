package imapfront

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"mailferry/core/store"
)

// threadMsg is a message as found gives it to THREAD.
func threadMsg(i int, id, subject string) *sortMsg {
	d := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	return &sortMsg{seq: uint32(i + 1), uid: imap.UID(i + 1), m: &store.Message{InternalDate: d},
		env: &imap.Envelope{MessageID: id, Subject: subject, Date: d}}
}

// manyRefs is a mailbox of n messages each naming k distinct References,
// read as found reads it: with refsBudget when bounded, each message's
// References whole otherwise (as before).
func manyRefs(n, k int, bounded bool) []*sortMsg {
	b := newRefsBudget()
	msgs := make([]*sortMsg, n)
	for i := range msgs {
		m := threadMsg(i, fmt.Sprintf("m%d@t", i), fmt.Sprintf("s%d", i))
		ids := make([]string, k)
		for j := range ids {
			ids[j] = fmt.Sprintf("%d.%d.0123456789abcdef@attacker.example", i, j)
		}
		if bounded {
			b.keep(m, ids)
		} else {
			m.refs = ids
		}
		msgs[i] = m
	}
	return msgs
}

// TestThreadRefsBudget: the References one THREAD takes are at most
// maxThreadRefs over all its messages (1 each past it), each message
// keeping its last ones, its parent always.
func TestThreadRefsBudget(t *testing.T) {
	for _, c := range []struct{ n, k, share int }{
		{1100, 1000, 250}, // 1.1 million named: 275,000 kept
		{400, 1000, 1000},
		{600, 1000, 500},
		{260000, 2, 1},
	} {
		msgs := manyRefs(c.n, c.k, true)
		total := 0
		for i, m := range msgs {
			total += len(m.refs)
			if len(m.refs) != min(c.k, c.share) || m.refs[len(m.refs)-1] != fmt.Sprintf("%d.%d.0123456789abcdef@attacker.example", i, c.k-1) {
				t.Fatalf("%d messages of %d References: message %d keeps %d ending %q; want its last %d", c.n, c.k, i, len(m.refs), m.refs[len(m.refs)-1], min(c.k, c.share))
			}
		}
		if total > max(maxThreadRefs, c.n) {
			t.Errorf("%d messages of %d References: %d kept, want at most %d", c.n, c.k, total, max(maxThreadRefs, c.n))
		}
	}
}

// hostileWalks is a mailbox whose References make linkReferences walk
// up a chain `depth` deep for each of `walks` links: chain messages of
// 1,000 References each, one after the other; `walks` messages each
// making a root with a child (a reference of their own); and messages
// naming, by turns, the chain's deepest container and one of those roots.
// Benign, the same but for the last messages naming other containers
// than those roots: the same work but the walks.
func hostileWalks(depth, walks int, benign bool) []*sortMsg {
	var msgs []*sortMsg
	add := func(id string, refs []string) {
		m := threadMsg(len(msgs), id, fmt.Sprintf("s%d", len(msgs)))
		m.refs = refs
		msgs = append(msgs, m)
	}
	last := ""
	for c := 0; c < depth/1000; c++ {
		refs := make([]string, 0, 1000)
		if last != "" {
			refs = append(refs, last)
		}
		for len(refs) < 1000 {
			last = fmt.Sprintf("chain.%d.%d@a", c, len(refs))
			refs = append(refs, last)
		}
		add(fmt.Sprintf("c%d@a", c), refs)
	}
	for r := 0; r < walks; r++ {
		add(fmt.Sprintf("child%d@a", r), []string{fmt.Sprintf("root%d@a", r)})
	}
	root := "root%d@a"
	if benign {
		root = "other%d@a"
	}
	for r := 0; r < walks; {
		refs := make([]string, 0, 1000)
		for ; r < walks && len(refs) < 1000; r++ {
			refs = append(refs, last, fmt.Sprintf(root, r))
		}
		add(fmt.Sprintf("w%d@a", r), refs)
	}
	return msgs
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestThreadWalksBounded: linking References walks up at most walkBudget
// steps in one THREAD. A chain 450,000 deep and 6,000 links under its
// deepest container (6,456 messages, 468,000 References: within
// maxThreadRefs) took 2.7*10^9 steps up, the chain's depth per link.
// Measured in CPU time against the same mailbox without the walks, in
// the same process (the machine's load aside).
func TestThreadWalksBounded(t *testing.T) {
	const depth, walks = 450000, 6000
	cost := func(benign bool) (time.Duration, []*node, int) {
		msgs := hostileWalks(depth, walks, benign)
		runtime.GC()
		cpu := cpuTime()
		roots := threadReferences(msgs)
		return cpuTime() - cpu, roots, len(msgs)
	}
	plain, _, _ := cost(true)
	hostile, roots, n := cost(false)
	t.Logf("%d messages, a chain %d deep: CPU %v, %v with %d walks up it", n, depth, plain.Round(time.Millisecond), hostile.Round(time.Millisecond), walks)
	if hostile > 5*plain+time.Second {
		t.Errorf("THREAD REFERENCES with %d walks up a chain %d deep: CPU %v, without the walks %v; want at most 5 times as much", walks, depth, hostile, plain)
	}
	seen := map[*sortMsg]int{}
	var count func(n *node)
	count = func(n *node) {
		if n.msg != nil {
			seen[n.msg]++
		}
		for _, c := range n.children {
			count(c)
		}
	}
	for _, r := range roots {
		count(r)
	}
	if len(seen) != n {
		t.Errorf("%d messages in the threads, want each of the %d", len(seen), n)
	}
	for m, k := range seen {
		if k != 1 {
			t.Errorf("message %d in the threads %d times", m.uid, k)
		}
	}
}

// TestThreadManyRefsCost measures one THREAD REFERENCES of 20,000
// messages each naming 1,000 distinct References, as found reads them
// with the budget (MAILFERRY_THREAD_MEASURE=new) or without it (=old):
// CPU time and the peak RSS of the process (run each in its own go test).
func TestThreadManyRefsCost(t *testing.T) {
	mode := os.Getenv("MAILFERRY_THREAD_MEASURE")
	if mode == "" {
		t.Skip("MAILFERRY_THREAD_MEASURE=old|new measures")
	}
	runtime.GC()
	cpu, start := cpuTime(), time.Now()
	msgs := manyRefs(20000, 1000, mode == "new")
	roots := threadReferences(msgs)
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%s: 20,000 messages x 1,000 References: %d threads, wall %v, CPU %v, peak RSS %d MiB, allocated %d MiB",
		mode, len(roots), time.Since(start).Round(time.Millisecond), (cpuTime() - cpu).Round(time.Millisecond), ru.Maxrss>>10, ms.TotalAlloc>>20)
}

// TestThreadSubjectGatheringLinear: gathering roots by subject (RFC 5256
// REFERENCES step 5) costs about what threading as many messages of
// distinct subjects does (CPU time, in one process). 4,000 replies to a
// message not in the mailbox (one dummy root) and 4,000 roots of the same
// subject took 0.87 s, quadratic: the dummy's children were sorted again
// for each root of its subject (to learn whether the dummy's subject is a
// reply, which mattered only for a message).
func TestThreadSubjectGatheringLinear(t *testing.T) {
	const n = 4000
	cost := func(same bool) time.Duration {
		var msgs []*sortMsg
		for i := 0; i < n; i++ {
			subj := "Re: s"
			if !same {
				subj = fmt.Sprintf("a%d", i)
			}
			m := threadMsg(len(msgs), fmt.Sprintf("a%d@t", i), subj)
			if same {
				m.refs = []string{"missing@t"}
			}
			msgs = append(msgs, m)
		}
		for i := 0; i < n; i++ {
			subj := "s"
			if !same {
				subj = fmt.Sprintf("b%d", i)
			}
			msgs = append(msgs, threadMsg(len(msgs), fmt.Sprintf("b%d@t", i), subj))
		}
		best := time.Duration(-1)
		for range 3 {
			runtime.GC()
			cpu := cpuTime()
			roots := threadReferences(msgs)
			if d := cpuTime() - cpu; best < 0 || d < best {
				best = d
			}
			if same && len(roots) != 1 {
				t.Fatalf("%d roots, want 1 (the dummy, every message of subject s under it)", len(roots))
			}
		}
		return best
	}
	plain := cost(false)
	if d := cost(true); d > 10*plain+50*time.Millisecond {
		t.Errorf("THREAD REFERENCES of %d replies to a missing message and %d roots of their subject: CPU %v, of as many messages of distinct subjects %v; want about as much", n, n, d, plain)
	}
}
