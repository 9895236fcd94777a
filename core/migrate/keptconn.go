package migrate

import (
	"context"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/store"
)

// The connection a first login made to the old server is kept for the
// account's copy, with the place it holds under the old server's cap, so
// that the copy starts without a second login.

// keptConn is a logged-in old-server connection left for an account's copy.
type keptConn struct {
	c     *imapclient.Client
	cred  Credentials
	place *connLimit // whose place c holds; nil if none
	at    time.Time  // when it was kept
}

// keptConnMaxAge is how long a kept connection waits for its copy; an
// older one may have been dropped by the old server as idle.
var keptConnMaxAge = 20 * time.Second

// keepConn leaves c, logged in with cred as the account's user, for the
// account's next copy, which then starts without logging in again (a first
// login's copy starts sooner). With place (not nil), c holds a place of
// that old server's cap, which goes with it to the copy. It replaces a
// connection kept before. One not taken within keptConnMaxAge (the job
// waits for a free slot, or fails before copying) is closed then, with its
// place freed, not held open on the old server.
func (e *Engine) keepConn(id int64, cred Credentials, c *imapclient.Client, place *connLimit) {
	e.mu.Lock()
	old, had := e.kept[id]
	k := keptConn{c: c, cred: cred, place: place, at: time.Now()}
	if e.closed {
		old, had = k, true
	} else {
		e.kept[id] = k
		time.AfterFunc(keptConnMaxAge, func() {
			e.mu.Lock()
			cur, ok := e.kept[id]
			ok = ok && cur.c == c
			if ok {
				delete(e.kept, id)
			}
			e.mu.Unlock()
			if ok {
				cur.close()
			}
		})
	}
	e.mu.Unlock()
	if had {
		old.close()
	}
}

// close closes a kept connection and frees its place.
func (k keptConn) close() {
	closeClient(k.c)
	if k.place != nil {
		k.place.release()
	}
}

// takeConn returns the connection kept for the account if it was logged in
// with cred, the cap whose place it holds (nil if none) and when it was
// kept, else nil (closing one that was not). One older than
// keptConnMaxAge is gone already: keepConn's timer closed it.
func (e *Engine) takeConn(id int64, cred Credentials) (*imapclient.Client, *connLimit, time.Time) {
	e.mu.Lock()
	k, ok := e.kept[id]
	delete(e.kept, id)
	e.mu.Unlock()
	if !ok {
		return nil, nil, time.Time{}
	}
	same := strings.EqualFold(k.cred.Address, cred.Address) && k.cred.Password == cred.Password &&
		k.cred.MasterUser == cred.MasterUser && k.cred.MasterPassword == cred.MasterPassword
	if !same {
		k.close()
		return nil, nil, time.Time{}
	}
	return k.c, k.place, k.at
}

// firstPlace returns the connection kept for the account's copy (nil if
// none: the copy dials one) and the old server's cap, a place of which it
// holds for the copy's first connection: the kept connection's, or one
// waited for while ctx lasts (never waited for while holding another).
// A kept connection without a place (its login found none free) stays
// open while the job waits for one, until keptConnMaxAge after its login:
// the old server, whose logins are its dearest work, is not asked for a
// second login of the user. (It was opened beside the cap by the login,
// which never waits; it is kept no longer than keepConn keeps any.)
func (e *Engine) firstPlace(ctx context.Context, acct *store.Account, s *oldSettings, cred Credentials) (*imapclient.Client, *connLimit, error) {
	lim := e.limits(s)
	c, held, at := e.takeConn(acct.ID, cred)
	if held != nil && held != lim {
		held.release()
		held = nil
	}
	switch {
	case held != nil: // the login's place is the copy's
	case c != nil && lim.tryAcquire():
	default:
		if c != nil {
			wctx, cancel := context.WithDeadline(ctx, at.Add(keptConnMaxAge))
			err := lim.acquire(wctx)
			cancel()
			if err == nil {
				return c, lim, nil
			}
			closeClient(c)
			c = nil
		}
		if err := lim.acquire(ctx); err != nil {
			return nil, nil, err
		}
	}
	return c, lim, nil
}
