package store

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestReserveLoginCheck: a reservation takes a place among the checks of
// every key or, when one key has no whole attempt left, none at all and
// names that key, busy when checks under way (not failures alone) fill it;
// reservations at once through two Stores on one database grant exactly
// the capacity between them; ending a check gives its place back and
// counts or clears failures; a dead process's places count only for the
// lease; hostile keys are refused, nothing written.
func TestReserveLoginCheck(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mail.db")
	a, err := testOpen(t, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := testOpen(t, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const refill, lease = time.Hour, time.Minute
	src := LoginFailureKey{"src 192.0.2.9/32", 10}
	acct := LoginFailureKey{"acct bob@example.test 192.0.2.9/32", 2}
	keys := []LoginFailureKey{src, acct}
	var last int64 // the last check let in
	reserve := func(s *Store, keys ...LoginFailureKey) (int, bool) {
		t.Helper()
		check, refused, busy, err := s.ReserveLoginCheck(ctx, keys, refill, lease)
		if err != nil {
			t.Fatal(err)
		}
		if (check != 0) != (refused == -1) {
			t.Fatalf("check %d, refused by %d: a check ID is given exactly when the places were taken", check, refused)
		}
		if check != 0 {
			last = check
		}
		return refused, busy
	}
	failures := func(key string) float64 {
		t.Helper()
		got, err := b.LoginFailures(ctx, []string{key}, refill)
		if err != nil {
			t.Fatal(err)
		}
		return got[key]
	}
	// Two checks under way, one on each Store, fill the account's key.
	var checks [2]int64
	for i, s := range []*Store{a, b} {
		if refused, _ := reserve(s, keys...); refused != -1 {
			t.Fatalf("reservation %d refused by key %d", i, refused)
		}
		checks[i] = last
	}
	if checks[0] == checks[1] {
		t.Fatal("two checks were given one ID")
	}
	if refused, busy := reserve(a, keys...); refused != 1 || !busy {
		t.Fatalf("third check: refused by %d, busy %v; want 1, busy (checks under way)", refused, busy)
	}
	// One fails: a failure counted, its place back; the key is still full
	// (one failure, one check).
	if err := a.EndLoginCheck(ctx, checks[0], keys, nil, refill); err != nil {
		t.Fatal(err)
	}
	if got := failures(acct.Key); math.Abs(got-1) > 0.01 {
		t.Fatalf("account failures after one failed check: %.2f, want 1", got)
	}
	if refused, busy := reserve(b, keys...); refused != 1 || !busy {
		t.Fatalf("with one failure and one check: refused by %d, busy %v; want 1, busy", refused, busy)
	}
	// The other fails too: two failures fill it, not busy any more.
	if err := b.EndLoginCheck(ctx, checks[1], keys, nil, refill); err != nil {
		t.Fatal(err)
	}
	if refused, busy := reserve(a, keys...); refused != 1 || busy {
		t.Fatalf("with two failures: refused by %d, busy %v; want 1, not busy (failures only)", refused, busy)
	}
	// A refused reservation took no place of the source's.
	if refused, _ := reserve(a, LoginFailureKey{src.Key, 3}); refused != -1 {
		t.Fatal("the source's key refused")
	}
	if refused, busy := reserve(a, LoginFailureKey{src.Key, 3}); refused != 0 || busy != true {
		// 2 failures + 1 check + 1 > 3
		t.Fatalf("source key of capacity 3 with 2 failures and 1 check: refused by %d, busy %v", refused, busy)
	}
	if err := a.EndLoginCheck(ctx, last, nil, nil, refill); err != nil {
		t.Fatal(err)
	}
	// A success clears the account's failures.
	if err := b.EndLoginCheck(ctx, 0, nil, []string{acct.Key}, refill); err != nil {
		t.Fatal(err)
	}
	if got := failures(acct.Key); got != 0 {
		t.Fatalf("account failures after a success: %.2f", got)
	}
	// Ending a check twice, or one never let in, gives back no other
	// check's place.
	for _, c := range []int64{checks[0], checks[0], checks[1], 12345, -1} {
		if err := a.EndLoginCheck(ctx, c, nil, nil, refill); err != nil {
			t.Fatal(err)
		}
	}
	for i := range acct.Capacity {
		if refused, _ := reserve(a, acct); refused != -1 {
			t.Fatalf("reservation %d after the account's key was cleared: refused", i)
		}
	}
	if refused, _ := reserve(a, acct); refused != 0 {
		t.Fatal("a place beyond the capacity was given (ending a check twice gave back another's place)")
	}

	// At once through both Stores: exactly the capacity is granted.
	burst := LoginFailureKey{"acct burst@example.test 192.0.2.10/32", 5}
	granted := make(chan bool, 40)
	start := make(chan struct{})
	for i := range 40 {
		s := []*Store{a, b}[i%2]
		go func() {
			<-start
			_, refused, _, err := s.ReserveLoginCheck(ctx, []LoginFailureKey{burst}, refill, lease)
			if err != nil {
				t.Error(err)
			}
			granted <- err == nil && refused == -1
		}()
	}
	close(start)
	n := 0
	for range 40 {
		if <-granted {
			n++
		}
	}
	if n != burst.Capacity {
		t.Fatalf("%d of 40 reservations at once granted, want %d (the capacity)", n, burst.Capacity)
	}

	// A process that died mid-check: its places count for the lease only.
	dead := LoginFailureKey{"src 192.0.2.11/32", 1}
	if _, refused, _, err := a.ReserveLoginCheck(ctx, []LoginFailureKey{dead}, refill, 300*time.Millisecond); err != nil || refused != -1 {
		t.Fatalf("reservation: %d, %v", refused, err)
	}
	if refused, busy := reserve(b, dead); refused != 0 || !busy {
		t.Fatalf("during the lease: refused by %d, busy %v", refused, busy)
	}
	time.Sleep(400 * time.Millisecond)
	if refused, _ := reserve(b, dead); refused != -1 {
		t.Fatal("a dead process's place still counts after its lease")
	}

	// Hostile keys: refused, nothing written.
	before := loginFailureRows(t, a) + countRows(t, a, "login_checks")
	for _, keys := range [][]LoginFailureKey{
		{{"", 3}},
		{{strings.Repeat("k", MaxLoginFailureKey+1), 3}},
		{{"src ok", 3}, {"src zero", 0}},
		{{"src negative", -1}},
		{{"src twice", 3}, {"src twice", 3}},
	} {
		if _, _, _, err := a.ReserveLoginCheck(ctx, keys, refill, lease); !errors.Is(err, ErrInvalid) {
			t.Fatalf("reservation of %d hostile keys: %v, want ErrInvalid", len(keys), err)
		}
		if slices.ContainsFunc(keys, func(k LoginFailureKey) bool { return k.Key == "src twice" }) {
			continue // failures may be counted twice against one key
		}
		if err := a.EndLoginCheck(ctx, 0, keys, nil, refill); !errors.Is(err, ErrInvalid) {
			t.Fatalf("end with %d hostile failed keys: %v, want ErrInvalid", len(keys), err)
		}
	}
	if _, _, _, err := a.ReserveLoginCheck(ctx, []LoginFailureKey{src}, 0, lease); !errors.Is(err, ErrInvalid) {
		t.Fatalf("reservation with no refill: %v, want ErrInvalid", err)
	}
	if _, _, _, err := a.ReserveLoginCheck(ctx, []LoginFailureKey{src}, refill, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("reservation with no lease: %v, want ErrInvalid", err)
	}
	if err := a.EndLoginCheck(ctx, 0, nil, nil, -time.Second); !errors.Is(err, ErrInvalid) {
		t.Fatalf("end with a negative refill: %v, want ErrInvalid", err)
	}
	if after := loginFailureRows(t, a) + countRows(t, a, "login_checks"); after != before {
		t.Fatalf("hostile calls wrote rows: %d before, %d after", before, after)
	}
}
