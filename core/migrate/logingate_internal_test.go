package migrate

import (
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
