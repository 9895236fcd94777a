package migrate

import (
	"context"
	"errors"
	"sync"
)

// errYielded: a worker gave its mailbox back to the queue (the old server
// turned its connection away while other workers of the account go on).
var errYielded = errors.New("mailbox given back: the old server turned the connection away")

// workQueue hands an account's mailboxes to its workers (one per
// connection). A worker whose connection the old server turns away gives
// its mailbox back (giveBack) while another worker lives to take it; the
// last worker never does, so every mailbox is copied or reported.
type workQueue struct {
	mu      sync.Mutex
	items   []*plan
	busy    int           // taken, neither done nor given back
	alive   int           // workers that joined and did not leave
	changed chan struct{} // closed (and replaced) on every change
}

func newWorkQueue(items []*plan) *workQueue {
	return &workQueue{items: items, changed: make(chan struct{})}
}

func (q *workQueue) changedLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// join counts a worker in; it must leave once, or give back.
func (q *workQueue) join() {
	q.mu.Lock()
	q.alive++
	q.mu.Unlock()
}

// leave counts a worker out.
func (q *workQueue) leave() {
	q.mu.Lock()
	q.alive--
	q.changedLocked()
	q.mu.Unlock()
}

// take returns the next mailbox, waiting while others are busy (one may be
// given back); nil when there is none left or ctx ended.
func (q *workQueue) take(ctx context.Context) *plan {
	for {
		q.mu.Lock()
		if ctx.Err() != nil {
			q.mu.Unlock()
			return nil
		}
		if len(q.items) > 0 {
			p := q.items[0]
			q.items = q.items[1:]
			q.busy++
			q.mu.Unlock()
			return p
		}
		if q.busy == 0 {
			q.mu.Unlock()
			return nil
		}
		ch := q.changed
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
}

// done marks a taken mailbox finished (copied or reported).
func (q *workQueue) done() {
	q.mu.Lock()
	q.busy--
	q.changedLocked()
	q.mu.Unlock()
}

// giveBack puts a taken mailbox back first in line and counts its worker
// out, if another worker lives to take it; else it changes nothing and
// reports false (the caller keeps the mailbox).
func (q *workQueue) giveBack(p *plan) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.alive <= 1 {
		return false
	}
	q.items = append([]*plan{p}, q.items...)
	q.busy--
	q.alive--
	q.changedLocked()
	return true
}
