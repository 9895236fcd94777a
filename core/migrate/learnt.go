package migrate

// What the engine learns about old servers (oldserver.Learnt: the login
// form that works, a connection cap, capabilities), kept per domain in the
// store (store.SetOldServerLearnt), apart from the admin's settings: a
// first login goes straight to the form that worked before, and copies
// start with the connection cap the server showed.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"mailferry/core/oldserver"
	"mailferry/core/store"
)

func errorsIsTurnedAway(err error) bool { return errors.Is(err, oldserver.ErrTurnedAway) }

// Learnt returns what was learnt about the old server of domain, nil if
// nothing was (or the domain is unknown). It may be of a server the domain
// no longer uses: oldserver.Learnt.For tells.
func Learnt(ctx context.Context, st *store.Store, domain string) (*oldserver.Learnt, error) {
	js, err := st.OldServerLearnt(ctx, domain)
	if err != nil || js == "" {
		return nil, err
	}
	l := new(oldserver.Learnt)
	if err := json.Unmarshal([]byte(js), l); err != nil {
		return nil, fmt.Errorf("migrate: domain %s: what was learnt about its old server: %w", domain, err)
	}
	return l, nil
}

// Learn adds n (what the probe or a login found out at the old server) to
// what was learnt about domain's old server and records it (a fact of
// another server replaces the old ones). The domain must exist.
func Learn(ctx context.Context, st *store.Store, domain string, n *oldserver.Learnt) error {
	if n == nil {
		return nil
	}
	cur, err := Learnt(ctx, st, domain)
	if err != nil {
		// Unreadable facts are only hints: start afresh.
		cur = nil
	}
	m := cur.Merge(n)
	if cur != nil && cur.Same(m) {
		return nil
	}
	js, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("migrate: domain %s: %w", domain, err)
	}
	return st.SetOldServerLearnt(ctx, domain, string(js))
}

// withLearnt returns s with what was learnt about its server (s.Learnt),
// or s as it is if nothing was or it cannot be read (facts are hints).
func withLearnt(ctx context.Context, st *store.Store, domain string, s *oldSettings) *oldSettings {
	l, err := Learnt(ctx, st, domain)
	if err != nil || l.For(*s) == nil {
		return s
	}
	ls := *s
	ls.Learnt = l
	return &ls
}

// learn records n for the domain of address (an account's) and keeps it
// in s for the rest of this job. A failure to record is logged: facts are
// hints, never a reason to fail a login or a copy.
func (e *Engine) learn(ctx context.Context, address string, s *oldSettings, n *oldserver.Learnt) {
	if n == nil {
		return
	}
	if cur := s.Learnt.For(*s); cur != nil && cur.Same(cur.Merge(n)) {
		return // known already
	}
	_, domain, err := store.SplitAddress(address)
	if err != nil {
		return
	}
	e.learnMu.Lock()
	defer e.learnMu.Unlock()
	if err := Learn(ctx, e.st, domain, n); err != nil {
		e.log.Warn("migrate: cannot record what was learnt about the old server", "domain", domain, "err", err)
	}
}
