package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"mailferry/core/oldserver"
	"mailferry/core/store"
)

// storeOldServer is the default Options.OldServer: the domain's settings as
// the store keeps them.
func (r *Relay) storeOldServer(ctx context.Context, domain string) (*oldserver.Settings, bool, error) {
	d, err := r.st.Domain(ctx, domain)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	if d.OldServer == "" {
		return nil, d.Migrating, nil
	}
	var s oldserver.Settings
	if err := json.Unmarshal([]byte(d.OldServer), &s); err != nil {
		return nil, d.Migrating, fmt.Errorf("relay: old server settings of %s: %w", domain, err)
	}
	s = s.WithDefaults()
	return &s, d.Migrating, nil
}

// DialOldServer is the default Options.Dial: oldserver.DialSMTP, which
// connects with the TLS mode of the settings (RFC 3207 STARTTLS or RFC 8314
// implicit TLS; the certificate checked against the pinned fingerprint or
// the system roots) and says EHLO localName.
func DialOldServer(ctx context.Context, s *oldserver.Settings, localName string) (*smtp.Client, error) {
	return oldserver.DialSMTP(ctx, s.WithDefaults(), &oldserver.DialOptions{LocalName: localName})
}

// target is an outbound SMTP server as a session's user sees it.
type target struct {
	key    string // pool key: sessions are pooled per target
	remote string // the Remote-MTA of DSNs
	what   string // in outcomes' words: "the old server", "mx.example.org", ...
	// dial opens a greeted session (TLS and AUTH as the target needs).
	dial func(ctx context.Context) (*smtp.Client, error)
	// old is set for an old server, whose SIZE is learned (see the
	// package doc); nobody else's limit touches our listeners.
	old bool
}

// oldTarget is the target of an old server's SMTP.
func (r *Relay) oldTarget(set *oldserver.Settings) *target {
	return &target{key: poolKey(set), remote: set.Host.String(), what: "the old server", old: true,
		dial: func(ctx context.Context) (*smtp.Client, error) {
			c, err := r.opts.Dial(ctx, set, r.opts.Hostname)
			if err != nil {
				return nil, fmt.Errorf("relay: connect to old server %s: %w", set.Host.String(), err)
			}
			return c, nil
		}}
}

// sendGroup hands a message to a domain's old server for some recipients
// and reports each recipient's outcome (see transact).
func (r *Relay) sendGroup(ctx context.Context, domain, from string, rcpts []string, body []byte) (outs []outcome, release func()) {
	old, _, err := r.opts.OldServer(ctx, domain)
	if err == nil && old == nil {
		err = fmt.Errorf("no old server is configured for %s", domain)
	}
	if err != nil {
		return allTemp(rcpts, "4.4.0", "", err), func() {}
	}
	set := old.WithDefaults()
	return r.transact(ctx, r.oldTarget(&set), from, rcpts, body)
}

// allTemp is the same temporary outcome for every recipient.
func allTemp(rcpts []string, status, remote string, err error) []outcome {
	out := make([]outcome, 0, len(rcpts))
	for _, rc := range rcpts {
		out = append(out, outcome{rcpt: rc, temp: true, status: status, remote: remote, detail: oneLine(err.Error())})
	}
	return out
}

// transact hands a message to a target for some recipients and reports
// each recipient's outcome (RFC 5321 section 3.3: per-RCPT replies, then
// one reply for DATA).
//
// The session is left open after the final reply, so that the caller can
// record the outcome before anything else happens; release must then be
// called: it returns a healthy session to the pool or closes it.
func (r *Relay) transact(ctx context.Context, t *target, from string, rcpts []string, body []byte) (outs []outcome, release func()) {
	release = func() {}
	body = wireForm(body) // already so for queued mail, before its signature
	all := func(o func(rc string) outcome) ([]outcome, func()) {
		out := make([]outcome, 0, len(rcpts))
		for _, rc := range rcpts {
			out = append(out, o(rc))
		}
		return out, release
	}
	remote := t.remote
	key := t.key
	utf8 := !isASCII(from)
	for _, rc := range rcpts {
		utf8 = utf8 || !isASCII(rc)
	}

	var c *smtp.Client
	var stop func() bool
	var err error
	for fresh := false; ; fresh = true {
		var reused bool
		c, reused, err = r.clientFor(ctx, t, fresh)
		if err != nil {
			// Whatever the server said while we connected (even a 554
			// greeting), it did not refuse this message: try again
			// later.
			return all(func(rc string) outcome {
				o := failOutcome(rc, remote, err)
				if o.perm {
					o.perm, o.temp, o.status = false, true, "4.4.1"
				}
				return o
			})
		}
		cl := c
		stop = context.AfterFunc(ctx, func() { cl.Close() })
		c.CommandTimeout = r.opts.ClientTimeout
		c.SubmissionTimeout = 2 * r.opts.ClientTimeout
		release = func() { stop(); cl.Close() }

		if ok, _ := c.Extension("SMTPUTF8"); utf8 && !ok {
			release = r.pool.releaser(key, c, stop, false)
			return all(func(rc string) outcome {
				return outcome{rcpt: rc, perm: true, status: "5.6.7", remote: remote,
					detail: t.what + " does not support SMTPUTF8, needed for these addresses"}
			})
		}
		err = c.Mail(from, &smtp.MailOptions{Size: int64(len(body)), UTF8: utf8})
		if err != nil && reused && brokenSession(err) {
			// A pooled session the server has meanwhile closed: nothing
			// was sent; dial afresh.
			release()
			continue
		}
		break
	}
	if err != nil {
		if !brokenSession(err) {
			release = r.pool.releaser(key, c, stop, true)
		}
		return all(func(rc string) outcome { return failOutcome(rc, remote, err) })
	}
	var accepted []string
	for i, rc := range rcpts {
		err := c.Rcpt(rc, nil)
		if err == nil {
			accepted = append(accepted, rc)
			continue
		}
		if brokenSession(err) {
			// The connection broke: nothing was delivered.
			for _, x := range append(accepted, rcpts[i:]...) {
				outs = append(outs, failOutcome(x, remote, err))
			}
			return outs, release
		}
		if smtpErrorClass(err) == 5 {
			r.pool.noteRefused(c)
		}
		outs = append(outs, failOutcome(rc, remote, err))
	}
	if len(accepted) == 0 {
		return outs, r.pool.releaser(key, c, stop, true)
	}
	failAccepted := func(err error) ([]outcome, func()) {
		for _, rc := range accepted {
			outs = append(outs, failOutcome(rc, remote, err))
		}
		return outs, release
	}
	w, err := c.Data()
	if err != nil {
		if !brokenSession(err) {
			release = r.pool.releaser(key, c, stop, true)
		}
		return failAccepted(err)
	}
	if _, err := w.Write(body); err != nil {
		return failAccepted(err)
	}
	if err := w.Close(); err != nil {
		if !brokenSession(err) {
			release = r.pool.releaser(key, c, stop, false)
		}
		return failAccepted(err)
	}
	for _, rc := range accepted {
		outs = append(outs, okOutcome(rc, remote))
	}
	return outs, r.pool.releaser(key, c, stop, false)
}

// client returns a session to the old server set (pool key key); see
// clientFor.
func (r *Relay) client(ctx context.Context, set *oldserver.Settings, key string, fresh bool) (c *smtp.Client, reused bool, err error) {
	t := r.oldTarget(set)
	t.key = key
	return r.clientFor(ctx, t, fresh)
}

// clientFor returns a session to t: an idle pooled one (reused) unless
// fresh is set, else a new one, dialled within ctx and
// Options.ClientTimeout; an old server's SIZE is remembered from its EHLO
// reply.
func (r *Relay) clientFor(ctx context.Context, t *target, fresh bool) (c *smtp.Client, reused bool, err error) {
	if c, reused = r.pool.get(t.key, fresh); c != nil {
		return c, reused, nil
	}
	dctx, cancel := context.WithTimeout(ctx, r.opts.ClientTimeout)
	defer cancel()
	c, err = t.dial(dctx)
	if err != nil {
		return nil, false, err
	}
	if t.old {
		r.sizes.learn(t.key, c)
	}
	return c, false, nil
}

// forward hands a message to the old server set while our client waits
// for the reply to DATA (the before-queue proxy of a sender from outside
// whose recipients are all served by that old server). It returns nil when
// the old server answered 250 to the message, and otherwise the reply for
// our client: the old server's permanent refusal (of MAIL, of DATA, or of
// every recipient) passed on, 553 5.6.7 when SMTPUTF8 is needed and
// missing, and 451 4.4.x for anything temporary or unclear — a 4xx reply,
// a network failure, also one after the message was sent (a duplicate is
// better than a loss), or a recipient refused now while others were
// accepted (SMTP has one reply to DATA; the refusal is remembered for the
// RCPT of the same sender's retry, forwardKey).
func (r *Relay) forward(ctx context.Context, set *oldserver.Settings, from string, rcpts []string, body []byte, utf8 bool) *smtp.SMTPError {
	body = wireForm(body) // no stray CR or LF to a server that trusts us
	key := poolKey(set)
	var c *smtp.Client
	var stop func() bool
	var err error
	for fresh := false; ; fresh = true {
		var reused bool
		c, reused, err = r.client(ctx, set, key, fresh)
		if err != nil && fresh && timeSpent(ctx) {
			// A pooled session stalled until the time was spent: see
			// verifyRcpt; not a sign the server is down.
			r.log.Info("forward: no time left after a stalled session", "from", from, "err", err)
			return errOldBroken
		}
		if err != nil {
			r.log.Info("forward: old server unreachable", "from", from, "err", err)
			r.callout.putFor(key+"\x00down", nil, calloutDownTTL)
			return errOldDown
		}
		cl := c
		stop = context.AfterFunc(ctx, func() { cl.Close() })
		c.CommandTimeout = r.opts.ClientTimeout
		c.SubmissionTimeout = 2 * r.opts.ClientTimeout
		if ok, _ := c.Extension("SMTPUTF8"); utf8 && !ok {
			r.pool.releaser(key, c, stop, false)()
			return errOldNoUTF8
		}
		err = c.Mail(from, &smtp.MailOptions{Size: int64(len(body)), UTF8: utf8})
		if err != nil && reused && brokenSession(err) {
			stop()
			c.Close()
			continue // a pooled session the server closed: nothing was sent
		}
		break
	}
	// fail ends the attempt: the session goes back to the pool (after RSET)
	// unless it broke.
	fail := func(err error) *smtp.SMTPError {
		var se *smtp.SMTPError
		if brokenSession(err) {
			stop()
			c.Close()
		} else {
			r.pool.releaser(key, c, stop, true)()
		}
		r.log.Info("forward: not accepted", "from", from, "rcpts", rcpts, "err", err)
		switch {
		case errors.As(err, &se) && se.Code/100 == 5:
			return passOn(se)
		case se != nil && se.Code != 421:
			return errForwardTemp
		}
		return errOldBroken
	}
	if err != nil {
		return fail(err)
	}
	var refused *smtp.SMTPError
	nRefused, unclear := 0, false
	for _, rc := range rcpts {
		err := c.Rcpt(rc, nil)
		var se *smtp.SMTPError
		switch {
		case err == nil:
			continue
		case brokenSession(err):
			return fail(err)
		case errors.As(err, &se) && se.Code/100 == 5:
			r.pool.noteRefused(c)
			se = passOn(se)
			r.callout.put(forwardKey(key, from, rc), se)
			nRefused++
			if refused == nil {
				refused = se
			}
		default:
			unclear = true
		}
	}
	if refused != nil || unclear {
		r.pool.releaser(key, c, stop, true)()
		r.log.Info("forward: recipients refused", "from", from, "rcpts", rcpts, "refused", refused, "unclear", unclear)
		if nRefused == len(rcpts) {
			// Every recipient refused for good: so is the message.
			return refused
		}
		return errForwardTemp
	}
	w, err := c.Data()
	if err != nil {
		return fail(err)
	}
	if _, err := w.Write(body); err != nil {
		return fail(err)
	}
	if err := w.Close(); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) && !brokenSession(err) {
			// The transaction is over: nothing to reset.
			r.pool.releaser(key, c, stop, false)()
			r.log.Info("forward: message refused", "from", from, "rcpts", rcpts, "err", err)
			if se.Code/100 == 5 {
				return passOn(se)
			}
			return errForwardTemp
		}
		return fail(err)
	}
	r.pool.releaser(key, c, stop, false)()
	return nil
}

// smtpErrorClass is the first digit of err's reply code, or 0.
func smtpErrorClass(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code / 100
	}
	return 0
}

// brokenSession reports whether err leaves the SMTP session unusable: a
// network error, or 421 (RFC 5321 section 3.8: the server closes).
func brokenSession(err error) bool {
	var se *smtp.SMTPError
	return !errors.As(err, &se) || se.Code == 421
}

func poolKey(s *oldserver.Settings) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// poolIdle is how long an idle outbound session is kept for reuse; servers
// commonly allow minutes (RFC 5321 section 4.5.3.2.7 asks for 5).
const poolIdle = 15 * time.Second

// clientPool keeps idle outbound SMTP sessions per old server, so that a
// queue run does not pay a connection, TLS handshake and EHLO per message.
type clientPool struct {
	max int

	mu     sync.Mutex
	idle   map[string][]idleClient
	closed bool
	// refused holds the recipients refused on a session handed out (by get
	// or noteRefused) until it is released; a session closed on a broken
	// path leaves its entry, so the map is cleared when it grows past
	// maxRefusedKept (the counts only decide when a session retires).
	refused map[*smtp.Client]int
}

type idleClient struct {
	c       *smtp.Client
	since   time.Time
	refused int
}

// retireAfterRefusals ends a session once this many recipients were
// refused on it (for good or for now; a callout's null sender too). Postfix counts a session's errors and never sets the
// count back on a session that delivers no mail (our callouts): past
// smtpd_soft_error_limit (10) it delays every reply by
// smtpd_error_sleep_time (1 s), at smtpd_hard_error_limit (20) it hangs
// up. Strangers' recipient guesses must not make a pooled callout session
// slow for every other sender (TestRecipientGuessesAgainstPostfix).
const retireAfterRefusals = 5

const maxRefusedKept = 256

func newClientPool(max int) *clientPool {
	return &clientPool{max: max, idle: map[string][]idleClient{}, refused: map[*smtp.Client]int{}}
}

// noteRefused counts a recipient refused on c, handed out by the pool or
// new; the count goes with c back to the pool at its release.
func (p *clientPool) noteRefused(c *smtp.Client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.refused) >= maxRefusedKept {
		clear(p.refused)
	}
	p.refused[c]++
}

// get returns an idle session for key (reused = true), or nil when there is
// none or fresh is set.
func (p *clientPool) get(key string, fresh bool) (c *smtp.Client, reused bool) {
	if fresh {
		return nil, false
	}
	p.mu.Lock()
	var stale []*smtp.Client
	defer func() {
		p.mu.Unlock()
		for _, s := range stale {
			s.Close()
		}
	}()
	l := p.idle[key]
	for len(l) > 0 {
		ic := l[len(l)-1]
		l = l[:len(l)-1]
		if time.Since(ic.since) < poolIdle {
			p.idle[key] = l
			if ic.refused > 0 {
				if len(p.refused) >= maxRefusedKept {
					clear(p.refused)
				}
				p.refused[ic.c] = ic.refused
			}
			return ic.c, true
		}
		stale = append(stale, ic.c)
	}
	delete(p.idle, key)
	return nil, false
}

// releaser returns the function that gives c back to the pool (after RSET
// when reset is set) or, when the pool is full or closed, ends it.
func (p *clientPool) releaser(key string, c *smtp.Client, stop func() bool, reset bool) func() {
	return func() {
		p.mu.Lock()
		refused := p.refused[c]
		delete(p.refused, c)
		p.mu.Unlock()
		if !stop() {
			c.Close() // the context was cancelled: the session is cut
			return
		}
		if reset && c.Reset() != nil {
			c.Close()
			return
		}
		p.mu.Lock()
		if p.closed || len(p.idle[key]) >= p.max || refused >= retireAfterRefusals {
			p.mu.Unlock()
			c.Quit()
			c.Close()
			return
		}
		p.idle[key] = append(p.idle[key], idleClient{c: c, since: time.Now(), refused: refused})
		p.mu.Unlock()
	}
}

// close ends every idle session (QUIT) and makes the pool refuse new ones.
func (p *clientPool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = map[string][]idleClient{}
	p.mu.Unlock()
	for _, l := range idle {
		for _, ic := range l {
			ic.c.Quit()
			ic.c.Close()
		}
	}
}
