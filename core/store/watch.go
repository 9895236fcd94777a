package store

import (
	"context"
	"fmt"
	"mailferry/core/internal/renew"
	"runtime/debug"
	"time"
)

// changes records, during a transaction, whom to tell after it commits,
// and which pack bytes must be on disk before it does.
type changes struct {
	// accounts are the accounts changed: true when the change may concern
	// any of the account's mailboxes (one made, renamed or deleted, a
	// UIDVALIDITY given), false when it changed only the messages of the
	// mailboxes in mailboxes.
	accounts map[int64]bool
	// mailboxes holds, per mailbox whose messages changed, the
	// HIGHESTMODSEQ the transaction gave it (bumpModSeq), so that a
	// watcher of one mailbox is told of it and of no other's
	// (Watcher.Changed).
	mailboxes map[int64]uint64
	domains   bool
	queue     bool

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

// account records a change that may concern any of the account's
// mailboxes.
func (c *changes) account(id int64) {
	if c.accounts == nil {
		c.accounts = map[int64]bool{}
	}
	c.accounts[id] = true
}

// mailbox records a change of the messages of mailbox mb, of account
// acct, which the transaction gave HIGHESTMODSEQ modseq. Every write
// that raises a mailbox's HIGHESTMODSEQ records it here or with account.
func (c *changes) mailbox(acct, mb int64, modseq uint64) {
	if c.accounts == nil {
		c.accounts = map[int64]bool{}
	}
	if _, ok := c.accounts[acct]; !ok {
		c.accounts[acct] = false
	}
	if c.mailboxes == nil {
		c.mailboxes = map[int64]uint64{}
	}
	c.mailboxes[mb] = max(c.mailboxes[mb], modseq)
}

// Watcher is told when an account's data (or, for a watcher of account 0,
// anything in the store; for a watcher of one mailbox, that mailbox's
// messages or the account's mailboxes) changed. Notifications coalesce:
// one pending signal stands for any number of changes, so a watcher
// re-reads what it shows.
type Watcher struct {
	// C receives a value after a change committed.
	C <-chan struct{}

	c       chan struct{}
	s       *Store
	account int64
	mailbox int64 // 0: the whole account
	closed  bool
	// Of a watcher of one mailbox, under s.mu: top is the highest
	// HIGHESTMODSEQ it was told of the mailbox by this process's commits;
	// wide is set when it was told of a change whose MODSEQ it does not
	// know (the account's mailboxes, another process's commit), until
	// Changed.
	top  uint64
	wide bool
}

// Watch returns a Watcher for an account's changes; account 0 watches every
// change (domains, accounts, mailboxes, messages and the queue).
func (s *Store) Watch(account int64) *Watcher { return s.watch(account, 0) }

func (s *Store) watch(account, mailbox int64) *Watcher {
	c := make(chan struct{}, 1)
	w := &Watcher{C: c, c: c, s: s, account: account, mailbox: mailbox}
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

// WatchMailbox returns a Watcher of one mailbox of an account: it is told
// when the mailbox's messages change, or anything that may concern it
// (the account's mailboxes, any commit of another process), and not when
// only another mailbox's messages change. Its Changed then says whether
// what it was told is news to a reader that knows the mailbox up to a
// HIGHESTMODSEQ.
func (s *Store) WatchMailbox(account, mailbox int64) *Watcher {
	return s.watch(account, mailbox)
}

// Changed reports whether what the watcher was told since the last call
// may be news to a reader that has read the mailbox up to HIGHESTMODSEQ
// since: a change of its messages above since, or a change whose MODSEQ
// is not known (the account's mailboxes, another process's commit). It
// reads no database: a session whose watcher was told only of changes it
// has already read (its own, or those it read before they were told)
// need not read the mailbox again. A read made after Changed returns
// sees everything it was told of. A watcher of a whole account always
// reports true.
func (w *Watcher) Changed(since uint64) bool {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.mailbox == 0 {
		return true
	}
	news := w.wide || w.top > since
	w.wide = false
	return news
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
	for id, wide := range ch.accounts {
		for w := range s.watchers[id] {
			switch {
			case w.mailbox == 0:
				w.signal()
			case wide:
				w.wide = true
				w.signal()
			default:
				if modseq, ok := ch.mailboxes[w.mailbox]; ok {
					w.top = max(w.top, modseq)
					w.signal()
				}
			}
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
	renew.Every(ctx, interval, func() bool {
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
		return true
	})
}

// notifyAll tells every watcher that something may have changed.
func (s *Store) notifyAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, set := range s.watchers {
		for w := range set {
			w.wide = true
			w.signal()
		}
	}
}
