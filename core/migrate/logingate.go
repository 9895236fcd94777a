package migrate

// Logins before copies: while first logins wait for the old server's
// answer, the engine's other work on the old server and on this machine
// (a copy's next FETCH, a job's start, an extra connection, a password
// hash) waits, so that a morning's burst of first logins is answered at
// the old server's own pace, not behind copies that load the same old
// server and the same cores. The hold is bounded (Options.LoginHold): a
// steady stream of logins never starves the copies; once a hold has
// lasted that long, copies go on beside the logins until none is in
// flight. A new hold begins only when copies have gone on, since the
// last hold ended, for as long as it lasted: first logins that come one
// after another, each as the last ends (an attacker's wrong passwords
// for addresses not yet moved need no more), hold copies half the time
// at most, not all of it. Each old server has a gate of its own (kept
// with its connection cap, connLimit.logins): the logins asking one old
// server hold only the copy work loading it (and the password hashes of
// its accounts), never another domain's on another old server.

import (
	"context"
	"sync"
	"time"
)

// loginGate counts the first logins asking the old server and holds
// copy work while there are any.
type loginGate struct {
	mu    sync.Mutex
	hold  time.Duration // longest hold; <= 0: copies never wait
	n     int           // first logins in flight
	since time.Time     // when the current hold began (n went 0 -> 1)
	until time.Time     // when it ends at the latest; == since: no hold
	next  time.Time     // the earliest a new hold may begin
	open  chan struct{} // closed when n drops to 0
	now   func() time.Time
}

func newLoginGate(hold time.Duration) *loginGate {
	ch := make(chan struct{})
	close(ch)
	return &loginGate{hold: hold, open: ch, now: time.Now}
}

// enter counts a first login asking the old server; the returned func
// counts it out (call it once).
func (g *loginGate) enter() func() {
	g.mu.Lock()
	g.n++
	if g.n == 1 {
		now := g.now()
		g.since, g.until, g.open = now, now, make(chan struct{})
		if !now.Before(g.next) {
			g.until = now.Add(g.hold)
		}
	}
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.n--
			if g.n == 0 {
				close(g.open)
				// Copies go on at least as long as they were held.
				end := g.now()
				if g.until.Before(end) {
					end = g.until
				}
				if next := end.Add(end.Sub(g.since)); next.After(g.next) {
					g.next = next
				}
			}
			g.mu.Unlock()
		})
	}
}

// wait returns once no first login is in flight, the current hold has
// lasted g.hold, or ctx ends (then ctx's error).
func (g *loginGate) wait(ctx context.Context) error {
	left, open := g.holding()
	if left <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(left)
	defer t.Stop()
	select {
	case <-open:
	case <-t.C:
	case <-ctx.Done():
	}
	return ctx.Err()
}

// holding says how long copy work would wait now at most (0: not at
// all), and the channel closed when no first login is in flight.
func (g *loginGate) holding() (left time.Duration, open chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == 0 || g.hold <= 0 {
		return 0, nil
	}
	return max(g.until.Sub(g.now()), 0), g.open
}

// inFlight is how many first logins ask the old server now.
func (g *loginGate) inFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}
