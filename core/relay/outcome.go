package relay

import (
	"context"
	"errors"
	"fmt"
	"mailferry/core/internal/backoff"
	"mailferry/core/store"
	"strings"
	"time"
)

// Recording a delivery attempt's outcomes: recipients done or bounced leave
// the item in one transaction; the rest wait, backing off.

// commitOutcomes records final outcomes (delivered or permanently failed)
// of some recipients: they leave the item, and a bounce for the failed ones
// is queued, in one transaction. It returns the recipients still to serve,
// nil when the item vanished or is done.
func (r *Relay) commitOutcomes(ctx context.Context, it *store.QueueItem, body []byte, remaining []string, outs []outcome, route string) []string {
	var served, failed []string
	var failedOuts []outcome
	for _, o := range outs {
		served = append(served, o.rcpt)
		if o.perm {
			failed = append(failed, o.rcpt)
			failedOuts = append(failedOuts, o)
		}
	}
	rest := without(remaining, served)
	// The outcome must be recorded even while shutting down.
	wctx := context.WithoutCancel(ctx)
	kind, via := parseNote(it.Note)
	err := r.withTx(wctx, func(tx *store.Tx) error {
		if err := tx.QueueSetRcpts(it.ID, it.BlobKey, rest); err != nil {
			return err
		}
		if kind == noteRelay && via == "" {
			// The old server of a migrating domain took mail for one of
			// its users: a user the readiness check must know about.
			for _, o := range outs {
				if !o.perm && rcptDomain(o.rcpt) == route {
					r.seen.note(func() error { return tx.NoteKnownUser(route, o.rcpt) }, route, o.rcpt, r.log)
				}
			}
		}
		return r.queueBounce(tx, it, body, failedOuts, route)
	})
	if errors.Is(err, store.ErrNotFound) {
		r.log.Info("queue item vanished during delivery", "queue_id", it.ID)
		return nil
	} else if err != nil {
		// The remote server has the message; we could not record it. The
		// item will be retried: a duplicate is better than a loss.
		r.log.Error("record delivery", "queue_id", it.ID, "err", err)
		return remaining
	}
	if n := len(served) - len(failed); n > 0 {
		r.relayed.Add(uint64(n))
		ok := without(served, failed)
		r.log.Info("relayed", "queue_id", it.ID, "via", route, "rcpts", ok)
		r.emit(Event{Kind: EventRelayed, QueueID: it.ID, From: it.From, Rcpts: ok, Detail: route})
	}
	r.noteFailures(it, failedOuts)
	if len(rest) == 0 {
		return nil
	}
	return rest
}

// finishAttempt records temporary failures: the item is deferred with
// exponential backoff, or, past MaxAge or MaxAttempts, bounced and removed.
func (r *Relay) finishAttempt(ctx context.Context, it *store.QueueItem, body []byte, remaining []string, temps []outcome) {
	wctx := context.WithoutCancel(ctx)
	var details []string
	for _, o := range temps {
		details = append(details, fmt.Sprintf("<%s>: %s", o.rcpt, o.detail))
	}
	lastErr := oneLine(strings.Join(details, "; "))
	attempts := it.Attempts + 1
	expired := time.Since(it.Created) >= r.opts.MaxAge || (r.opts.MaxAttempts > 0 && attempts >= r.opts.MaxAttempts)
	if len(remaining) == 0 {
		return
	}
	if !expired {
		next := time.Now().Add(r.backoff(attempts))
		err := r.withTx(wctx, func(tx *store.Tx) error { return tx.QueueDefer(it.ID, it.BlobKey, remaining, next, lastErr) })
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			r.log.Error("defer queue item", "queue_id", it.ID, "err", err)
			return
		}
		r.deferred.Add(1)
		r.log.Info("deferred", "queue_id", it.ID, "attempts", attempts, "next", next.Format(time.RFC3339), "err", lastErr)
		r.emit(Event{Kind: EventDeferred, QueueID: it.ID, From: it.From, Rcpts: remaining, Detail: lastErr})
		return
	}
	// Give up: every remaining recipient fails with its last reason.
	byRcpt := map[string]outcome{}
	for _, o := range temps {
		byRcpt[o.rcpt] = o
	}
	var fails []outcome
	for _, rc := range remaining {
		o, ok := byRcpt[rc]
		if !ok {
			o = outcome{rcpt: rc, detail: lastErr}
		}
		o.perm, o.temp = true, false
		o.status = "4.4.7" // delivery time expired (RFC 3463)
		if o.detail == "" {
			o.detail = "delivery time expired"
		} else {
			o.detail = "gave up after " + fmt.Sprint(attempts) + " attempts: " + o.detail
		}
		fails = append(fails, o)
	}
	_, via := parseNote(it.Note)
	if via == "" && len(remaining) > 0 {
		via = rcptDomain(remaining[0])
	}
	err := r.withTx(wctx, func(tx *store.Tx) error {
		if err := tx.QueueDelete(it.ID, it.BlobKey); err != nil {
			return err
		}
		return r.queueBounce(tx, it, body, fails, via)
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		r.log.Error("expire queue item", "queue_id", it.ID, "err", err)
		return
	}
	if err == nil {
		r.noteFailures(it, fails)
	}
}

// backoff is the delay after the given number of failed attempts.
func (r *Relay) backoff(attempts int) time.Duration {
	return backoff.Delay(r.opts.RetryBase, r.opts.RetryMax, attempts-1)
}

// queueBounce queues a DSN for permanent failures, unless the sender is
// the null reverse-path (RFC 5321 section 4.5.5: never bounce a bounce).
func (r *Relay) queueBounce(tx *store.Tx, it *store.QueueItem, body []byte, fails []outcome, route string) error {
	if len(fails) == 0 || it.From == "" {
		return nil
	}
	dsn, err := r.buildDSN(it, body, fails)
	if err != nil {
		return err
	}
	_, err = tx.Enqueue("", []string{it.From}, dsn, noteVia(noteBounce, route))
	return err
}

func (r *Relay) noteFailures(it *store.QueueItem, fails []outcome) {
	if len(fails) == 0 {
		return
	}
	var rcpts, details []string
	for _, o := range fails {
		rcpts = append(rcpts, o.rcpt)
		details = append(details, fmt.Sprintf("<%s>: %s", o.rcpt, o.detail))
	}
	detail := strings.Join(details, "; ")
	if it.From == "" {
		r.dropped.Add(uint64(len(fails)))
		r.log.Warn("undeliverable, null sender: dropped", "queue_id", it.ID, "rcpts", rcpts, "err", detail)
		r.emit(Event{Kind: EventDropped, QueueID: it.ID, Rcpts: rcpts, Detail: detail})
		return
	}
	r.bounced.Add(uint64(len(fails)))
	r.queued.Add(1)
	r.log.Info("bounced", "queue_id", it.ID, "from", it.From, "rcpts", rcpts, "err", detail)
	r.emit(Event{Kind: EventBounced, QueueID: it.ID, From: it.From, Rcpts: rcpts, Detail: detail})
	r.wake()
}

func (r *Relay) withTx(ctx context.Context, fn func(tx *store.Tx) error) error {
	tx, err := r.st.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// without returns list minus the addresses in drop (compared without case),
// keeping order.
func without(list, drop []string) []string {
	d := map[string]bool{}
	for _, x := range drop {
		d[strings.ToLower(x)] = true
	}
	var out []string
	for _, x := range list {
		if !d[strings.ToLower(x)] {
			out = append(out, x)
		}
	}
	return out
}
