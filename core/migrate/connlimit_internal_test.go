package migrate

import (
	"context"
	"testing"
	"time"

	"mailferry/core/oldserver"
)

// The cap: a first place waits, extra places are taken only when free, a
// refusal lowers the cap to the places still taken (at least 1), and a cap
// the settings or what was learnt ask for anew applies, higher or lower.
func TestConnLimit(t *testing.T) {
	e := &Engine{conns: map[string]*connLimit{}}
	s := &oldSettings{Host: oldserver.MustParseHost("[192.0.2.7]"), IMAPPort: 143, MaxConnections: 3}
	l := e.limits(s)
	ctx := context.Background()
	for range 3 {
		if err := l.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if l.tryAcquire() {
		t.Fatal("a 4th place under a cap of 3")
	}
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	if err := l.acquire(wctx); err == nil {
		t.Fatal("a 4th place taken by waiting")
	}
	cancel()
	got := make(chan error, 1)
	go func() { got <- l.acquire(ctx) }()
	time.Sleep(20 * time.Millisecond)
	l.release()
	if err := <-got; err != nil {
		t.Fatalf("a waiter did not get the freed place: %v", err)
	}
	// The server turns a 4th away... with 3 taken: the refused one's place
	// is freed and the cap becomes the 2 others.
	if n := l.turnedAway(); n != 2 || l.tryAcquire() {
		t.Fatalf("cap after a refusal: %d", n)
	}
	l.release()
	l.release()
	if n := l.turnedAway(); n != 1 {
		t.Fatalf("the cap never goes below 1: %d", n)
	}
	if e.limits(s) != l || l.max != 1 {
		t.Fatalf("the same settings changed the lowered cap: %d", l.max)
	}
	s.MaxConnections = 5
	if e.limits(s); l.max != 5 {
		t.Fatalf("the admin's new cap: %d", l.max)
	}
	s.Learnt = &oldserver.Learnt{Server: oldserver.LearntKey(*s), ConnCap: 2}
	if e.limits(s); l.max != 2 {
		t.Fatalf("the learnt cap: %d", l.max)
	}
	other := *s
	other.IMAPPort = 993
	if e.limits(&other) == l {
		t.Fatal("two old servers share a cap")
	}
}

// A worker gives its mailbox back only while another lives to take it;
// the one left takes it.
func TestWorkQueueGiveBack(t *testing.T) {
	a, b := &plan{}, &plan{}
	q := newWorkQueue([]*plan{a, b})
	q.join()
	q.join()
	ctx := context.Background()
	p1, p2 := q.take(ctx), q.take(ctx)
	if p1 != a || p2 != b {
		t.Fatal("order")
	}
	if !q.giveBack(p2) {
		t.Fatal("refused to give back with another worker alive")
	}
	if q.giveBack(p1) {
		t.Fatal("the last worker gave its mailbox back")
	}
	q.done()
	if p := q.take(ctx); p != b {
		t.Fatalf("the given-back mailbox was not taken: %v", p)
	}
	q.done()
	if p := q.take(ctx); p != nil {
		t.Fatalf("more work than there was: %v", p)
	}
	q.leave()
}

// A cap lowered by a refusal climbs back one place at a time: a probe only
// once the quiet period has passed since the cap last changed and a
// connection opened well meanwhile; the probe's refusal lowers it again;
// never above the admin's cap. (Before, a lowered cap stayed lowered.)
func TestConnLimitProbesUp(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	e := &Engine{conns: map[string]*connLimit{}, opts: Options{CapProbeAfter: time.Minute}}
	s := &oldSettings{Host: oldserver.MustParseHost("[192.0.2.8]"), IMAPPort: 143, MaxConnections: 3}
	l := e.limits(s)
	l.now, l.since = func() time.Time { return now }, now
	for range 3 {
		if !l.tryAcquire() {
			t.Fatal("a place under the cap")
		}
	}
	if n := l.turnedAway(); n != 2 {
		t.Fatalf("cap after a refusal: %d", n)
	}
	now = now.Add(2 * time.Minute)
	if l.tryAcquire() {
		t.Fatal("a probe without a connection opened well since the refusal")
	}
	l.opened()
	now = now.Add(-90 * time.Second)
	if l.tryAcquire() {
		t.Fatal("a probe before the quiet period passed")
	}
	now = now.Add(90 * time.Second)
	if !l.tryAcquire() || l.max != 3 {
		t.Fatalf("no probe after the quiet period: cap %d", l.max)
	}
	if n := l.turnedAway(); n != 2 {
		t.Fatalf("the probe's refusal: cap %d, want 2", n)
	}
	now = now.Add(time.Minute)
	l.opened()
	if !l.tryAcquire() || l.max != 3 {
		t.Fatalf("no second probe: cap %d", l.max)
	}
	l.opened()
	now = now.Add(time.Hour)
	if l.tryAcquire() || l.max != 3 {
		t.Fatalf("a probe above the admin's cap of 3: %d", l.max)
	}
	// A cap learnt before this process started climbs back too.
	s2 := *s
	s2.Host = oldserver.MustParseHost("[192.0.2.9]")
	s2.Learnt = &oldserver.Learnt{Server: oldserver.LearntKey(s2), ConnCap: 1}
	l2 := e.limits(&s2)
	l2.now, l2.since = func() time.Time { return now }, now
	if !l2.tryAcquire() || l2.tryAcquire() {
		t.Fatal("the learnt cap of 1")
	}
	l2.opened()
	now = now.Add(time.Minute)
	if !l2.tryAcquire() || l2.max != 2 {
		t.Fatalf("the learnt cap did not climb: %d", l2.max)
	}
	e.opts.CapProbeAfter = -1
	s3 := s2
	s3.Host = oldserver.MustParseHost("[192.0.2.10]")
	s3.Learnt = &oldserver.Learnt{Server: oldserver.LearntKey(s3), ConnCap: 1}
	l3 := e.limits(&s3)
	l3.tryAcquire()
	l3.opened()
	l3.since = time.Time{}
	if l3.tryAcquire() {
		t.Fatal("a probe with probing off")
	}
}

// An extra connection never takes a place a copy waits for as its first:
// with one place free and a first connection waiting, tryExtra refuses
// (the waiting copy gets it); with nobody waiting, it takes a free place.
func TestConnLimitExtraAfterWaiting(t *testing.T) {
	e := &Engine{conns: map[string]*connLimit{}}
	s := &oldSettings{Host: oldserver.MustParseHost("[192.0.2.8]"), IMAPPort: 143, MaxConnections: 2}
	l := e.limits(s)
	ctx := context.Background()
	for range 2 {
		if err := l.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan error, 1)
	go func() { got <- l.acquire(ctx) }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		l.mu.Lock()
		w := l.waiting
		l.mu.Unlock()
		if w == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("acquire does not wait")
		}
	}
	l.mu.Lock()
	l.open-- // a place freed, the waiter not woken yet
	l.mu.Unlock()
	if l.tryExtra() {
		t.Fatal("an extra connection took the place a first connection waits for")
	}
	l.release()    // wakes the waiter
	l.acquire(ctx) // the place tryExtra left, taken back for the test's count
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	l.release()
	if !l.tryExtra() {
		t.Fatal("no extra connection with a place free and nobody waiting")
	}
}

// Copies waiting for a place get one in the order they came: the account
// whose user logged in first is copied first (and its login's kept
// connection is still open then), never overtaken by later ones.
func TestConnLimitFirstComeFirst(t *testing.T) {
	l := newConnLimit(1, 1, -1, 0)
	ctx := context.Background()
	if err := l.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 20
	got := make(chan int, n)
	for i := range n {
		go func() {
			if err := l.acquire(ctx); err != nil {
				t.Error(err)
				return
			}
			got <- i
		}()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) { // i waits before i+1 comes
			l.mu.Lock()
			w := l.waiting
			l.mu.Unlock()
			if w == i+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiter %d did not wait", i)
			}
		}
	}
	// One that gives up leaves its turn to the next.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	if err := l.acquire(wctx); err == nil {
		t.Fatal("a place taken by waiting while none was free")
	}
	cancel()
	for want := range n {
		l.release()
		if i := <-got; i != want {
			t.Fatalf("place %d went to waiter %d", want, i)
		}
	}
	l.release()
	if l.waiting != 0 || l.open != 0 || len(l.queue) != 0 {
		t.Fatalf("after all: waiting %d, open %d, queue %d", l.waiting, l.open, len(l.queue))
	}
}

// Places go by turn, not by arrival: jobs that waited for a burst's first
// logins come here at the same instant when the logins are answered, and
// the one scheduled first (its user logged in first) gets the first free
// place. Without the turns, places went in the order the waiters woke.
func TestConnLimitInTurn(t *testing.T) {
	l := newConnLimit(1, 1, -1, 0)
	ctx := context.Background()
	if err := l.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	turns := []uint64{nextTurn(), nextTurn(), nextTurn(), nextTurn()}
	got := make(chan uint64, len(turns))
	for i := len(turns) - 1; i >= 0; i-- { // the last scheduled comes first
		go func() {
			if err := l.acquire(withTurn(ctx, turns[i])); err != nil {
				t.Error(err)
				return
			}
			got <- turns[i]
		}()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			l.mu.Lock()
			w := l.waiting
			l.mu.Unlock()
			if w == len(turns)-i {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiter %d did not wait", i)
			}
		}
	}
	for _, want := range turns {
		l.release()
		if g := <-got; g != want {
			t.Fatalf("a place went to turn %d, want %d (scheduled first)", g, want)
		}
	}
	l.release()
}
