package main

import (
	"runtime"
	"runtime/metrics"
	"testing"
)

func TestGCPercent(t *testing.T) {
	for _, c := range []struct {
		live, floor uint64
		want        int
	}{
		{4 << 20, 64 << 20, 1500}, // goal 64 MiB
		{32 << 20, 64 << 20, 100}, // twice live is the floor
		{40 << 20, 64 << 20, 100}, // above: Go's default
		{0, 64 << 20, 6300},       // counted as 1 MiB live
		{10 << 20, 64 << 20, 500}, // 540%: goal 60 MiB
	} {
		if got := gcPercent(c.live, c.floor); got != c.want {
			t.Errorf("gcPercent(%d, %d) = %d, want %d", c.live, c.floor, got, c.want)
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

// With the floor a small live heap is collected once per about floor
// bytes allocated, not once per its own size (serveHeapFloor): 256 MiB of
// garbage beside this test binary's few MiB live heap took 40-60
// collections under Go's default, at most 256/48 with a 64 MiB floor.
func TestGCFloorFewerCollections(t *testing.T) {
	runtime.GC()
	stop := gcFloor(64<<20, "", "")
	defer stop()
	runtime.GC() // the floor applies from the collection after it
	if got := gogc(); got <= 100 {
		t.Errorf("GOGC %d with a small live heap and the floor on", got)
	}
	if n := allocGarbage(256 << 20); n > 6 {
		t.Errorf("%d collections for 256 MiB of garbage with a 64 MiB heap floor, want at most 6", n)
	}
	stop()
	if got := gogc(); got != 100 {
		t.Errorf("GOGC %d after stop, want 100", got)
	}
}

// A live heap of half the floor or more is collected as Go's default
// does (twice live): the floor adds no memory to a big heap.
func TestGCFloorBigHeap(t *testing.T) {
	live := make([][]byte, 40)
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	stop := gcFloor(64<<20, "", "")
	defer stop()
	runtime.GC()
	runtime.GC()
	if got := gogc(); got != 100 {
		t.Errorf("GOGC %d with 40 MiB live, want 100", got)
	}
	runtime.KeepAlive(live)
}

// An admin's GOGC or GOMEMLIMIT stands: the floor does nothing.
func TestGCFloorAdminStands(t *testing.T) {
	for _, env := range [][2]string{{"200", ""}, {"", "1GiB"}} {
		stop := gcFloor(64<<20, env[0], env[1])
		runtime.GC()
		runtime.GC()
		if got := gogc(); got != 100 {
			t.Errorf("GOGC=%q GOMEMLIMIT=%q: GOGC set to %d", env[0], env[1], got)
		}
		stop()
	}
}
