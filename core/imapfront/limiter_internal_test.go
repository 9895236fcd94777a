package imapfront

import (
	"fmt"
	"testing"
	"time"
)

// Many keys failing at once (an attack from many addresses) do not make
// every failure scan the whole table: a sweep forgets the refilled
// buckets, and the next waits until the table has doubled. Buckets that
// still count failures are never forgotten.
func TestLimiterSweepsRarely(t *testing.T) {
	l := newLimiter(LoginRateLimit{PerIP: 5, PerUser: 5, Refill: time.Hour})
	for i := 0; i <= minSweep; i++ {
		l.fail(fmt.Sprintf("user:%d", i))
	}
	l.fail("user:next") // over minSweep: sweeps, but nothing has refilled
	if n := len(l.buckets); n != minSweep+2 {
		t.Fatalf("%d buckets, want %d (none refilled, none forgotten)", n, minSweep+2)
	}
	if l.sweepAt != 2*(minSweep+1) {
		t.Fatalf("next sweep at %d buckets, want %d", l.sweepAt, 2*(minSweep+1))
	}
	if b := l.buckets["user:7"]; b == nil || b.tokens < 4 || b.tokens >= 4.5 {
		t.Fatalf("a failing key lost its count: %+v", l.buckets["user:7"])
	}
	// Once refilled, they are forgotten at the next sweep.
	l.rl.Refill = time.Nanosecond
	for i := 0; len(l.buckets) <= l.sweepAt; i++ {
		l.fail(fmt.Sprintf("ip:%d", i))
	}
	l.fail("ip:last") // over the mark: this one sweeps
	if n := len(l.buckets); n > 2 {
		t.Fatalf("%d buckets left after refilling, want at most the newest", n)
	}
	if l.sweepAt != minSweep {
		t.Fatalf("next sweep at %d, want %d", l.sweepAt, minSweep)
	}
}
