package migrate

// Connections to an old server: every account's copy shares one cap per
// old server (Settings.MaxConnections, lowered by what the server showed).
// An account's copy takes its first connection by waiting for a place; it
// takes more only where places are free, never waiting for them while it
// holds one, so copies cannot block each other. A connection the server
// turns away (oldserver.ErrTurnedAway) while the engine holds others
// lowers the cap to the number open and is learnt (learnt.go); the copy
// goes on with the connections it has.

import (
	"context"
	"sync"

	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/oldserver"
)

// connLimit counts the connections open to one old server.
type connLimit struct {
	mu      sync.Mutex
	want    int           // the cap the settings and what was learnt ask for
	max     int           // places; at least 1 (want, or lower once turned away)
	open    int           // places taken
	changed chan struct{} // closed (and replaced) when a place is freed
}

func newConnLimit(max int) *connLimit {
	return &connLimit{want: max, max: max, changed: make(chan struct{})}
}

// acquire takes a place, waiting for one while ctx lasts.
func (l *connLimit) acquire(ctx context.Context) error {
	for {
		l.mu.Lock()
		if l.open < l.max {
			l.open++
			l.mu.Unlock()
			return nil
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// tryAcquire takes a place if one is free.
func (l *connLimit) tryAcquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.max {
		return false
	}
	l.open++
	return true
}

// release frees a place taken by acquire or tryAcquire.
func (l *connLimit) release() {
	l.mu.Lock()
	l.open--
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// turnedAway records that the server turned a connection away while this
// one's place was still taken: the cap becomes the other places taken
// (at least 1), which it returns, and the place is freed.
func (l *connLimit) turnedAway() int {
	l.mu.Lock()
	l.open--
	l.max = max(1, min(l.max, l.open))
	n := l.max
	close(l.changed)
	l.changed = make(chan struct{})
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
		l = newConnLimit(want)
		e.conns[key] = l
	}
	l.mu.Lock()
	if want != l.want {
		l.want, l.max = want, want
		close(l.changed)
		l.changed = make(chan struct{})
	}
	l.mu.Unlock()
	return l
}

// extraConn opens one more connection for an account's copy if the old
// server's cap has a free place, else returns nil. The place is the
// connection's: release it with closeExtra. A connection the server turns
// away lowers the cap (and is learnt); any other failure returns nil too
// (the copy goes on with the connections it has).
func (e *Engine) extraConn(ctx context.Context, lim *connLimit, s *oldSettings, cred Credentials) *imapclient.Client {
	if !lim.tryAcquire() {
		return nil
	}
	c, err := e.connect(ctx, s, cred)
	if err == nil {
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
