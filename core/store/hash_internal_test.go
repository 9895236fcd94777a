package store

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The dummy hash must be one VerifyPassword computes (same parameters as
// HashPassword), or a missing account would answer faster than a wrong
// password.
func TestDummyHashIsComputed(t *testing.T) {
	engineFree(t)
	if cheapTestHash {
		t.Skip("built with mailferry_testhash: hashes are cheap on purpose; the run without the tag tests this")
	}
	parts := strings.Split(dummyHash, "$")
	real, _ := HashPassword("x")
	rp := strings.Split(real, "$")
	if len(parts) != 6 || parts[3] != rp[3] || len(parts[5]) != len(rp[5]) {
		t.Fatalf("dummy hash %q does not have HashPassword's form %q", dummyHash, real)
	}
	best := func(hash string) time.Duration {
		var b time.Duration
		for i := range 3 {
			t0 := time.Now()
			if VerifyPassword(hash, "y") {
				t.Fatal("matched")
			}
			if d := time.Since(t0); i == 0 || d < b {
				b = d
			}
		}
		return b
	}
	dReal, dDummy := best(real), best(dummyHash)
	if dDummy < dReal/3 {
		t.Fatalf("dummy check took %v, a real one %v: the dummy hash is not computed", dDummy, dReal)
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
