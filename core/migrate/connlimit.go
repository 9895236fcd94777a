package migrate

// Connections to an old server: every account's copy shares one cap per
// old server (Settings.MaxConnections, lowered by what the server showed).
// An account's copy takes its first connection by waiting for a place; it
// takes more only where places are free, never waiting for them while it
// holds one, so copies cannot block each other. A connection the server
// turns away (oldserver.ErrTurnedAway) while the engine holds others
// lowers the cap to the number open and is learnt (learnt.go); the copy
// goes on with the connections it has. A lowered cap climbs back: when a
// copy wants a place and none is free, once Options.CapProbeAfter has
// passed since the cap last changed and a connection opened well
// meanwhile, the cap is raised by one (a probe); the server's refusal of
// that connection lowers it again. It never goes above the admin's cap
// (Settings.MaxConnections).

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/oldserver"
)

// connLimit counts the connections open to one old server.
type connLimit struct {
	mu      sync.Mutex
	want    int         // the cap the settings and what was learnt ask for
	ceiling int         // the admin's cap: probes never pass it
	max     int         // places; at least 1 (want, or lower once turned away, or probed up)
	open    int         // places taken
	waiting int         // acquire calls waiting for a place: len(queue)
	queue   []placeTurn // their turns, by turn (turnOf); closed when given a place

	quiet time.Duration    // between a change of max and a probe; < 0: never
	since time.Time        // when max last changed
	ok    int              // connections opened well since
	now   func() time.Time // time.Now, or a test's clock

	// logins are the first logins asking this old server, which hold
	// the copy work loading it (logingate.go).
	logins *loginGate
	// streams are the accounts' downloads from it, in turn (streams.go).
	streams *streamTurns
}

func newConnLimit(n, ceiling int, quiet, loginHold time.Duration) *connLimit {
	return &connLimit{want: n, ceiling: max(ceiling, n), max: n,
		quiet: quiet, since: time.Now(), now: time.Now, logins: newLoginGate(loginHold)}
}

// probe raises the cap by one (and says so) when it is below the admin's,
// quiet has passed since it last changed and a connection opened well
// meanwhile. l.mu is held.
func (l *connLimit) probe() bool {
	if l.max >= l.ceiling || l.ok == 0 || l.quiet < 0 || l.now().Sub(l.since) < l.quiet {
		return false
	}
	l.max++
	l.since, l.ok = l.now(), 0
	return true
}

// opened counts a connection that opened well on a place taken.
func (l *connLimit) opened() {
	l.mu.Lock()
	l.ok++
	l.mu.Unlock()
}

// placeTurn is an acquire call waiting for a place.
type placeTurn struct {
	turn uint64
	ch   chan struct{}
}

// acquire takes a place, waiting for one while ctx lasts. Waiters get
// places in the order of their turns (turnOf: a job's is when it was
// scheduled, so a copy waiting since a burst's first login goes before
// one of its last even when both waited for the burst's logins first and
// came here at the same instant; and the first login's kept connection
// is still open when its place comes: firstPlace).
func (l *connLimit) acquire(ctx context.Context) error {
	l.mu.Lock()
	if l.waiting == 0 && (l.open < l.max || l.probe()) {
		l.open++
		l.mu.Unlock()
		return nil
	}
	turn := placeTurn{turnOf(ctx), make(chan struct{})}
	at, _ := slices.BinarySearchFunc(l.queue, turn.turn, func(w placeTurn, t uint64) int { return cmp.Compare(w.turn, t+1) })
	l.queue = slices.Insert(l.queue, at, turn)
	l.waiting++
	l.mu.Unlock()
	select {
	case <-turn.ch:
		return nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if i := slices.IndexFunc(l.queue, func(w placeTurn) bool { return w.ch == turn.ch }); i >= 0 {
		l.queue = slices.Delete(l.queue, i, i+1)
		l.waiting--
	} else {
		// Given a place as ctx ended: it goes to the next in line.
		l.open--
		l.give()
	}
	return ctx.Err()
}

// give hands free places to the waiters, first come first. l.mu is held.
func (l *connLimit) give() {
	for l.waiting > 0 && (l.open < l.max || l.probe()) {
		turn := l.queue[0]
		l.queue = slices.Delete(l.queue, 0, 1)
		l.waiting--
		l.open++
		close(turn.ch)
	}
}

// tryExtra takes a place for a copy's extra connection: only if one is
// free and no copy waits for its first one (acquire). An account waiting
// for its first connection comes before another's second: fairer, and
// one login fewer at the old server, whose logins are its dearest work.
func (l *connLimit) tryExtra() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.waiting > 0 || (l.open >= l.max && !l.probe()) {
		return false
	}
	l.open++
	return true
}

// places is the cap now: how many connections may be open at once.
func (l *connLimit) places() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.max
}

// tryAcquire takes a place if one is free.
func (l *connLimit) tryAcquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.max && !l.probe() {
		return false
	}
	l.open++
	return true
}

// release frees a place taken by acquire or tryAcquire.
func (l *connLimit) release() {
	l.mu.Lock()
	l.open--
	l.give()
	l.mu.Unlock()
}

// turnedAway records that the server turned a connection away while this
// one's place was still taken: the cap becomes the other places taken
// (at least 1), which it returns, and the place is freed.
func (l *connLimit) turnedAway() int {
	l.mu.Lock()
	l.open--
	l.max = max(1, min(l.max, l.open))
	l.since, l.ok = l.now(), 0
	n := l.max
	l.give()
	l.mu.Unlock()
	return n
}

// limits returns the connection cap of s's old server, made at its first
// use from s.ConnLimit() and what was learnt (s.Learnt's ConnCap). When
// those ask for another cap than before (the admin changed it, or a
// connection test found the server takes more), that one applies.
func (e *Engine) limits(s *oldSettings) *connLimit {
	key := oldserver.LearntKey(*s)
	want := s.ConnLimit()
	if l := s.Learnt.For(*s); l != nil && l.ConnCap > 0 {
		want = min(want, l.ConnCap)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.conns[key]
	if l == nil {
		l = newConnLimit(want, s.ConnLimit(), e.opts.CapProbeAfter, e.opts.LoginHold)
		l.streams = newStreamTurns(e.opts.Streams, e.opts.StreamWait)
		e.conns[key] = l
	}
	l.mu.Lock()
	l.ceiling = max(s.ConnLimit(), want)
	if want != l.want {
		l.want, l.max = want, want
		l.give()
	}
	l.mu.Unlock()
	return l
}

// extraConn opens one more connection for an account's copy if the old
// server's cap has a free place no other copy waits for (tryExtra), else
// returns nil. The place is the
// connection's: release it with closeExtra. A connection the server turns
// away lowers the cap (and is learnt); any other failure returns nil too
// (the copy goes on with the connections it has).
func (e *Engine) extraConn(ctx context.Context, lim *connLimit, s *oldSettings, cred Credentials) *imapclient.Client {
	// First logins being answered come before one more login of a copy,
	// also the copy going on through their hold (the pass: it makes do
	// with its first connection until the hold ends).
	if lim.logins.wait(ctx) != nil || lim.logins.holds() || !lim.tryExtra() {
		return nil
	}
	c, err := e.connect(ctx, s, cred)
	if err == nil {
		lim.opened()
		// Cut when the copy's ctx ends (see copyAccount); the
		// registration lasts as long as the copy.
		context.AfterFunc(ctx, func() { go c.Close() })
		return c
	}
	e.dropped(ctx, lim, s, cred, err)
	return nil
}

// dropped frees the place of a connection that failed with err: if the
// server turned the connection away, the cap is lowered and learnt; if it
// refused one more login of the user (a cap on each user's sessions, which
// the user's own client shares), that is learnt and only this account goes
// on with fewer; else the place is only freed.
func (e *Engine) dropped(ctx context.Context, lim *connLimit, s *oldSettings, cred Credentials, err error) {
	if !errorsIsTurnedAway(err) {
		lim.release()
		return
	}
	if oldserver.TurnedAwayUser(err) {
		lim.release()
		e.log.Info("migrate: the old server refused one more session of the user; going on with fewer", "account", cred.Address, "said", oldserver.TurnedAwayWords(err))
		e.learn(context.WithoutCancel(ctx), cred.Address, s, oldserver.FromTurnedAway(*s, 0, err))
		return
	}
	n := lim.turnedAway()
	e.log.Info("migrate: the old server turned an extra connection away; going on with fewer", "account", cred.Address, "server", oldserver.LearntKey(*s), "cap", n, "said", oldserver.TurnedAwayWords(err))
	e.learn(context.WithoutCancel(ctx), cred.Address, s, oldserver.FromTurnedAway(*s, n, err))
}

// closeExtra closes a connection opened by extraConn and frees its place.
func closeExtra(lim *connLimit, c *imapclient.Client) {
	if c == nil {
		return
	}
	closeClient(c)
	lim.release()
}
