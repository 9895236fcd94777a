package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"

	"mailferry/core/oldserver"
)

// Delivery after the old server: directly to the recipients' mail
// exchangers (RFC 5321 section 5), or through a smarthost.

// mxTarget is the target of one address of a mail exchanger.
func (r *Relay) mxTarget(domain, host, addr string, need tlsNeed, pol *stsPolicy) *target {
	return &target{
		key:    "mx\x00" + host + "\x00" + addr + "\x00" + need.String(),
		remote: host,
		what:   host,
		dial: func(ctx context.Context) (*smtp.Client, error) {
			c, info, err := r.dialSMTP(ctx, addr, host, need, nil)
			if errors.Is(err, errTLSPlainFallback) {
				r.log.Info("STARTTLS failed, delivering without TLS", "mx", host, "err", err)
				c, info, err = r.dialSMTP(ctx, addr, host, tlsNone, nil)
			}
			if err != nil {
				return nil, fmt.Errorf("relay: mail exchanger %s of %s: %w", host, domain, err)
			}
			if pol != nil && pol.mode == stsTesting && (!info.on || info.verifyErr != nil) {
				// RFC 8461 section 5: report only.
				why := "no TLS"
				if info.on {
					why = info.verifyErr.Error()
				}
				r.log.Warn("MTA-STS testing: this delivery would fail under enforce", "domain", domain, "mx", host, "reason", why)
			}
			return c, nil
		},
	}
}

// smartTarget is the target of a smarthost route (rt with defaults).
func (r *Relay) smartTarget(rt Route) *target {
	addr := net.JoinHostPort(rt.Host, strconv.Itoa(rt.Port))
	need := tlsVerified
	switch rt.TLS {
	case SmarthostImplicitTLS:
		need = tlsImplicit
	case SmarthostNone:
		need = tlsNone
	}
	pin, _ := oldserver.ParseFingerprint(rt.Pin) // checked by Validate; nil when none
	return &target{
		key:    "smarthost\x00" + addr + "\x00" + string(rt.TLS) + "\x00" + rt.Username + "\x00" + rt.Pin,
		remote: rt.Host,
		what:   "the smarthost " + rt.Host,
		dial: func(ctx context.Context) (*smtp.Client, error) {
			c, info, err := r.dialSMTP(ctx, addr, rt.Host, need, pin)
			if err != nil {
				return nil, fmt.Errorf("relay: smarthost %s: %w", addr, err)
			}
			if rt.Username != "" {
				if err := authPlain(c, info, rt.Username, rt.Password); err != nil {
					c.Close()
					// The password itself is never in err.
					return nil, fmt.Errorf("relay: AUTH as %s at smarthost %s: %w", rt.Username, addr, err)
				}
			}
			return c, nil
		},
	}
}

// settle records the final outcomes of an attempt on one session (commit),
// then releases the session, and returns the temporary ones. gone reports
// that the queue item is done or vanished.
func settle(outs []outcome, release func(), commit func([]outcome) bool) (temps []outcome, gone bool) {
	var done []outcome
	for _, o := range outs {
		if o.temp {
			temps = append(temps, o)
		} else {
			done = append(done, o)
		}
	}
	alive := true
	if len(done) > 0 {
		// Recorded right after the remote reply, before QUIT.
		alive = commit(done)
	}
	release()
	return temps, !alive
}

// deliverMX delivers a message to the mail exchangers of domain for rcpts
// (RFC 5321 section 5.1): each exchanger in order, each of its addresses,
// until every recipient has a final answer; a temporary failure (no
// connection, a 4xx, a TLS failure under an MTA-STS enforce policy) goes
// on to the next. A null MX (RFC 7505) or a domain that does not exist
// fails for good. Final outcomes are committed as they come; the
// recipients still temporary after the last exchanger are returned.
func (r *Relay) deliverMX(ctx context.Context, domain, from string, rcpts []string, body []byte, commit func([]outcome) bool) (temps []outcome, gone bool) {
	log := r.log.With("domain", domain)
	hosts, err := r.mxHosts(ctx, domain)
	switch {
	case errors.Is(err, errNullMX):
		return settle(allPerm(rcpts, "5.1.10", domain+" accepts no mail: its DNS publishes a null MX record (RFC 7505)"), func() {}, commit)
	case errors.Is(err, errNoDomain):
		return settle(allPerm(rcpts, "5.1.2", "the domain "+domain+" does not exist or has no mail server (no MX and no address records)"), func() {}, commit)
	case err != nil:
		return allTemp(rcpts, "4.4.3", "", err), false
	}
	// RFC 5321 section 5.1: if we are one of the exchangers, only those
	// preferred to us are tried; if we are the most preferred, the mail
	// loops.
	for i, h := range hosts {
		if strings.EqualFold(h, strings.TrimSuffix(r.opts.Hostname, ".")) {
			hosts = hosts[:i]
			break
		}
	}
	if len(hosts) == 0 {
		return settle(allPerm(rcpts, "5.4.6", "mail for "+domain+" loops back to this server ("+r.opts.Hostname+" is its best MX) but the domain is not one of ours"), func() {}, commit)
	}
	pol := r.sts.policy(ctx, domain)
	pending := rcpts
	temps = allTemp(rcpts, "4.4.1", "", fmt.Errorf("no mail exchanger of %s could be reached", domain))
	tried := 0
	for _, host := range hosts {
		need := tlsOpportunistic
		if pol != nil && !pol.matches(host) {
			if pol.mode == stsEnforce {
				log.Warn("MTA-STS: mail exchanger not in the policy, skipped", "mx", host)
				temps = allTemp(pending, "4.7.5", host, fmt.Errorf("mail exchanger %s is not in the MTA-STS policy of %s", host, domain))
				continue
			}
			log.Warn("MTA-STS testing: mail exchanger not in the policy", "mx", host)
		}
		if pol != nil && pol.mode == stsEnforce {
			need = tlsVerified
		}
		ips, err := r.resolver.LookupIPAddr(ctx, fqdn(host))
		if err != nil {
			temps = allTemp(pending, "4.4.3", host, fmt.Errorf("address of mail exchanger %s: %w", host, err))
			continue
		}
		for i, ip := range ips {
			if i == maxMXAddrs || tried == maxMXTries || ctx.Err() != nil {
				break
			}
			tried++
			addr := net.JoinHostPort(ip.IP.String(), strconv.Itoa(r.mxPort(host)))
			outs, release := r.transact(ctx, r.mxTarget(domain, host, addr, need, pol), from, pending, body)
			temps, gone = settle(outs, release, commit)
			if gone || len(temps) == 0 {
				return nil, gone
			}
			pending = pending[:0:0]
			for _, o := range temps {
				pending = append(pending, o.rcpt)
			}
		}
		if ctx.Err() != nil || tried == maxMXTries {
			break
		}
	}
	log.Info("no mail exchanger took the message", "tried", tried, "pending", len(pending))
	return temps, false
}

// allPerm is the same permanent failure for every recipient.
func allPerm(rcpts []string, status, detail string) []outcome {
	out := make([]outcome, 0, len(rcpts))
	for _, rc := range rcpts {
		out = append(out, outcome{rcpt: rc, perm: true, status: status, detail: detail})
	}
	return out
}

// sign applies Options.Sign to a message leaving for another domain from
// domain; without a Sign function the message goes as it is.
func (r *Relay) sign(domain string, body []byte) ([]byte, error) {
	if r.opts.Sign == nil {
		return body, nil
	}
	b, err := r.opts.Sign(domain, body)
	if err != nil {
		return nil, fmt.Errorf("relay: sign for %s: %w", domain, err)
	}
	return b, nil
}
