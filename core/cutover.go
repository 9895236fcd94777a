package core

// The cutover checks: what must hold for mail to keep flowing once a
// domain's old server is gone. Each is asked of the world as it is now —
// DNS through dns_resolver, the certificate the listeners serve, the
// latest test message the domain's post-migration route delivered — and
// answers OK, a warning, a failure or "unknown" (DNS did not answer):
//
//   - route: the outbound route mail takes after migration (direct by MX,
//     or the smarthost set) is proven: a test message sent through it
//     (SendTestMessage) was accepted (250) by the remote server, through
//     that same route. The old server as route fails: it goes away.
//   - mx: the domain's MX records name Mailferry's host names (hostname,
//     acme_names) and nothing else.
//   - dns: the DKIM key records of the active keys and the SPF record are
//     published as `mailferry domain dkim` prints them; a pending key not
//     yet published, an SPF record that differs (it may name a smarthost's
//     provider) and a missing DMARC record are warnings.
//   - certificate: the certificate served is not self-signed, in its
//     validity period, valid for the names clients use (hostname,
//     acme_names) and its chain (as served) leads to a root mail programs
//     trust (the system's roots): a private CA's certificate, or a
//     cert_file without its intermediate, fails.

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"mailferry/core/dkim"
	"mailferry/core/relay"
	"mailferry/core/store"
)

// CheckState is the outcome of one cutover check.
type CheckState string

// Check outcomes.
const (
	CheckOK      CheckState = "ok"
	CheckWarn    CheckState = "warning"
	CheckFail    CheckState = "failed"
	CheckUnknown CheckState = "unknown"
)

// Cutover checks (CutoverCheck.Name).
const (
	CheckRoute       = "outbound route"
	CheckMX          = "MX record"
	CheckDNSRecords  = "DKIM and SPF records"
	CheckCertificate = "certificate"
)

// CutoverCheck is one check of what comes after the old server.
type CutoverCheck struct {
	Name  string     `json:"name"`
	State CheckState `json:"state"`
	// Text says in words what was found and, unless OK, what to do.
	Text string `json:"text"`
}

// RouteProof is the latest test message a domain's outbound route
// delivered: the route (described, never with a password), the
// recipient, the server that accepted it with its reply, and when.
type RouteProof = store.RouteProof

// DeliveryError is why a test message was not delivered.
type DeliveryError = relay.DeliveryError

// postMigrationRoute is the route domain's mail takes once it stops
// migrating: the route set (in the configuration, with its password file
// read, or recorded), or direct delivery.
func (c *Core) postMigrationRoute(ctx context.Context, domain string) (OutboundRoute, error) {
	routes, err := c.routes()
	if err != nil {
		return OutboundRoute{}, err
	}
	rt, err := routes(ctx, domain)
	if err != nil {
		return OutboundRoute{}, err
	}
	if rt.Kind == RouteDefault {
		rt = OutboundRoute{Kind: RouteMX}
	}
	return rt.WithDefaults(), nil
}

// SendTestMessage sends a short test message from postmaster@domain to
// rcpt, an address at another domain the admin reads, through domain's
// post-migration outbound route (direct by MX, or the smarthost set), now
// and outside the queue, DKIM-signed as all outbound mail. When the remote
// server accepts it (250), that is recorded as the route's proof, which the
// readiness check asks for; a failure is returned (a *DeliveryError with
// the remote reply) and changes no proof.
func (c *Core) SendTestMessage(ctx context.Context, domain, rcpt string) (*RouteProof, error) {
	d, err := c.localDomain(ctx, domain)
	if err != nil {
		return nil, err
	}
	rcpt = strings.TrimSpace(rcpt)
	_, rd, err := store.SplitAddress(rcpt)
	if err != nil || len(rcpt) > 254 || strings.ContainsFunc(rcpt, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return nil, fmt.Errorf("%w: %q is not an address such as you@example.com", ErrInvalid, clip(rcpt))
	}
	if _, err := c.store.Domain(ctx, rd); err == nil {
		return nil, fmt.Errorf("%w: %s is one of Mailferry's own domains: name an address elsewhere (a webmail you read), so the message really leaves", ErrInvalid, rd)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	rt, err := c.postMigrationRoute(ctx, d)
	if err != nil {
		return nil, err
	}
	if rt.Kind == RouteOldServer {
		return nil, fmt.Errorf("%w: %s's outbound route is the old server, which goes away: choose direct delivery or a smarthost first", ErrInvalid, d)
	}
	rel := c.relay
	if rel == nil {
		// Not serving (the command line beside `mailferry serve`): a relay
		// of its own for this one message.
		opts, err := c.relayOptions()
		if err != nil {
			return nil, err
		}
		if rel, err = relay.New(opts); err != nil {
			return nil, err
		}
		defer rel.Close()
	}
	from := "postmaster@" + d
	now := time.Now()
	var id [12]byte
	rand.Read(id[:])
	msg := strings.Join([]string{
		"Date: " + now.Format(time.RFC1123Z),
		"From: Mailferry <" + from + ">",
		"To: <" + rcpt + ">",
		"Subject: Mailferry test message for " + d,
		"Message-ID: <" + hex.EncodeToString(id[:]) + "@" + c.cfg.Hostname + ">",
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=utf-8",
		"",
		"This message was sent by Mailferry to prove that mail from " + d,
		"leaves by its outbound route (" + rt.String() + ") once the old server",
		"is gone. Nothing needs to be done with it.",
		"",
	}, "\r\n")
	remote, err := rel.Deliver(ctx, d, rt, from, rcpt, []byte(msg))
	if err != nil {
		return nil, err
	}
	p := RouteProof{Route: rt.String(), Rcpt: rcpt, Remote: remote, Reply: "250", At: now.Truncate(time.Second)}
	if err := c.store.SetRouteProof(ctx, d, p); err != nil {
		return nil, err
	}
	return &p, nil
}

// lookupResolver is the DNS the admin's records are checked in:
// Config.AuthResolver (tests), else dns_resolver, else the system's.
func (c *Core) lookupResolver() (dkim.Resolver, error) {
	if c.cfg.AuthResolver != nil {
		return c.cfg.AuthResolver, nil
	}
	r, err := c.dnsResolver()
	if err != nil || r != nil {
		return r, err
	}
	return net.DefaultResolver, nil
}

// cutoverChecks runs the checks of domain (canonical).
func (c *Core) cutoverChecks(ctx context.Context, domain string) ([]CutoverCheck, error) {
	route, err := c.checkRoute(ctx, domain)
	if err != nil {
		return nil, err
	}
	res, err := c.lookupResolver()
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	recs, err := c.checkDNSRecords(dctx, res, domain)
	if err != nil {
		return nil, err
	}
	return []CutoverCheck{route, c.checkMX(dctx, res, domain), recs, c.checkCertificate()}, nil
}

func (c *Core) checkRoute(ctx context.Context, domain string) (CutoverCheck, error) {
	ch := CutoverCheck{Name: CheckRoute}
	rt, err := c.postMigrationRoute(ctx, domain)
	if err != nil {
		return ch, err
	}
	p, err := c.store.RouteProofOf(ctx, domain)
	if err != nil {
		return ch, err
	}
	switch {
	case rt.Kind == RouteOldServer:
		ch.State, ch.Text = CheckFail, "Outbound mail is set to go through the old server, which goes away: choose direct delivery or a smarthost, then send a test message."
	case p == nil:
		ch.State, ch.Text = CheckFail, fmt.Sprintf("Not proven: after migration mail leaves by %s, and no test message has gone through it yet. Send one to an address you read elsewhere.", describeKind(rt))
	case p.Route != rt.String():
		ch.State, ch.Text = CheckFail, fmt.Sprintf("Not proven: the route changed since the last test message (that went by %s; now %s). Send a test message again.", p.Route, rt.String())
	default:
		ch.State, ch.Text = CheckOK, fmt.Sprintf("Proven: a test message to %s by %s was accepted by %s (%s) on %s.", p.Rcpt, describeKind(rt), p.Remote, p.Reply, p.At.Local().Format("2006-01-02 15:04"))
	}
	return ch, nil
}

func describeKind(rt OutboundRoute) string {
	if rt.Kind == RouteMX {
		return "direct delivery (MX)"
	}
	return rt.String()
}

// ownNames are the host names Mailferry answers to (hostname, acme_names).
func (c *Core) ownNames() []string {
	names := []string{strings.TrimSuffix(strings.ToLower(c.cfg.Hostname), ".")}
	for _, n := range c.cfg.ACMENames {
		if n = strings.TrimSuffix(strings.ToLower(n), "."); !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

func (c *Core) checkMX(ctx context.Context, res dkim.Resolver, domain string) CutoverCheck {
	ch := CutoverCheck{Name: CheckMX}
	mxs, err := res.LookupMX(ctx, domain+".")
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound, err == nil && len(mxs) == 0:
		ch.State, ch.Text = CheckFail, fmt.Sprintf("%s has no MX record: publish one naming %s.", domain, c.ownNames()[0])
		return ch
	case err != nil:
		ch.State, ch.Text = CheckUnknown, fmt.Sprintf("DNS did not answer for the MX records of %s: %v", domain, err)
		return ch
	}
	own := c.ownNames()
	var hosts, others []string
	for _, mx := range mxs {
		h := strings.TrimSuffix(strings.ToLower(mx.Host), ".")
		if h == "" {
			h = "." // a null MX (RFC 7505)
		}
		hosts = append(hosts, fmt.Sprintf("%s (preference %d)", h, mx.Pref))
		if !slices.Contains(own, h) {
			others = append(others, h)
		}
	}
	if len(others) > 0 {
		ch.State, ch.Text = CheckFail, fmt.Sprintf("The MX records of %s name %s; %s is not Mailferry (%s): mail sent there would not reach Mailferry once the old server is gone.",
			domain, strings.Join(hosts, ", "), strings.Join(others, ", "), strings.Join(own, ", "))
		return ch
	}
	ch.State, ch.Text = CheckOK, fmt.Sprintf("The MX records of %s name Mailferry: %s.", domain, strings.Join(hosts, ", "))
	return ch
}

func (c *Core) checkDNSRecords(ctx context.Context, res dkim.Resolver, domain string) (CutoverCheck, error) {
	ch := CutoverCheck{Name: CheckDNSRecords}
	recs, err := c.DKIMRecords(ctx, domain, dkim.SPFPolicy{})
	if err != nil {
		return ch, err
	}
	gens, err := c.dkim.Generations(domain)
	if err != nil {
		return ch, err
	}
	state := map[string]dkim.State{} // by record name
	for _, g := range gens {
		for _, k := range g.Keys {
			state[k.Selector+"._domainkey."+domain] = g.State
		}
	}
	worst := CheckOK
	raise := func(s CheckState) {
		rank := map[CheckState]int{CheckOK: 0, CheckWarn: 1, CheckUnknown: 2, CheckFail: 3}
		if rank[s] > rank[worst] {
			worst = s
		}
	}
	var notes []string
	for _, st := range dkim.CheckRecords(ctx, res, recs) {
		r := st.Record
		kind := "DMARC"
		switch {
		case strings.Contains(r.Name, "._domainkey."):
			kind = "DKIM"
		case r.Name == domain:
			kind = "SPF"
		}
		gs, isKey := state[r.Name]
		if isKey && gs == dkim.Retired {
			continue
		}
		switch st.Status {
		case dkim.Published:
			continue
		case dkim.Unknown:
			raise(CheckUnknown)
			notes = append(notes, fmt.Sprintf("%s: DNS did not answer (%v)", r.Name, st.Err))
			continue
		}
		what := "missing"
		if st.Status == dkim.Different {
			what = fmt.Sprintf("different (DNS serves %q)", strings.Join(st.Found, `", "`))
		}
		switch {
		case kind == "DKIM" && gs == dkim.Pending:
			raise(CheckWarn)
			notes = append(notes, fmt.Sprintf("the pending DKIM key %s is %s: publish it before activating it", r.Name, what))
		case kind == "SPF" && st.Status == dkim.Different:
			raise(CheckWarn)
			notes = append(notes, fmt.Sprintf("the SPF record of %s is %s: make sure it lets Mailferry's mail through (%s)", r.Name, what, r.Value))
		case kind == "DMARC":
			raise(CheckWarn)
			notes = append(notes, fmt.Sprintf("no DMARC record at %s: publish %q", r.Name, r.Value))
		default:
			raise(CheckFail)
			notes = append(notes, fmt.Sprintf("the %s record %s is %s: publish %q", kind, r.Name, what, r.Value))
		}
	}
	ch.State = worst
	if len(notes) == 0 {
		ch.Text = "The DKIM keys, SPF and DMARC records are published as Mailferry gives them."
	} else {
		ch.Text = upper(strings.Join(notes, "; ")) + "."
	}
	return ch, nil
}

func upper(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (c *Core) checkCertificate() CutoverCheck {
	ch := CutoverCheck{Name: CheckCertificate}
	in := c.Certificate()
	now := time.Now()
	var bad []string
	switch {
	case in.Leaf == nil:
		ch.State, ch.Text = CheckFail, "No certificate to serve: "+in.Problem
		return ch
	case in.Source == CertSelfSigned:
		ch.State, ch.Text = CheckFail, "The certificate is self-signed: mail programs warn about it or refuse it. Set acme_email (ACME) or cert_file."
		return ch
	case now.After(in.NotAfter):
		ch.State, ch.Text = CheckFail, "The certificate expired on "+in.NotAfter.Format("2006-01-02")+"."
		return ch
	case now.Before(in.NotBefore):
		ch.State, ch.Text = CheckFail, "The certificate is not valid before "+in.NotBefore.Format("2006-01-02 15:04")+": mail programs refuse it until then."
		return ch
	}
	inter := x509.NewCertPool()
	for _, c := range in.Intermediates {
		inter.AddCert(c)
	}
	if _, err := in.Leaf.Verify(x509.VerifyOptions{Roots: c.cfg.CertRoots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		ch.State, ch.Text = CheckFail, fmt.Sprintf("Mail programs do not trust the certificate (issued by %s): %v. Use one from a public CA (set acme_email), or give cert_file the whole chain.", in.Issuer, err)
		return ch
	}
	for _, n := range c.ownNames() {
		if in.Leaf.VerifyHostname(n) != nil {
			bad = append(bad, n)
		}
	}
	if len(bad) > 0 {
		ch.State, ch.Text = CheckFail, fmt.Sprintf("The certificate (for %s) is not valid for %s, which clients use.", strings.Join(in.Names, ", "), strings.Join(bad, ", "))
		return ch
	}
	ch.State = CheckOK
	ch.Text = fmt.Sprintf("The certificate (%s, issued by %s) is valid for %s until %s.", in.Source, in.Issuer, strings.Join(c.ownNames(), ", "), in.NotAfter.Format("2006-01-02"))
	if in.Source != CertACME && in.NotAfter.Sub(now) < 14*24*time.Hour {
		ch.State = CheckWarn
		ch.Text += " Renew it soon."
	}
	return ch
}
