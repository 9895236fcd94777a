package store

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"
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
	// objects are the staged objects the transaction's blob rows name,
	// checked at commit (sweep.go).
	objects []stagedObject
}

// wrotePack records pack bytes the transaction names; objects (put before
// they are named, or under the transaction's lock) need no sync.
func (c *changes) wrotePack(id, end int64) {
	if id != objectPack {
		c.packs = addSpan(c.packs, id, end)
	}
}

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

// dataVersion reads PRAGMA data_version on the writer connection: it
// changes when another connection, which for the writer means another
// process, committed to the database (https://sqlite.org/pragma.html#pragma_data_version).
// This process's own commits do not change it; they notify directly.
func (s *Store) dataVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := s.w.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: data_version: %w", err)
	}
	return v, nil
}

// pollOthers checks every interval, while anyone watches, whether another
// process committed since last, and then tells every watcher: what it
// changed is not known, so all of them re-read. A commit made after a
// Watch call is always seen, since last only predates it. It runs until
// ctx ends (Close); a panic is logged with its stack and the polling goes on.
func (s *Store) pollOthers(ctx context.Context, interval time.Duration, last int64) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					s.log.Error("store: panic watching other processes' commits", "panic", r, "stack", string(debug.Stack()))
				}
			}()
			s.mu.Lock()
			watched := len(s.watchers) > 0
			s.mu.Unlock()
			if !watched {
				return
			}
			v, err := s.dataVersion(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("store: cannot see other processes' commits", "err", err)
				}
				return
			}
			if v != last {
				last = v
				s.notifyAll()
			}
		}()
	}
}

// notifyAll tells every watcher that something may have changed.
func (s *Store) notifyAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, set := range s.watchers {
		for w := range set {
			w.signal()
		}
	}
}
