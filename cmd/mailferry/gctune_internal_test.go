package main

import (
	"runtime"
	"runtime/metrics"
	"testing"
)

func TestGCPercent(t *testing.T) {
	const ceiling = 64 << 20
	for _, c := range []struct {
		live uint64
		want int
	}{
		{4 << 20, 300},  // goal 16 MiB
		{16 << 20, 300}, // goal 64 MiB: the ceiling
		{20 << 20, 220}, // goal 64 MiB
		{32 << 20, 100}, // twice live is the ceiling
		{40 << 20, 100}, // above: Go's default
		{0, 300},        // counted as 1 MiB live
	} {
		if got := gcPercent(c.live, ceiling, 300); got != c.want {
			t.Errorf("gcPercent(%d MiB live) = %d, want %d", c.live>>20, got, c.want)
		}
	}
}

func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

var sink []byte

// allocGarbage allocates n bytes of short-lived 64 KiB buffers, as a
// FETCH's message bytes are, and returns the collections that ran.
func allocGarbage(n int) uint32 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gc0 := ms.NumGC
	for i := 0; i < n/(64<<10); i++ {
		sink = make([]byte, 64<<10)
	}
	sink = nil
	runtime.ReadMemStats(&ms)
	return ms.NumGC - gc0
}

// With a small live heap serve collects at 4 times its size, not twice
// (serveGC): the same garbage takes at most half the collections it takes
// under Go's default.
func TestTuneGCFewerCollections(t *testing.T) {
	runtime.GC()
	dflt := allocGarbage(256 << 20)
	stop := tuneGC(300, 64<<20, "", "")
	defer stop()
	runtime.GC() // the tuner sets GOGC after each collection
	if got := gogc(); got != 300 {
		t.Errorf("GOGC %d with a small live heap, want 300", got)
	}
	if n := allocGarbage(256 << 20); n*2 > dflt {
		t.Errorf("%d collections for 256 MiB of garbage, %d under Go's default: want at most half", n, dflt)
	}
	stop()
	if got := gogc(); got != 100 {
		t.Errorf("GOGC %d after stop, want 100", got)
	}
}

// A live heap of half the ceiling or more is collected as Go's default
// does (twice live): a burst's big heap gets no more memory than before.
func TestTuneGCBigHeap(t *testing.T) {
	live := make([][]byte, 40)
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	stop := tuneGC(300, 64<<20, "", "")
	defer stop()
	runtime.GC()
	runtime.GC()
	if got := gogc(); got != 100 {
		t.Errorf("GOGC %d with 40 MiB live, want 100", got)
	}
	runtime.KeepAlive(live)
}

// An admin's GOGC or GOMEMLIMIT stands: the tuner does nothing.
func TestTuneGCAdminStands(t *testing.T) {
	for _, env := range [][2]string{{"200", ""}, {"", "1GiB"}} {
		stop := tuneGC(300, 64<<20, env[0], env[1])
		runtime.GC()
		runtime.GC()
		if got := gogc(); got != 100 {
			t.Errorf("GOGC=%q GOMEMLIMIT=%q: GOGC set to %d", env[0], env[1], got)
		}
		stop()
	}
}
