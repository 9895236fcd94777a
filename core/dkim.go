package core

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"mailferry/core/dkim"
)

// This file is Core's mail-authentication API (DKIM keys, the DNS records
// to publish beside them, inbound checks): see core/dkim for the rules.
// Keys live under DataDir/dkim; a domain's keys are made on first use (its
// records asked for, or its first signed message).

// ErrDNSNotReady is returned by ActivateDKIM while DNS does not serve the
// pending keys' records.
var ErrDNSNotReady = errors.New("the new DKIM keys are not in DNS yet")

// DKIM is the keyring the SMTP relay signs outbound mail with:
// DKIM().Sign(domain, msg) returns msg with its DKIM-Signature fields
// prepended.
func (c *Core) DKIM() *dkim.Keyring { return c.dkim }

// AuthVerifier returns the checker the SMTP relay gives inbound mail's
// Authentication-Results header with (Verifier.AuthenticationResults),
// asking the system's DNS resolver and naming this server by the
// configured host name.
func (c *Core) AuthVerifier() (*dkim.Verifier, error) {
	return dkim.NewVerifier(dkim.VerifierOptions{Resolver: c.resolver(), Hostname: c.cfg.Hostname})
}

// resolver is the DNS mail authentication asks: Config.AuthResolver, or
// the system's.
func (c *Core) resolver() dkim.Resolver {
	if c.cfg.AuthResolver != nil {
		return c.cfg.AuthResolver
	}
	return net.DefaultResolver
}

// localDomain returns the canonical name of domain, which must be one of
// Mailferry's.
func (c *Core) localDomain(ctx context.Context, domain string) (string, error) {
	d, err := CheckDomainName(domain)
	if err != nil {
		return "", err
	}
	if _, err := c.store.Domain(ctx, d); err != nil {
		return "", err
	}
	return d, nil
}

// EnsureDKIM makes domain's DKIM keys unless it has them; domain must be a
// local domain.
func (c *Core) EnsureDKIM(ctx context.Context, domain string) error {
	d, err := c.localDomain(ctx, domain)
	if err != nil {
		return err
	}
	_, err = c.dkim.Active(d)
	return err
}

// DKIMRecords returns the DNS records to publish for domain (a local
// domain): its DKIM keys (pending, active and retired, each with what to
// do), the SPF record for spf (the zero SPFPolicy: "v=spf1 mx -all") and a
// DMARC record to start with. Keys are made on first use. Each Record's
// String is the line to show; Zone the zone-file form.
func (c *Core) DKIMRecords(ctx context.Context, domain string, spf dkim.SPFPolicy) ([]dkim.Record, error) {
	d, err := c.localDomain(ctx, domain)
	if err != nil {
		return nil, err
	}
	return c.dkim.Records(d, spf)
}

// CheckDKIMRecords returns DKIMRecords with what DNS serves for each
// (asked through dns_resolver when it is set).
func (c *Core) CheckDKIMRecords(ctx context.Context, domain string, spf dkim.SPFPolicy) ([]dkim.RecordStatus, error) {
	recs, err := c.DKIMRecords(ctx, domain, spf)
	if err != nil {
		return nil, err
	}
	res, err := c.lookupResolver()
	if err != nil {
		return nil, err
	}
	return dkim.CheckRecords(ctx, res, recs), nil
}

// DKIMKeys returns domain's key generations (pending first, then active,
// then retired), making its keys on first use.
func (c *Core) DKIMKeys(ctx context.Context, domain string) ([]*dkim.Generation, error) {
	if err := c.EnsureDKIM(ctx, domain); err != nil {
		return nil, err
	}
	d, _ := CheckDomainName(domain) // checked by EnsureDKIM
	return c.dkim.Generations(d)
}

// RotateDKIM starts a key rotation for domain: new keys are made pending
// (returned; a pending rotation is returned as it is). Publish their
// records (DKIMRecords), then call ActivateDKIM; mail is signed with the
// current keys until then.
func (c *Core) RotateDKIM(ctx context.Context, domain string) (*dkim.Generation, error) {
	d, err := c.localDomain(ctx, domain)
	if err != nil {
		return nil, err
	}
	return c.dkim.Rotate(d)
}

// ActivateDKIM ends a key rotation: the pending keys sign mail from now on,
// the previous ones are retired (their records stay listed, to keep in DNS
// for a while). Unless force is set it first checks that DNS serves the
// pending keys' records, and returns an error wrapping ErrDNSNotReady,
// naming them, when it does not. dkim.ErrNoPending when no rotation was
// started.
func (c *Core) ActivateDKIM(ctx context.Context, domain string, force bool) (*dkim.Generation, error) {
	d, err := c.localDomain(ctx, domain)
	if err != nil {
		return nil, err
	}
	if !force {
		gens, err := c.dkim.Generations(d)
		if err != nil {
			return nil, err
		}
		var pending []dkim.Record
		all, err := c.dkim.DKIMRecords(d)
		if err != nil {
			return nil, err
		}
		for _, g := range gens {
			if g.State != dkim.Pending {
				continue
			}
			for _, k := range g.Keys {
				for _, r := range all {
					if strings.HasPrefix(r.Name, k.Selector+"._domainkey.") {
						pending = append(pending, r)
					}
				}
			}
		}
		if len(pending) == 0 {
			return nil, fmt.Errorf("%w for %s", dkim.ErrNoPending, d)
		}
		var missing []string
		for _, st := range dkim.CheckRecords(ctx, c.resolver(), pending) {
			if st.Status != dkim.Published {
				missing = append(missing, fmt.Sprintf("%s (%s)", st.Record.Name, st.Status))
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("%w: %s", ErrDNSNotReady, strings.Join(missing, ", "))
		}
	}
	return c.dkim.Activate(d)
}

// authResults is the relay's Options.AuthResults: the Authentication-Results
// field of inbound mail, or nil (none) when no verifier can be made.
func (c *Core) authResults() func(ctx context.Context, ip netip.Addr, helo, mailFrom string, msg []byte) string {
	v, err := c.AuthVerifier()
	if err != nil {
		c.log.Warn("no Authentication-Results for inbound mail", "err", err)
		return nil
	}
	return func(ctx context.Context, ip netip.Addr, helo, mailFrom string, msg []byte) string {
		return v.AuthenticationResults(ctx, dkim.Session{ClientIP: ip, HELO: helo, MailFrom: mailFrom}, msg)
	}
}

// sign is the relay's Options.Sign: mail leaving by MX or a smarthost is
// DKIM-signed with the domain's keys. A message that cannot be signed (a
// header too large to sign safely, a key that cannot be read) goes out
// unsigned, and the failure is logged: it is not a reason to hold mail.
func (c *Core) sign(domain string, msg []byte) ([]byte, error) {
	out, err := c.dkim.Sign(domain, msg)
	if err != nil {
		c.log.Warn("DKIM: sending unsigned", "domain", domain, "err", err)
		return msg, nil
	}
	return out, nil
}
