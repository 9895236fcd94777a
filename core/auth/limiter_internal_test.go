package auth

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Many keys failing at once (an attack from many addresses) do not make
// every failure scan the whole table: a sweep forgets the full buckets,
// and the next waits until the table has doubled. Buckets that still count
// failures are never forgotten.
func TestLimiterSweepsRarely(t *testing.T) {
	l := newLimiter(time.Hour)
	for i := 0; i < minSweep; i++ {
		l.take(fmt.Sprintf("acct %d", i), 5)
	}
	l.take("acct next", 5) // at minSweep: sweeps, but nothing has refilled
	if n := len(l.buckets); n != minSweep+1 {
		t.Fatalf("%d buckets, want %d (none refilled, none forgotten)", n, minSweep+1)
	}
	if l.sweepAt != 2*minSweep {
		t.Fatalf("next sweep at %d buckets, want %d", l.sweepAt, 2*minSweep)
	}
	if b := l.buckets["acct 7"]; b == nil || b.tokens < 4 || b.tokens >= 4.5 {
		t.Fatalf("a failing key lost its count: %+v", l.buckets["acct 7"])
	}
	// Once refilled, they are forgotten at the next sweep.
	l.refill = time.Nanosecond
	for i := 0; len(l.buckets) < l.sweepAt; i++ {
		l.take(fmt.Sprintf("src %d", i), 5)
	}
	l.take("src last", 5) // at the mark: this one sweeps
	if n := len(l.buckets); n > 2 {
		t.Fatalf("%d buckets left after refilling, want at most the newest", n)
	}
	if l.sweepAt != minSweep {
		t.Fatalf("next sweep at %d, want %d", l.sweepAt, minSweep)
	}
}

// Parallel takes never pass the limit: the token is taken before the
// check it pays for.
func TestLimiterTakeIsAtomic(t *testing.T) {
	l := newLimiter(time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.take("acct carol", 10) {
				mu.Lock()
				got++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got != 10 {
		t.Fatalf("%d of 60 parallel attempts got through, want 10", got)
	}
	l.give("acct carol", 10)
	if !l.take("acct carol", 10) || l.take("acct carol", 10) {
		t.Fatal("give did not give back exactly one attempt")
	}
}
