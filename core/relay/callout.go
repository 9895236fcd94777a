package relay

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"mailferry/core/oldserver"
)

// How long a callout answer is remembered.
const (
	calloutGoodTTL = 10 * time.Minute
	calloutBadTTL  = time.Minute
	calloutMax     = 10000
	calloutTimeout = 10 * time.Second
	calloutDownTTL = 30 * time.Second // no callouts to a server that did not answer
)

// calloutCache remembers the old server's answers to recipient checks.
type calloutCache struct {
	mu sync.Mutex
	m  map[string]calloutEntry
}

type calloutEntry struct {
	err     *smtp.SMTPError // nil: the recipient exists
	expires time.Time
}

func newCalloutCache() *calloutCache { return &calloutCache{m: map[string]calloutEntry{}} }

func (c *calloutCache) get(key string) (*smtp.SMTPError, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || time.Now().After(e.expires) {
		delete(c.m, key)
		return nil, false
	}
	return e.err, true
}

func (c *calloutCache) put(key string, err *smtp.SMTPError) {
	ttl := calloutGoodTTL
	if err != nil {
		ttl = calloutBadTTL
	}
	c.putFor(key, err, ttl)
}

func (c *calloutCache) putFor(key string, err *smtp.SMTPError, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= calloutMax {
		now := time.Now()
		for k, e := range c.m {
			if now.After(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= calloutMax {
			c.m = map[string]calloutEntry{}
		}
	}
	c.m[key] = calloutEntry{err: err, expires: time.Now().Add(ttl)}
}

// Replies of a recipient check that could not run (RFC 3463: 4.4.x are
// network and routing problems). They are temporary: the sender retries,
// and nothing is accepted that might have to be bounced later.
var (
	errOldDown = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1},
		Message: "The mail server of this recipient cannot be reached now, try again later"}
	errOldBroken = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2},
		Message: "The connection to the mail server of this recipient broke, try again later"}
	errOldUnclear = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 0},
		Message: "The recipient cannot be checked now, try again later"}
	errOldNoUTF8 = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7},
		Message: "The mail server of this recipient does not accept non-ASCII addresses"}
	errForwardTemp = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 0},
		Message: "The mail server of these recipients did not take the message now, try again later"}
	errOldTooBig = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message: "Message too big for the mail server of this recipient"}
)

// verifyRcpt asks the old server whether it accepts rcpt (RFC 5321: a
// transaction with the null reverse-path that is reset before DATA). It
// returns nil only when the old server said yes. A permanent "no" is
// passed on; when the question cannot be asked or gets no clear answer
// (old server down or recently down, TLS failure, the null sender refused,
// a 4xx reply, a broken session) the answer is 451 4.4.x; a non-ASCII
// recipient for an old server without SMTPUTF8 is refused for good
// (553 5.6.7), since it could never be delivered.
func (r *Relay) verifyRcpt(ctx context.Context, old *oldserver.Settings, rcpt string) *smtp.SMTPError {
	set := old.WithDefaults()
	key := poolKey(&set)
	ckey := calloutKey(key, rcpt)
	if se, ok := r.callout.get(ckey); ok {
		return se
	}
	downKey := key + "\x00down"
	if _, down := r.callout.get(downKey); down {
		return errOldDown // the old server did not answer a moment ago
	}
	ctx, cancel := context.WithTimeout(ctx, calloutTimeout)
	defer cancel()
	utf8 := !isASCII(rcpt)
	for fresh := false; ; fresh = true {
		c, reused, err := r.client(ctx, &set, key, fresh)
		if err != nil && fresh && timeSpent(ctx) {
			// A pooled session stalled until this callout's time was
			// spent (a server slowing a session it counts errors on):
			// no time was left to dial, which says nothing of the server.
			r.log.Info("recipient callout: no time left after a stalled session", "rcpt", rcpt, "err", err)
			return errOldBroken
		}
		if err != nil {
			r.log.Info("recipient callout: old server unreachable", "rcpt", rcpt, "err", err)
			r.callout.putFor(downKey, nil, calloutDownTTL)
			return errOldDown
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		c.CommandTimeout = calloutTimeout
		if ok, _ := c.Extension("SMTPUTF8"); utf8 && !ok {
			r.pool.releaser(key, c, stop, false)()
			return errOldNoUTF8
		}
		err = c.Mail("", &smtp.MailOptions{UTF8: utf8})
		if err != nil && reused && brokenSession(err) {
			stop()
			c.Close()
			continue // a pooled session the server closed: once more, afresh
		}
		if err != nil {
			// The null sender refused, or the session broke: no answer
			// about the recipient.
			r.log.Info("recipient callout: no answer", "rcpt", rcpt, "err", err)
			if brokenSession(err) {
				stop()
				c.Close()
				return errOldBroken
			}
			r.pool.noteRefused(c)
			r.pool.releaser(key, c, stop, true)()
			return errOldUnclear
		}
		err = c.Rcpt(rcpt, nil)
		if err != nil && !brokenSession(err) {
			r.pool.noteRefused(c) // Postfix counts 4xx and 5xx alike
		}
		var se *smtp.SMTPError
		switch {
		case err == nil:
			r.callout.put(ckey, nil)
		case errors.As(err, &se) && se.Code/100 == 5:
			se = passOn(se)
			r.callout.put(ckey, se)
		case brokenSession(err):
			r.log.Info("recipient callout: session broke", "rcpt", rcpt, "err", err)
			stop()
			c.Close()
			return errOldBroken
		default:
			r.log.Info("recipient callout: no clear answer", "rcpt", rcpt, "err", err)
			se = errOldUnclear
		}
		r.pool.releaser(key, c, stop, true)()
		return se
	}
}

// timeSpent reports whether ctx has ended or reached its deadline (a dial
// bounded by the deadline may fail at it before ctx's timer has fired).
func timeSpent(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ctx.Err() != nil || ok && !time.Now().Before(dl)
}

// errAcceptsAnyone is why a recipient the old server accepted is not
// recorded as a known user: the server takes recipients that cannot exist.
var errAcceptsAnyone = errors.New("relay: the old server accepts any recipient of the domain at RCPT")

// acceptsAnyone reports whether the old server takes, at RCPT, a recipient
// of domain that cannot exist (a random local part): a catch-all, or a
// server that accepts everything and bounces later. Its yes to a recipient
// then says nothing about who its users are, so the relay records no
// known user from it (a sender from outside could otherwise name made-up
// addresses by the thousand, each a store write, and the readiness check
// would wait for them as users never moved). The answer is remembered as
// a callout's is (calloutGoodTTL); one that could not be had counts as
// yes (nothing recorded) and is asked again next time.
func (r *Relay) acceptsAnyone(ctx context.Context, old *oldserver.Settings, domain string) bool {
	set := old.WithDefaults()
	key := poolKey(&set) + "\x00anyone\x00" + domain
	if se, ok := r.callout.get(key); ok {
		return se == nil
	}
	se := r.verifyRcpt(ctx, &set, "mailferry-no-such-user-"+newID()+"@"+domain)
	switch {
	case se == nil:
		r.log.Info("the old server accepts any recipient at RCPT: its recipients are not recorded as known users", "domain", domain, "old", set.Host.String())
		r.callout.putFor(key, nil, calloutGoodTTL)
		return true
	case se.Code/100 == 5:
		r.callout.putFor(key, se, calloutGoodTTL)
		return false
	}
	return true
}

func calloutKey(poolKey, rcpt string) string {
	return poolKey + "\x00" + strings.ToLower(rcpt)
}

// forwardKey is where a recipient the old server refused while a message
// of from was forwarded is remembered: for the RCPT of that sender's retry
// only. The refusal may be about the sender rather than the recipient (an
// old server that verifies senders at RCPT, as Exim's default
// configuration does before it trusts relay_from_hosts, or applies
// Postfix's smtpd_sender_restrictions there), which the callout's null
// sender never meets: remembered for every sender, a stranger's refused
// address had everyone's mail to the recipient refused for good.
func forwardKey(poolKey, from, rcpt string) string {
	return poolKey + "\x00from\x00" + strings.ToLower(from) + "\x00" + strings.ToLower(rcpt)
}

// passOn is the reply that passes an old server's permanent refusal on to
// our client: its code and enhanced code (5.0.0 when it gave none), and its
// text on one printable line.
func passOn(se *smtp.SMTPError) *smtp.SMTPError {
	out := &smtp.SMTPError{Code: se.Code, EnhancedCode: se.EnhancedCode, Message: oneLine(se.Message)}
	if out.Code < 500 || out.Code > 599 {
		out.Code = 550
	}
	if out.EnhancedCode[0] != 5 {
		out.EnhancedCode = smtp.EnhancedCode{5, 0, 0}
	}
	if out.Message == "" {
		out.Message = "Refused by the mail server of this recipient"
	}
	return out
}

// sizeTTL is how long an old server's SIZE, learned from its EHLO reply,
// is trusted without a new session confirming it.
const sizeTTL = time.Hour

// sizeCache remembers each old server's SIZE limit (RFC 1870), per pool
// key, as the EHLO replies of our sessions to it announced it.
type sizeCache struct {
	mu sync.Mutex
	m  map[string]sizeEntry
}

type sizeEntry struct {
	limit int64 // 0: no limit announced
	seen  time.Time
}

func newSizeCache() *sizeCache { return &sizeCache{m: map[string]sizeEntry{}} }

// learn records what c's EHLO reply said about SIZE.
func (c *sizeCache) learn(key string, cl *smtp.Client) {
	var limit int64
	if ok, param := cl.Extension("SIZE"); ok {
		if n, err := strconv.ParseInt(strings.TrimSpace(param), 10, 64); err == nil && n > 0 {
			limit = n
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = sizeEntry{limit: limit, seen: time.Now()}
}

// limit returns the SIZE limit of the old server key, if one is known.
func (c *sizeCache) limit(key string) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || e.limit == 0 || time.Since(e.seen) > sizeTTL {
		return 0, false
	}
	return e.limit, true
}

// min returns the smallest known SIZE limit of all old servers, 0 when
// none is known.
func (c *sizeCache) min() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var m int64
	for k, e := range c.m {
		if time.Since(e.seen) > sizeTTL {
			delete(c.m, k)
			continue
		}
		if e.limit > 0 && (m == 0 || e.limit < m) {
			m = e.limit
		}
	}
	return m
}
