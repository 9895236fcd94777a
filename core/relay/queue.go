package relay

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"mailferry/core/store"
)

// Queue item notes: the kind of item and, with " via <domain>", the domain
// whose old server takes all its recipients. Without "via", each recipient
// goes to its own domain's old server.
const (
	noteRelay  = "relay"  // a message to relay
	noteBounce = "bounce" // a DSN we made; a local recipient gets it locally
)

func noteVia(kind, domain string) string {
	if domain == "" {
		return kind
	}
	return kind + " via " + domain
}

func parseNote(note string) (kind, via string) {
	kind, via, _ = strings.Cut(note, " via ")
	return kind, via
}

// inboxes are the INBOXes of a message's local recipients: one per account,
// in the order the accounts first came up.
type inboxes struct {
	box   map[int64]int64 // account ID -> INBOX mailbox ID
	order []int64         // account IDs
}

// add looks the INBOX of account acct up, unless it is there already.
func (b *inboxes) add(ctx context.Context, st *store.Store, acct int64) error {
	if _, ok := b.box[acct]; ok {
		return nil
	}
	mb, err := st.Mailbox(ctx, acct, "INBOX")
	if err != nil {
		return err
	}
	if b.box == nil {
		b.box = map[int64]int64{}
	}
	b.box[acct] = mb.ID
	b.order = append(b.order, acct)
	return nil
}

// accept commits a received message: one copy per local account and one
// queue item per relay route, in one transaction. It returns the first
// queue item's ID (0 when all recipients were local).
func (r *Relay) accept(ctx context.Context, from string, local *inboxes,
	notes []string, relays map[string][]string, msg []byte) (int64, error) {
	tx, err := r.st.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	for _, acct := range local.order {
		if _, err := tx.Append(local.box[acct], &store.NewMessage{Body: msg}); err != nil {
			return 0, fmt.Errorf("relay: deliver to account %d: %w", acct, err)
		}
	}
	var first int64
	for _, n := range notes {
		id, err := tx.Enqueue(from, relays[n], msg, n)
		if err != nil {
			return 0, fmt.Errorf("relay: enqueue: %w", err)
		}
		if first == 0 {
			first = id
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	r.accepted.Add(1)
	r.delivered.Add(uint64(len(local.order)))
	r.queued.Add(uint64(len(notes)))
	if len(notes) > 0 {
		r.wake()
	}
	return first, nil
}

// List returns the queue, oldest first (for the CLI and the UI).
func (r *Relay) List(ctx context.Context) ([]*store.QueueItem, error) {
	return r.st.Queue(ctx)
}

// Retry makes a queue item due now, releasing it if held.
func (r *Relay) Retry(ctx context.Context, id int64) error {
	if err := r.st.QueueRetry(ctx, id); err != nil {
		return err
	}
	r.wake()
	return nil
}

// Delete removes a queue item without delivering it or bouncing it.
func (r *Relay) Delete(ctx context.Context, id int64) error {
	return r.st.QueueDelete(ctx, id)
}

// Hold keeps a queue item without trying it until Retry.
func (r *Relay) Hold(ctx context.Context, id int64) error {
	return r.st.QueueHold(ctx, id)
}

// Run delivers due queue items until ctx is done or Close is called, then
// waits for the deliveries in progress (Close cuts them after
// Options.ShutdownGrace) and returns nil.
func (r *Relay) Run(ctx context.Context) (err error) {
	r.mu.Lock()
	if r.isClosed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.runWG.Add(1)
	r.mu.Unlock()
	defer r.runWG.Done()
	defer func() {
		if v := recover(); v != nil {
			r.log.Error("panic", "in", "queue worker", "panic", v, "stack", string(debug.Stack()))
			err = fmt.Errorf("relay: queue worker panicked: %v", v)
		}
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	// Deliveries are not cut by ctx: a session in progress finishes and
	// records its outcome. Only the hard stop after ShutdownGrace cuts it.
	dctx, dcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer dcancel()
	go func() {
		select {
		case <-r.hardStop:
			dcancel()
		case <-dctx.Done():
		}
	}()

	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, r.opts.Workers) // one token per delivery in progress
	for {
		// Claim only what can start now: a claimed item is not due for
		// anyone else until the claim (lease) runs out. One sender's
		// items never take every worker (perSender).
		var claimErr error
		for free := cap(sem) - len(sem); free > 0 && ctx.Err() == nil; free = cap(sem) - len(sem) {
			var items []*store.QueueItem
			items, claimErr = r.claim(ctx, free)
			if claimErr != nil && ctx.Err() == nil {
				r.log.Error("read queue", "err", claimErr)
			}
			for _, it := range items {
				// Items being delivered here were excluded from the
				// claim; a second Run in this process may still race:
				// check and mark.
				if !r.startInflight(it) {
					continue
				}
				sem <- struct{}{} // never blocks: at most free items were claimed
				wg.Add(1)
				go func(it *store.QueueItem) {
					defer wg.Done()
					defer func() {
						r.endInflight(it)
						<-sem
						select {
						case r.finished <- struct{}{}:
						default:
						}
					}()
					defer recoverPanic(r.log, "queue delivery")
					defer r.keepClaim(dctx, it)()
					r.deliverItem(dctx, it)
				}(it)
			}
			if len(items) == 0 {
				break
			}
		}
		if ctx.Err() != nil {
			return nil
		}

		wait := r.opts.PollInterval
		if len(sem) < cap(sem) && claimErr == nil {
			if next, ok, err := r.st.QueueNextDue(ctx); err == nil && ok {
				switch d := time.Until(next); {
				case d <= 0:
					// Due already, and not claimed just now: its
					// sender is at perSender, another process took it,
					// or it came due since. A delivery's end or a new
					// item wakes the loop sooner.
					wait = min(wait, time.Second)
				case d < wait:
					wait = d
				}
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-r.kick:
		case <-r.finished:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// outcome is the fate of one recipient in one attempt.
type outcome struct {
	rcpt string
	// perm is set for a permanent failure, temp for a temporary one; neither
	// means delivered.
	perm, temp bool
	// status is the enhanced status code (RFC 3463) for a DSN, detail the
	// remote reply or error, remote the server that said it.
	status string
	detail string
	remote string
}

func okOutcome(rcpt, remote string) outcome { return outcome{rcpt: rcpt, remote: remote} }

// failOutcome classifies err: a 5xx reply is permanent, anything else
// (4xx, network, timeouts) temporary.
func failOutcome(rcpt, remote string, err error) outcome {
	o := outcome{rcpt: rcpt, remote: remote, detail: oneLine(err.Error())}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		o.detail = oneLine(fmt.Sprintf("%d %s", se.Code, se.Message))
		if se.EnhancedCode != smtp.EnhancedCodeNotSet && se.EnhancedCode != smtp.NoEnhancedCode {
			o.detail = oneLine(fmt.Sprintf("%d %d.%d.%d %s", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message))
		}
		if se.Code/100 == 5 {
			o.perm = true
			o.status = "5.0.0"
			if se.EnhancedCode[0] == 5 {
				o.status = fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
			}
			return o
		}
	}
	o.temp = true
	o.status = "4.0.0"
	if se != nil && se.EnhancedCode[0] == 4 {
		o.status = fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	}
	return o
}

func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r > 0x7e {
			return ' '
		}
		return r
	}, s)
	if len(s) > 400 {
		s = s[:400]
	}
	return strings.TrimSpace(s)
}

// deliverItem makes one attempt at a queue item. Each route's outcome is
// committed as soon as it is known.
func (r *Relay) deliverItem(ctx context.Context, it *store.QueueItem) {
	log := r.log.With("queue_id", it.ID)
	body, err := r.st.Blob(ctx, it.BlobKey)
	if err != nil {
		log.Error("read queued message", "err", err)
		r.finishAttempt(ctx, it, nil, it.Rcpts, []outcome{{rcpt: "", temp: true, detail: "local error: " + oneLine(err.Error())}})
		return
	}
	kind, via := parseNote(it.Note)
	remaining := append([]string(nil), it.Rcpts...)
	var temps []outcome

	// Group recipients: local ones (a bounce to a local sender, or a relay
	// recipient whose domain stopped migrating and who has an account now)
	// and one group per outbound route, in recipient order: per old-server
	// domain, per smarthost route, per route and recipient domain for
	// direct delivery.
	type group struct {
		route string // the domain whose route applies
		rt    route
		dest  string // RouteMX: the recipients' domain
		rcpts []string
	}
	var localRcpts []string
	var localAccts []int64 // of localRcpts, one per recipient
	var groups []*group
	byKey := map[string]*group{}
	type resolved struct {
		rt  route
		err error
	}
	routes := map[string]resolved{}
	for _, rc := range it.Rcpts {
		// A recipient is in canonical form (rcptAddress); a bounce's is
		// a sender address MAIL FROM accepted.
		dom := rcptDomain(rc)
		if !strings.Contains(rc, "@") || dom == "" {
			// Cannot happen for what Rcpt accepted; fail it for good.
			remaining = r.commitOutcomes(ctx, it, body, remaining, []outcome{{rcpt: rc, perm: true, status: "5.1.3", detail: "bad recipient address"}}, via)
			continue
		}
		if acct, err := r.localAccount(ctx, kind, rc, dom); err != nil {
			temps = append(temps, outcome{rcpt: rc, temp: true, status: "4.3.0", detail: "local error: " + oneLine(err.Error())})
			continue
		} else if acct != nil {
			localRcpts = append(localRcpts, rc)
			localAccts = append(localAccts, acct.ID)
			continue
		}
		// Without "via" a recipient goes to its own domain's old server;
		// with it, by the route of the via domain (the sender's).
		rt := route{kind: RouteOldServer}
		routeDom := dom
		if via != "" {
			routeDom = via
			res, ok := routes[via]
			if !ok {
				res.rt, res.err = r.routeOf(ctx, via)
				routes[via] = res
			}
			if res.err != nil {
				temps = append(temps, outcome{rcpt: rc, temp: true, status: "4.4.0", detail: oneLine(res.err.Error())})
				continue
			}
			rt = res.rt
		}
		key := string(rt.kind) + "\x00" + routeDom
		if rt.kind == RouteMX {
			key += "\x00" + dom
		}
		g := byKey[key]
		if g == nil {
			g = &group{route: routeDom, rt: rt, dest: dom}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.rcpts = append(g.rcpts, rc)
	}
	if len(localRcpts) > 0 {
		var gone bool
		remaining, gone, err = r.deliverLocal(ctx, it, remaining, localRcpts, localAccts, body)
		if gone {
			return
		}
		if err != nil {
			log.Error("local delivery", "err", err)
			for _, rc := range localRcpts {
				temps = append(temps, outcome{rcpt: rc, temp: true, status: "4.3.0", detail: "local error: " + oneLine(err.Error())})
			}
		}
	}
	// What leaves us over SMTP, in its final form before it is signed
	// (wireForm); local recipients and bounces keep the bytes as received.
	wire := wireForm(body)
	signed := wire // signed once per attempt, for the routes that leave us
	signErr := error(nil)
	didSign := false
	for _, g := range groups {
		if ctx.Err() != nil {
			for _, rc := range g.rcpts {
				temps = append(temps, outcome{rcpt: rc, temp: true, status: "4.3.2", detail: "shutting down"})
			}
			continue
		}
		commit := func(done []outcome) bool {
			remaining = r.commitOutcomes(ctx, it, body, remaining, done, g.route)
			return remaining != nil // nil: the item is done, or gone (deleted by the administrator)
		}
		out := wire
		if g.rt.kind != RouteOldServer {
			// The one point where a message from our domain is signed
			// (DKIM, Options.Sign) before it leaves for the world.
			if !didSign {
				signed, signErr = r.sign(g.route, wire)
				didSign = true
			}
			if signErr != nil {
				log.Error("sign", "err", signErr)
				temps = append(temps, allTemp(g.rcpts, "4.7.0", "", signErr)...)
				continue
			}
			out = signed
		}
		var t []outcome
		var gone bool
		switch g.rt.kind {
		case RouteMX:
			t, gone = r.deliverMX(ctx, g.dest, it.From, g.rcpts, out, commit)
		case RouteSmarthost:
			outs, release := r.transact(ctx, r.smartTarget(g.rt.smart), it.From, g.rcpts, out)
			t, gone = settle(outs, release, commit)
		default:
			outs, release := r.sendGroup(ctx, g.route, it.From, g.rcpts, out)
			t, gone = settle(outs, release, commit)
		}
		if gone {
			return
		}
		temps = append(temps, t...)
	}
	if len(temps) > 0 {
		r.finishAttempt(ctx, it, body, remaining, temps)
	}
}

// localAccount returns the account that a recipient of a queue item is
// served from the store to, or nil when an old server serves it.
func (r *Relay) localAccount(ctx context.Context, kind, rcpt, domain string) (*store.Account, error) {
	acct, err := r.st.Account(ctx, rcpt)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if kind == noteBounce {
		return acct, nil
	}
	_, migrating, err := r.opts.OldServer(ctx, domain)
	if err != nil || migrating {
		return nil, err
	}
	return acct, nil
}

// deliverLocal appends the message to the INBOX of each local recipient
// (accts are their accounts) and drops them from the item, in one
// transaction. gone reports that the item no longer exists (nothing was
// delivered).
func (r *Relay) deliverLocal(ctx context.Context, it *store.QueueItem, remaining, rcpts []string, accts []int64, body []byte) (rest []string, gone bool, err error) {
	var boxes inboxes
	for _, a := range accts {
		if err := boxes.add(ctx, r.st, a); err != nil {
			return remaining, false, err
		}
	}
	rest = without(remaining, rcpts)
	tx, err := r.st.Begin(ctx)
	if err != nil {
		return remaining, false, err
	}
	defer tx.Rollback()
	for _, a := range boxes.order {
		if _, err := tx.Append(boxes.box[a], &store.NewMessage{Body: body}); err != nil {
			return remaining, false, err
		}
	}
	if err := tx.QueueSetRcpts(it.ID, it.BlobKey, rest); errors.Is(err, store.ErrNotFound) {
		return nil, true, nil
	} else if err != nil {
		return remaining, false, err
	}
	if err := tx.Commit(); err != nil {
		return remaining, false, err
	}
	r.delivered.Add(uint64(len(boxes.order)))
	r.log.Info("delivered locally", "queue_id", it.ID, "rcpts", rcpts)
	r.emit(Event{Kind: EventDelivered, QueueID: it.ID, From: it.From, Rcpts: rcpts})
	return rest, false, nil
}
