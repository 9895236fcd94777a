package auth_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"mailferry/core/auth"
)

// An office behind one NAT address: more colleagues log in at once than
// the source's bucket holds. Each login holds a token while it is checked
// and gives it back on success, so the ones that find the bucket empty
// wait for those tokens instead of being told "too many failed logins":
// every one gets in. (Issue 17: 20+ logins behind one address were
// refused.)
func TestOfficeBehindOneAddress(t *testing.T) {
	p, st := newPolicy(t, auth.Options{PerSource: 4, PerNetwork: 8, MaxWait: 5 * time.Minute}) // the race detector makes each hash slow
	ctx := context.Background()
	const n = 24
	for i := range n {
		if _, err := st.CreateAccount(ctx, fmt.Sprintf("u%02d@example.test", i), fmt.Sprintf("Secret-%02d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = p.Login(ctx, req(fmt.Sprintf("u%02d@example.test", i), fmt.Sprintf("Secret-%02d", i), "198.51.100.7"))
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("colleague %d behind the shared address: %v", i, err)
		}
	}
}

// The waiting changes nothing for an attacker: a burst of wrong passwords
// from one address is checked only as many times as its bucket holds; the
// others are refused unchecked once those failed.
func TestBurstOfGuessesBoundedBySource(t *testing.T) {
	p, _ := newPolicy(t, auth.Options{PerSource: 4, PerAccount: 100})
	ctx := context.Background()
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed, limited := 0, 0
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := p.Login(ctx, req("carol@example.test", fmt.Sprintf("guess-%d", i), "198.51.100.9"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, auth.ErrFailed):
				failed++
			case errors.Is(err, auth.ErrLimited):
				limited++
			default:
				t.Errorf("guess %d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if failed != 4 || limited != n-4 {
		t.Errorf("%d guesses checked and failed, %d refused unchecked; want 4 and %d", failed, limited, n-4)
	}
	if _, err := p.Login(ctx, req("carol@example.test", "Carol-Secret-1", "198.51.100.9")); !errors.Is(err, auth.ErrLimited) {
		t.Errorf("the guessing address right after: %v, want ErrLimited", err)
	}
}
