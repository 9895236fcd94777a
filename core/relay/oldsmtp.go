package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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

// sendGroup hands a message to a domain's old server for some recipients
// and reports each recipient's outcome (RFC 5321 section 3.3: per-RCPT
// replies, then one reply for DATA).
//
// The session is left open after the final reply, so that the caller can
// record the outcome before anything else happens; quit ends it (QUIT and
// close) and must be called.
func (r *Relay) sendGroup(ctx context.Context, domain, from string, rcpts []string, body []byte) (outs []outcome, quit func()) {
	quit = func() {}
	all := func(o func(rc string) outcome) ([]outcome, func()) {
		out := make([]outcome, 0, len(rcpts))
		for _, rc := range rcpts {
			out = append(out, o(rc))
		}
		return out, quit
	}
	old, _, err := r.opts.OldServer(ctx, domain)
	if err == nil && old == nil {
		err = fmt.Errorf("no old server is configured for %s", domain)
	}
	if err != nil {
		return all(func(rc string) outcome {
			return outcome{rcpt: rc, temp: true, status: "4.4.0", detail: oneLine(err.Error())}
		})
	}
	set := old.WithDefaults()
	remote := set.Host.String()
	dctx, cancel := context.WithTimeout(ctx, r.opts.ClientTimeout)
	c, err := r.opts.Dial(dctx, &set, r.opts.Hostname)
	cancel()
	if err != nil {
		// Whatever the old server said while we connected (even a 554
		// greeting), it did not refuse this message: try again later.
		return all(func(rc string) outcome {
			o := failOutcome(rc, remote, err)
			if o.perm {
				o.perm, o.temp, o.status = false, true, "4.4.1"
			}
			return o
		})
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	closeOnly := func() { stop(); c.Close() }
	quit = closeOnly
	c.CommandTimeout = r.opts.ClientTimeout
	c.SubmissionTimeout = 2 * r.opts.ClientTimeout

	utf8 := !isASCII(from)
	for _, rc := range rcpts {
		utf8 = utf8 || !isASCII(rc)
	}
	if ok, _ := c.Extension("SMTPUTF8"); utf8 && !ok {
		return all(func(rc string) outcome {
			return outcome{rcpt: rc, perm: true, status: "5.6.7", remote: remote,
				detail: "the old server does not support SMTPUTF8, needed for these addresses"}
		})
	}
	if err := c.Mail(from, &smtp.MailOptions{Size: int64(len(body)), UTF8: utf8}); err != nil {
		return all(func(rc string) outcome { return failOutcome(rc, remote, err) })
	}
	var accepted []string
	for i, rc := range rcpts {
		err := c.Rcpt(rc, nil)
		if err == nil {
			accepted = append(accepted, rc)
			continue
		}
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			// The connection broke: nothing was delivered.
			for _, x := range append(accepted, rcpts[i:]...) {
				outs = append(outs, failOutcome(x, remote, err))
			}
			return outs, quit
		}
		outs = append(outs, failOutcome(rc, remote, err))
	}
	quit = func() { c.Quit(); closeOnly() }
	if len(accepted) == 0 {
		return outs, quit
	}
	failAccepted := func(err error) ([]outcome, func()) {
		for _, rc := range accepted {
			outs = append(outs, failOutcome(rc, remote, err))
		}
		return outs, quit
	}
	w, err := c.Data()
	if err != nil {
		return failAccepted(err)
	}
	if _, err := w.Write(body); err != nil {
		quit = closeOnly
		return failAccepted(err)
	}
	if err := w.Close(); err != nil {
		return failAccepted(err)
	}
	for _, rc := range accepted {
		outs = append(outs, okOutcome(rc, remote))
	}
	return outs, quit
}
