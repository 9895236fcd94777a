package store

import (
	"context"
	"testing"
	"time"
)

// TestLoginCheckLeakRecovers: a process that died mid-check (it reserved
// a place and never ended it) holds that place for its lease only, even
// while other logins of the same key keep coming: each of them must not
// make the dead one's place count for another lease. (An office behind
// one address logs in all day; a node killed during its morning burst
// must not leave the office's source with fewer places until evening.)
func TestLoginCheckLeakRecovers(t *testing.T) {
	ctx := context.Background()
	a, b := twoStores(t)
	const refill, lease = time.Hour, 1500 * time.Millisecond
	key := LoginFailureKey{"src 192.0.2.20/32", 2}
	// a dies mid-check: its place is never given back.
	if _, refused, _, err := a.ReserveLoginCheck(ctx, []LoginFailureKey{key}, refill, lease); err != nil || refused != -1 {
		t.Fatalf("the dead process's reservation: refused by %d, %v", refused, err)
	}
	died := time.Now()
	// b's logins keep coming, one at a time, for two leases.
	for time.Since(died) < 2*lease+500*time.Millisecond {
		check, refused, _, err := b.ReserveLoginCheck(ctx, []LoginFailureKey{key}, refill, lease)
		if err != nil {
			t.Fatal(err)
		}
		if refused != -1 {
			t.Fatalf("a login alone beside the dead one's place refused %v after the death", time.Since(died).Round(time.Millisecond))
		}
		if err := b.EndLoginCheck(ctx, check, nil, nil, refill); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The dead one's lease is long over: both places are free.
	for i := range key.Capacity {
		_, refused, busy, err := b.ReserveLoginCheck(ctx, []LoginFailureKey{key}, refill, lease)
		if err != nil {
			t.Fatal(err)
		}
		if refused != -1 {
			t.Fatalf("check %d of %d at once, %v after a process died mid-check (lease %v): refused (busy %v); the dead check's place still counts", i+1, key.Capacity, time.Since(died).Round(time.Millisecond), lease, busy)
		}
	}
}
