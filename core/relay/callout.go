package relay

import (
	"context"
	"errors"
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

// verifyRcpt asks the old server whether it accepts rcpt (RFC 5321: a
// transaction with the null reverse-path that is reset before DATA). It
// returns the refusal to pass on for a permanent "no", nil otherwise —
// also when the old server cannot be asked (the message is then queued).
func (r *Relay) verifyRcpt(ctx context.Context, old *oldserver.Settings, rcpt string) *smtp.SMTPError {
	set := old.WithDefaults()
	key := poolKey(&set)
	ckey := key + "\x00" + strings.ToLower(rcpt)
	if se, ok := r.callout.get(ckey); ok {
		return se
	}
	downKey := key + "\x00down"
	if _, down := r.callout.get(downKey); down {
		return nil // the old server did not answer a moment ago
	}
	ctx, cancel := context.WithTimeout(ctx, calloutTimeout)
	defer cancel()
	utf8 := !isASCII(rcpt)
	for fresh := false; ; fresh = true {
		c, reused := r.pool.get(key, fresh)
		if c == nil {
			var err error
			if c, err = r.opts.Dial(ctx, &set, r.opts.Hostname); err != nil {
				r.log.Info("recipient callout: old server unreachable, accepting", "rcpt", rcpt, "err", err)
				r.callout.putFor(downKey, nil, calloutDownTTL)
				return nil
			}
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		c.CommandTimeout = calloutTimeout
		if ok, _ := c.Extension("SMTPUTF8"); utf8 && !ok {
			r.pool.releaser(key, c, stop, false)()
			return nil // the delivery attempt will report it
		}
		err := c.Mail("", &smtp.MailOptions{UTF8: utf8})
		if err != nil && reused && brokenSession(err) {
			stop()
			c.Close()
			continue // a pooled session the server closed: once more, afresh
		}
		if err != nil {
			// The null sender refused, or the session broke: no answer
			// about the recipient.
			r.log.Info("recipient callout: no answer, accepting", "rcpt", rcpt, "err", err)
			if brokenSession(err) {
				stop()
				c.Close()
			} else {
				r.pool.releaser(key, c, stop, true)()
			}
			return nil
		}
		err = c.Rcpt(rcpt, nil)
		var se *smtp.SMTPError
		switch {
		case err == nil:
			r.callout.put(ckey, nil)
		case errors.As(err, &se) && se.Code/100 == 5:
			r.callout.put(ckey, se)
		default:
			r.log.Info("recipient callout: no clear answer, accepting", "rcpt", rcpt, "err", err)
			se = nil
		}
		if err != nil && brokenSession(err) {
			stop()
			c.Close()
			return nil
		}
		r.pool.releaser(key, c, stop, true)()
		return se
	}
}
