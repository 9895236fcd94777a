package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// serveHeapFloor is the heap size below which `mailferry serve` does not
// collect garbage (gcFloor): 64 MiB.
//
// serve's live heap is small (4 MB with 10 sessions on a 2,000-message
// mailbox), and with Go's default (GOGC=100: collect when the heap has
// grown by its live size) it collected every 4 MB allocated: a FETCH of
// 10 messages' bodies allocates about 76 KB (their bytes, one read), so
// under 10 clients a collection ran every 35 ms, and the FETCHes running
// meanwhile paid for it in mark assists or waited for credit (session
// 10's trace: most of what a FETCH waited for inside the server). With a
// 64 MiB floor a collection comes once per about 60 MB allocated, 15
// times fewer. What it costs: a serve process of a small live heap
// holds up to 64 MiB of heap (the burst goal of issue 17 is 256 MB; a
// burst's argon2id hashes, 19 MiB each, take the live heap past 32 MiB
// anyway, where the floor no longer applies).
const serveHeapFloor = 64 << 20

// gcFloor keeps the garbage collector's heap goal at no less than floor:
// after each collection GOGC is set so that the next starts at the larger
// of twice the live heap (Go's default, GOGC=100) and floor. It returns a
// func that stops it and sets GOGC back to 100. An admin's GOGC or
// GOMEMLIMIT (env) stands: then it does nothing.
func gcFloor(floor uint64, gogcEnv, memLimitEnv string) (stop func()) {
	if gogcEnv != "" || memLimitEnv != "" {
		return func() {}
	}
	t := &gcTuner{floor: floor, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
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
	floor  uint64
	sample []metrics.Sample

	mu      sync.Mutex
	stopped bool
	percent int // the GOGC it last set
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
	p := gcPercent(t.sample[0].Value.Uint64(), t.floor)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped && p != t.percent {
		t.percent = p
		debug.SetGCPercent(p)
	}
}

// gcPercent is the GOGC that makes the heap goal (live heap x (1 +
// GOGC/100)) the larger of twice live and floor, in steps of 100 (so that
// a live heap moving by a few bytes does not set it each time).
func gcPercent(live, floor uint64) int {
	live = max(live, 1<<20)
	if 2*live >= floor {
		return 100
	}
	p := (floor - live) * 100 / live
	return int(p / 100 * 100)
}
