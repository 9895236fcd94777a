package relay

import (
	"context"
	"errors"
	"time"

	"mailferry/core/internal/renew"
	"mailferry/core/store"
)

// The queue's claims: which due items a relay takes (at most perSender of
// one sender's at once), the items being delivered here, and each claim's
// lease, renewed while its delivery runs.

// perSender bounds how many of one sender's queue items (by reverse-path
// as queued) a relay delivers at once, so that one sender's mail to
// servers that are slow or never answer (each attempt may last as long as
// the client timeouts let it) never takes every worker from everyone
// else's (TestOneSenderCannotTakeEveryWorker): a sender with perSender
// items under way (half the workers, at least one) gets no more while
// other senders' items are due, and never more than all workers but one.
func (r *Relay) perSender() int { return max(1, r.opts.Workers/2) }

// claim claims at most free due items that are not being delivered here,
// keeping to perSender: first up to perSender of them, of senders with
// fewer than perSender under way (so a sender ends with at most
// 2*perSender-1, all workers but one); when there are none, as many as
// keep every sender under all workers but one.
func (r *Relay) claim(ctx context.Context, free int) ([]*store.QueueItem, error) {
	per := r.perSender()
	busy, full, most := r.inflightNow(per)
	now := time.Now()
	items, err := r.st.QueueClaimDueExcept(ctx, now, now.Add(r.lease()), min(free, per), busy, full)
	if err != nil || len(items) > 0 || len(full) == 0 {
		return items, err
	}
	// Nobody else's mail is due: the senders at perSender may have more.
	n := min(free, r.opts.Workers-1-most)
	if n <= 0 {
		return nil, nil
	}
	return r.st.QueueClaimDueExcept(ctx, now, now.Add(r.lease()), n, busy, nil)
}

// inflightNow returns the IDs of the items being delivered here, the
// senders with perSender or more of them, and the most any sender has.
func (r *Relay) inflightNow(perSender int) (busy []int64, full []string, most int) {
	r.inflightMu.Lock()
	defer r.inflightMu.Unlock()
	busy = make([]int64, 0, len(r.inflight))
	for id := range r.inflight {
		busy = append(busy, id)
	}
	for from, n := range r.inflightFrom {
		if n >= perSender {
			full = append(full, from)
		}
		most = max(most, n)
	}
	return busy, full, most
}

// startInflight marks it as being delivered here; false when it already
// is (a second Run of this Relay claimed it meanwhile).
func (r *Relay) startInflight(it *store.QueueItem) bool {
	r.inflightMu.Lock()
	defer r.inflightMu.Unlock()
	if r.inflight[it.ID] {
		return false
	}
	r.inflight[it.ID] = true
	r.inflightFrom[it.From]++
	return true
}

func (r *Relay) endInflight(it *store.QueueItem) {
	r.inflightMu.Lock()
	defer r.inflightMu.Unlock()
	delete(r.inflight, it.ID)
	if r.inflightFrom[it.From]--; r.inflightFrom[it.From] <= 0 {
		delete(r.inflightFrom, it.From)
	}
}

// lease is how long a claimed queue item stays out of other workers' reach:
// longer than any delivery attempt; after a crash the item is retried when
// it runs out.
func (r *Relay) lease() time.Duration {
	if r.testLease > 0 {
		return r.testLease
	}
	d := 5 * r.opts.ClientTimeout
	if d < time.Minute {
		d = time.Minute
	}
	return d
}

// keepClaim renews it's claim every third of the lease while it is being
// delivered, until the returned stop is called: a delivery may outlast
// one lease (a tarpit answering each command just in time, a large DATA
// over a slow line, several routes in turn), and another node must not
// take the item meanwhile and send it again. A claim that cannot be
// renewed (the database is out of reach for a whole lease) is logged;
// the delivery goes on.
func (r *Relay) keepClaim(ctx context.Context, it *store.QueueItem) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer recoverPanic(r.log, "queue claim renewal")
		renew.Every(ctx, r.lease()/3, func() bool {
			err := r.st.QueueRenewClaim(ctx, it, time.Now().Add(r.lease()))
			switch {
			case err == nil, ctx.Err() != nil:
			case errors.Is(err, store.ErrClaimLost):
				return false // recorded meanwhile, or taken by an administrator
			default:
				r.log.Warn("cannot renew the claim on a queue item being delivered", "queue_id", it.ID, "err", err)
			}
			return true
		})
	}()
	return func() {
		cancel()
		<-done
	}
}
