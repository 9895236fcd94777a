package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// serveGC is how `mailferry serve` sets its garbage collector: a small
// live heap may grow to 4 times its size before a collection (GOGC 300),
// so long as that stays under serveHeapCeiling; past it the heap goal is
// the larger of the ceiling and twice the live heap (Go's default, GOGC
// 100), so a big live heap (a burst of logins: argon2id takes 19 MiB a
// hash) gets no more memory than before.
//
// Why (2026-12-06, session 11, `make bench-imap`'s load on serve in its
// own process): serve's live heap is about 4 MB, and with GOGC 100 it
// collected every 4 MB allocated, about 12 times a second under 10
// clients; every collection stops the world twice and runs its mark
// workers beside the sessions (a FETCH of 10 messages allocates 76 KB).
// GOGC 300 beside 100, the same binary, by turns, four runs with the
// sides swapped in two (BenchmarkLatencyMailferry -benchtime 10x, load
// 20-30): FETCH p50 4.4 against 5.5 ms, 4.0 against 5.3, 3.0 against
// 4.1, 8.0 against 8.1; the server's CPU per client round 5.9 against
// 6.8, 5.9 against 6.6, 4.9 against 5.6, 7.1 against 7.1 ms. A 64 MiB
// floor instead (goal never below 64 MiB) cost 20-30% more CPU: a heap
// that size walks out of the caches a 16 MB one stays in. The heap goal
// is never above the larger of 64 MiB and Go's own (twice live), so the
// peak RSS of a burst of first logins (issue 17: under 256 MB) does not
// grow. An admin's GOGC or GOMEMLIMIT stands.
const (
	serveGCPercent   = 300
	serveHeapCeiling = 64 << 20
)

// tuneGC keeps GOGC at gcPercent(live heap, ceiling, percent) after each
// collection. It returns a func that stops it and sets GOGC back to 100.
// An admin's GOGC or GOMEMLIMIT (gogcEnv, memLimitEnv) stands: then it
// does nothing.
func tuneGC(percent int, ceiling uint64, gogcEnv, memLimitEnv string) (stop func()) {
	if gogcEnv != "" || memLimitEnv != "" {
		return func() {}
	}
	t := &gcTuner{percent: percent, ceiling: ceiling, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.tune()
	t.arm()
	return func() {
		t.mu.Lock()
		t.stopped = true
		t.mu.Unlock()
		debug.SetGCPercent(100)
	}
}

type gcTuner struct {
	percent int
	ceiling uint64
	sample  []metrics.Sample

	mu      sync.Mutex
	stopped bool
	set     int // the GOGC it last set
}

// gcSentinel is an object that becomes garbage at once: its finalizer
// runs after the collection that found it, and sets up the next one.
type gcSentinel struct{ _ [16]byte }

func (t *gcTuner) arm() {
	runtime.SetFinalizer(&gcSentinel{}, func(*gcSentinel) {
		t.mu.Lock()
		stopped := t.stopped
		t.mu.Unlock()
		if !stopped {
			t.tune()
			t.arm()
		}
	})
}

// tune sets GOGC for the heap the last collection left live.
func (t *gcTuner) tune() {
	metrics.Read(t.sample)
	p := gcPercent(t.sample[0].Value.Uint64(), t.ceiling, t.percent)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped && p != t.set {
		t.set = p
		debug.SetGCPercent(p)
	}
}

// gcPercent is the GOGC for a live heap: percent while the heap goal
// (live x (1 + GOGC/100)) stays within ceiling; else the GOGC whose goal is
// the larger of ceiling and twice live (never under 100), in steps of 10
// (so that a live heap moving by a few bytes does not set it each time).
func gcPercent(live, ceiling uint64, percent int) int {
	live = max(live, 1<<20)
	if live*uint64(100+percent)/100 <= ceiling {
		return percent
	}
	if 2*live >= ceiling {
		return 100
	}
	return int((ceiling-live)*100/live) / 10 * 10
}
