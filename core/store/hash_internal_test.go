package store

import (
	"context"
	"encoding/base64"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The dummy hash must be one VerifyPassword computes (same parameters as
// HashPassword), or a missing account would answer faster than a wrong
// password.
//
// Its form is checked exactly (every part VerifyPassword reads must
// parse, or it returns false at once), then the work: a check against it
// must cost about what a check against a real hash costs. The cost is
// the process's CPU time where it can be read (cpuTime), not the wall
// clock, which other processes' load stretches (the test failed at load
// 22-27 when it compared wall times measured one after the other); each
// round measures one of each, side by side, and the least of 5 rounds
// counts.
func TestDummyHashIsComputed(t *testing.T) {
	engineFree(t)
	if cheapTestHash {
		t.Skip("built with mailferry_testhash: hashes are cheap on purpose; the run without the tag tests this")
	}
	parts := strings.Split(dummyHash, "$")
	real, _ := HashPassword("x")
	rp := strings.Split(real, "$")
	if len(parts) != 6 || parts[1] != rp[1] || parts[2] != rp[2] || parts[3] != rp[3] || len(parts[5]) != len(rp[5]) {
		t.Fatalf("dummy hash %q does not have HashPassword's form %q", dummyHash, real)
	}
	b64 := base64.RawStdEncoding
	if salt, err := b64.DecodeString(parts[4]); err != nil || len(salt) == 0 {
		t.Fatalf("dummy hash's salt %q does not decode: %v", parts[4], err)
	}
	if key, err := b64.DecodeString(parts[5]); err != nil || len(key) != argonKeyLen {
		t.Fatalf("dummy hash's key %q does not decode to %d bytes: %v", parts[5], argonKeyLen, err)
	}
	cost := func(hash string) time.Duration {
		t0 := cpuTime()
		if VerifyPassword(hash, "y") {
			t.Fatal("matched")
		}
		return cpuTime() - t0
	}
	cost(real) // the first hash of the process faults its memory in
	var dReal, dDummy time.Duration
	for i := range 5 {
		r, d := cost(real), cost(dummyHash)
		if i == 0 || r < dReal {
			dReal = r
		}
		if i == 0 || d < dDummy {
			dDummy = d
		}
	}
	t.Logf("least cost of a check: real hash %v, dummy hash %v (%s)", dReal, dDummy, cpuClock)
	if dDummy < dReal/3 {
		t.Fatalf("a check against the dummy hash cost %v, against a real one %v: the dummy hash is not computed", dDummy, dReal)
	}
}

func TestHashingBounded(t *testing.T) {
	engineFree(t)
	h := newHashing(2)
	var cur, peak atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.run(context.Background(), func() {
				n := cur.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(5 * time.Millisecond)
				cur.Add(-1)
			})
		}()
	}
	wg.Wait()
	if p := peak.Load(); p != 2 {
		t.Fatalf("peak concurrent hashes %d, want 2", p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h.slots <- struct{}{}
	h.slots <- struct{}{}
	if err := h.run(ctx, func() { t.Error("ran without a slot") }); err == nil {
		t.Fatal("run with a cancelled context and no slot returned nil")
	}
}
