package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// NewResolver returns a resolver that sends every query to the DNS server
// at addr (host:port, for example "127.0.0.1:5353"), over UDP or TCP as
// the Go resolver chooses.
func NewResolver(addr string) (*net.Resolver, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("relay: DNS resolver %q: want host:port: %w", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
		return nil, fmt.Errorf("relay: DNS resolver %q: want host:port with a port from 1 to 65535", addr)
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}, nil
}

// Errors of mxHosts that no retry can mend.
var (
	// errNullMX: the domain says it accepts no mail (RFC 7505).
	errNullMX = errors.New("relay: null MX")
	// errNoDomain: the domain does not exist, or has neither MX nor
	// address records.
	errNoDomain = errors.New("relay: no such mail domain")
)

// maxMXHosts bounds the mail exchangers tried per attempt, maxMXAddrs the
// addresses tried per exchanger, and maxMXTries the addresses tried per
// attempt in all (Postfix's smtp_mx_address_limit): each may take
// Options.ClientTimeout to fail without a word, and the queue's few
// workers serve every domain's mail.
const (
	maxMXHosts = 10
	maxMXAddrs = 4
	maxMXTries = 5
)

// fqdn adds the root label, so that the resolver's search list is never
// applied.
func fqdn(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

// notFound reports whether err says a name or record does not exist (as
// opposed to a failure to find out).
func notFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// mxHosts returns the mail exchangers of domain in the order to try them
// (RFC 5321 section 5.1): by MX preference, equal preferences shuffled by
// the resolver; the domain itself when it has no MX records but an
// address (the implicit MX). It wraps errNullMX for a null MX (RFC 7505:
// a single MX record whose exchange is "."), errNoDomain when the domain
// does not exist or has no address at all, and anything else (a DNS
// failure) is temporary.
func (r *Relay) mxHosts(ctx context.Context, domain string) ([]string, error) {
	mxs, err := r.resolver.LookupMX(ctx, fqdn(domain))
	if len(mxs) == 0 && err != nil {
		if !notFound(err) {
			return nil, fmt.Errorf("relay: MX lookup of %s: %w", domain, err)
		}
		// No MX records: the implicit MX, if the domain has an address.
		ips, err := r.resolver.LookupIPAddr(ctx, fqdn(domain))
		switch {
		case notFound(err) || (err == nil && len(ips) == 0):
			return nil, fmt.Errorf("%w: %s has no MX and no address records", errNoDomain, domain)
		case err != nil:
			return nil, fmt.Errorf("relay: address lookup of %s: %w", domain, err)
		}
		return []string{strings.TrimSuffix(domain, ".")}, nil
	}
	if len(mxs) == 1 && mxs[0].Host == "." {
		return nil, fmt.Errorf("%w: %s", errNullMX, domain)
	}
	var hosts []string
	for _, mx := range mxs {
		h := strings.TrimSuffix(mx.Host, ".")
		if h == "" {
			continue // a "." among other records: a broken null MX, skipped
		}
		hosts = append(hosts, strings.ToLower(h))
		if len(hosts) == maxMXHosts {
			break
		}
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("%w: %s", errNullMX, domain)
	}
	return hosts, nil
}

// mxPort is the port of mail exchanger host: 25, or what the test-only
// Options.MXPort says.
func (r *Relay) mxPort(host string) int {
	if r.opts.MXPort != nil {
		if p := r.opts.MXPort(host); p > 0 {
			return p
		}
	}
	return 25
}
