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
// at most, not all of it. Logins that began sooner hold copies from that
// moment if they are still in flight (before, they held nothing as long
// as any was: a morning's burst that began 100 ms too soon after one
// login was answered wholly behind the copies). Each old server has a gate of its own (kept
// with its connection cap, connLimit.logins): the logins asking one old
// server hold only the copy work loading it (and the password hashes of
// its accounts), never another domain's on another old server.
//
// One copy goes on through a hold (the pass, passSeats): the job with the
// earliest turn (turn.go) holding a place that asks while a hold lasts,
// until its run ends; then the next in turn. A burst of fifty first logins lasts as
// long as the old server takes to answer them all (1.3-1.5 s on the
// fixture, quiet machine; 2.5-3.4 s at load 10-17), and with every copy
// held the first user to log in waited for all the others' logins before
// a message of theirs arrived (the first of fifty accounts done at
// 0.37-0.39 of the whole copy). Each seat costs the logins one
// connection's worth of the old server; the copies after it wait as
// before. Two seats were measured and not kept: in three paired runs of
// BenchmarkManyUsers' serve side the fifty took 10-25% longer, and half
// of them were done no sooner (0.71 of the whole copy both). Work that is
// not a job's (a password hash) never passes.

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// loginGate counts the first logins asking the old server and holds
// copy work while there are any.
type loginGate struct {
	mu    sync.Mutex
	hold  time.Duration // longest hold; <= 0: copies never wait
	n     int           // first logins in flight
	since time.Time     // when the current hold begins (n went 0 -> 1, or later: next)
	until time.Time     // when it ends at the latest
	next  time.Time     // the earliest a new hold may begin
	open  chan struct{} // closed when n drops to 0
	now   func() time.Time

	pass  []uint64   // the turns of the jobs whose copies go on through holds (at most passSeats)
	queue []gateTurn // jobs waiting for the pass, by turn
}

// passSeats is how many jobs' copies go on through a hold at once.
const passSeats = 1

// gateTurn is a job's wait for the pass.
type gateTurn struct {
	turn uint64
	ch   chan struct{} // closed when the pass is given to turn
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
		// Logins that begin too soon after the last hold hold copies
		// from next on, if they are still in flight then.
		g.since = g.now()
		if g.since.Before(g.next) {
			g.since = g.next
		}
		g.until, g.open = g.since.Add(g.hold), make(chan struct{})
	}
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.n--
			if g.n == 0 {
				close(g.open)
				// Copies go on at least as long as they were held
				// (not at all if the hold had not begun).
				end := g.now()
				if g.until.Before(end) {
					end = g.until
				}
				if end.After(g.since) {
					g.next = end.Add(end.Sub(g.since))
				}
			}
			g.mu.Unlock()
		})
	}
}

// wait returns once no first login is in flight, the current hold has
// lasted g.hold, ctx's job holds the pass (jobTurn; a seat taken here when
// one is free and no earlier turn waits for it), or ctx ends (then ctx's error). A job
// that took the pass gives it up with leave.
func (g *loginGate) wait(ctx context.Context) error {
	turn := jobTurn(ctx)
	left, open, mine := g.through(turn)
	if left <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(left)
	defer t.Stop()
	select {
	case <-open:
	case <-t.C:
	case <-mine:
	case <-ctx.Done():
	}
	if mine != nil {
		g.mu.Lock()
		if i := slices.IndexFunc(g.queue, func(w gateTurn) bool { return w.ch == mine }); i >= 0 {
			g.queue = slices.Delete(g.queue, i, i+1)
		}
		g.mu.Unlock()
	}
	return ctx.Err()
}

// through is holding for a job's turn (0: not a job's): no wait if the
// job holds the pass or takes it now; else a job waits in line for it
// too (mine, closed when it is given).
func (g *loginGate) through(turn uint64) (left time.Duration, open, mine chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	left, open = g.holdingLocked()
	if left <= 0 || turn == 0 {
		return left, open, nil
	}
	if slices.Contains(g.pass, turn) {
		return 0, nil, nil
	}
	if len(g.pass) < passSeats && (len(g.queue) == 0 || g.queue[0].turn >= turn) {
		g.pass = append(g.pass, turn)
		return 0, nil, nil
	}
	w := gateTurn{turn, make(chan struct{})}
	at, _ := slices.BinarySearchFunc(g.queue, turn, func(q gateTurn, t uint64) int { return cmp.Compare(q.turn, t+1) })
	g.queue = slices.Insert(g.queue, at, w)
	return left, open, w.ch
}

// leave gives the pass up if the job of turn holds it (its run ended):
// to the earliest turn waiting for it, if any.
func (g *loginGate) leave(turn uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := slices.Index(g.pass, turn)
	if turn == 0 || i < 0 {
		return
	}
	g.pass = slices.Delete(g.pass, i, i+1)
	if len(g.queue) == 0 {
		return
	}
	next := g.queue[0].turn
	g.pass = append(g.pass, next)
	n := 0
	for n < len(g.queue) && g.queue[n].turn == next { // the job's every waiter (its connections)
		close(g.queue[n].ch)
		n++
	}
	g.queue = slices.Delete(g.queue, 0, n)
}

// passes says whether the job of turn goes on through a hold now: one is
// on and the job holds the pass.
func (g *loginGate) passes(turn uint64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	left, _ := g.holdingLocked()
	return left > 0 && turn != 0 && slices.Contains(g.pass, turn)
}

// holds says whether copy work not holding the pass would wait now.
func (g *loginGate) holds() bool {
	left, _ := g.holding()
	return left > 0
}

// holding says how long copy work would wait now at most (0: not at
// all), and the channel closed when no first login is in flight.
func (g *loginGate) holding() (left time.Duration, open chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.holdingLocked()
}

// holdingLocked is holding with g.mu held.
func (g *loginGate) holdingLocked() (left time.Duration, open chan struct{}) {
	if g.n == 0 || g.hold <= 0 {
		return 0, nil
	}
	now := g.now()
	if now.Before(g.since) { // not begun yet (next)
		return 0, nil
	}
	return max(g.until.Sub(now), 0), g.open
}

// inFlight is how many first logins ask the old server now.
func (g *loginGate) inFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}
