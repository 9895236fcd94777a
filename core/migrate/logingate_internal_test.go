package migrate

import (
	"context"
	"testing"
	"time"
)

// TestLoginGatePulsed: first logins that come one after another, each
// ending as the next begins (an attacker's wrong passwords for addresses
// not yet moved, from as many sources as the rate limits ask), must not
// hold copy work most of the time: a hold of copies is followed by at
// least as long without one. Without that, each login began a new hold
// the moment the last ended, and copies went on one FETCH per login.
func TestLoginGatePulsed(t *testing.T) {
	const hold = 10 * time.Second
	for _, pulse := range []time.Duration{500 * time.Millisecond, 2 * time.Second, 9 * time.Second, 30 * time.Second} {
		now := time.Unix(1_000_000, 0)
		g := newLoginGate(hold)
		g.now = func() time.Time { return now }
		const step = 10 * time.Millisecond
		var held, total time.Duration
		out := g.enter()
		for start := now; now.Sub(start) < 10*time.Minute; now = now.Add(step) {
			if now.Sub(start)%pulse == 0 && now != start {
				// One login ends, the next begins at once.
				out()
				out = g.enter()
			}
			if left, _ := g.holding(); left > 0 {
				held += step
			}
			total += step
		}
		out()
		if frac := float64(held) / float64(total); frac > 0.55 {
			t.Errorf("logins of %v one after another: copies held %.0f%% of 10 minutes, want at most half", pulse, 100*frac)
		}
	}
	// A lone login still holds copies while it is in flight, up to hold.
	now := time.Unix(2_000_000, 0)
	g := newLoginGate(hold)
	g.now = func() time.Time { return now }
	out := g.enter()
	now = now.Add(hold / 2)
	if left, _ := g.holding(); left != hold/2 {
		t.Errorf("a lone login in flight for %v: copies held for %v more, want %v", hold/2, left, hold/2)
	}
	out()
	if left, _ := g.holding(); left != 0 {
		t.Errorf("no login in flight: copies held for %v", left)
	}
	// After a long quiet time the next login holds copies again.
	now = now.Add(time.Hour)
	out = g.enter()
	if left, _ := g.holding(); left != hold {
		t.Errorf("a login after an hour of none: copies held for %v, want %v", left, hold)
	}
	out()
}

// A login that begins too soon after the last hold (before copies went
// on as long as it lasted) holds copies from then on if it is still in
// flight, and the burst that comes with it too. Without that, a first
// login coming that soon held nothing for as long as any was in flight:
// fifty logins of a morning's burst that began 100 ms too soon were
// answered behind every copy, and TestFirstLoginsBeforeCopies failed
// when bob's login (a hold) ended less than its own length before
// alice's began.
func TestLoginGateHoldsOnceCopiesWentOn(t *testing.T) {
	const hold = 10 * time.Second
	start := time.Unix(1_000_000, 0)
	now := start
	g := newLoginGate(hold)
	g.now = func() time.Time { return now }
	at := func(d time.Duration, want time.Duration) {
		t.Helper()
		now = start.Add(d)
		if left, _ := g.holding(); left != want {
			t.Errorf("at %v: copies held for %v more, want %v", d, left, want)
		}
	}
	out := g.enter()
	at(2*time.Second, hold-2*time.Second)
	out() // held 2 s: copies go on until 4 s at least
	at(3*time.Second, 0)
	out = g.enter() // a burst begins 1 s too soon
	at(3*time.Second, 0)
	at(4*time.Second, hold) // copies went on as long as they were held
	at(10*time.Second, hold-6*time.Second)
	out() // held 6 s: copies go on until 16 s at least
	at(11*time.Second, 0)
	out = g.enter()
	at(15*time.Second, 0)
	at(16*time.Second, hold)
	at(16*time.Second+hold, 0) // bounded
	at(30*time.Second, 0)
	out() // held 10 s: copies go on until 36 s at least
	// A login that ends before its hold began moves nothing.
	now = start.Add(31 * time.Second)
	g.enter()()
	at(36*time.Second, 0)
	out = g.enter()
	at(36*time.Second, hold)
	out()
}

// One job's copy at a time goes on through a hold (the pass), given on
// in the order of the jobs' turns, not the order they asked; work that is
// not a job's (a password hash) never passes; the hold's bound and its end
// still let everyone through.
func TestLoginGatePassInTurn(t *testing.T) {
	g := newLoginGate(time.Minute)
	out := g.enter()
	ctx := context.Background()
	job := func(turn uint64) context.Context { return withTurn(ctx, turn) }
	if err := g.wait(job(50)); err != nil { // the first to ask takes the pass
		t.Fatal(err)
	}
	if err := g.wait(job(50)); err != nil { // and keeps it (its other connections too)
		t.Fatal(err)
	}
	through := make(chan uint64, 8)
	waiter := func(ctx context.Context, turn uint64) {
		go func() {
			if g.wait(ctx) == nil {
				through <- turn
			}
		}()
	}
	queued := func(n int) {
		t.Helper()
		waitQueued(t, n, "for the pass", func() int {
			g.mu.Lock()
			defer g.mu.Unlock()
			return len(g.queue)
		})
	}
	waiter(job(70), 70)
	queued(1)
	waiter(job(60), 60)
	queued(2)
	waiter(ctx, 0) // a hash: no turn
	nothing := func() {
		t.Helper()
		select {
		case got := <-through:
			t.Fatalf("turn %d went through the hold while turn 50 held the pass", got)
		case <-time.After(50 * time.Millisecond):
		}
	}
	nothing()
	g.leave(70) // not the holder: changes nothing
	nothing()
	g.leave(50)
	if got := <-through; got != 60 {
		t.Fatalf("the pass went to turn %d, want 60 (the earlier turn, which asked later)", got)
	}
	nothing()
	g.leave(60)
	if got := <-through; got != 70 {
		t.Fatalf("the pass went to turn %d, want 70", got)
	}
	nothing() // the hash waits on
	out()
	if got := <-through; got != 0 {
		t.Fatalf("got %d, want the hash (0) once no login is in flight", got)
	}
	g.leave(70)
	// A hold's bound lets the ones waiting for the pass through too.
	now := time.Unix(1_000_000, 0)
	g2 := newLoginGate(time.Second)
	g2.now = func() time.Time { return now }
	defer g2.enter()()
	if err := g2.wait(withTurn(ctx, 1)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second)
	wctx, cancel := context.WithTimeout(withTurn(ctx, 2), 5*time.Second)
	defer cancel()
	if err := g2.wait(wctx); err != nil {
		t.Fatalf("turn 2 after the hold's bound: %v", err)
	}
}
