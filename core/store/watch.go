package store

import (
	"errors"

	"github.com/mattn/go-sqlite3"
)

// changes records, during a transaction, whom to tell after it commits,
// and which pack bytes must be on disk before it does.
type changes struct {
	accounts map[int64]bool
	domains  bool
	queue    bool

	// packs are the pack bytes the transaction's blob rows name: each
	// pack written, with the end written (usually one pack; two or more
	// when it spans a new pack, or names blobs staged before one).
	packs []packSpan
}

func (c *changes) wrotePack(id, end int64) { c.packs = addSpan(c.packs, id, end) }

func (c *changes) account(id int64) {
	if c.accounts == nil {
		c.accounts = map[int64]bool{}
	}
	c.accounts[id] = true
}

// Watcher is told when an account's data (or, for a watcher of account 0,
// anything in the store) changed. Notifications coalesce: one pending signal
// stands for any number of changes, so a watcher re-reads what it shows.
type Watcher struct {
	// C receives a value after a change committed.
	C <-chan struct{}

	c       chan struct{}
	s       *Store
	account int64
	closed  bool
}

// Watch returns a Watcher for an account's changes; account 0 watches every
// change (domains, accounts, mailboxes, messages and the queue).
func (s *Store) Watch(account int64) *Watcher {
	c := make(chan struct{}, 1)
	w := &Watcher{C: c, c: c, s: s, account: account}
	s.mu.Lock()
	set := s.watchers[account]
	if set == nil {
		set = map[*Watcher]struct{}{}
		s.watchers[account] = set
	}
	set[w] = struct{}{}
	s.mu.Unlock()
	return w
}

// Close stops the watcher and closes C.
func (w *Watcher) Close() {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if set := w.s.watchers[w.account]; set != nil {
		delete(set, w)
		if len(set) == 0 {
			delete(w.s.watchers, w.account)
		}
	}
	w.closeLocked()
}

func (w *Watcher) closeLocked() {
	if !w.closed {
		w.closed = true
		close(w.c)
	}
}

func (w *Watcher) signal() {
	select {
	case w.c <- struct{}{}:
	default:
	}
}

func (s *Store) notify(ch *changes) {
	if len(ch.accounts) == 0 && !ch.domains && !ch.queue {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range ch.accounts {
		for w := range s.watchers[id] {
			w.signal()
		}
	}
	for w := range s.watchers[0] {
		w.signal()
	}
}

func isUnique(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique
}
