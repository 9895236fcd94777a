package core

// What Mailferry learnt about a domain's old server (the login form that
// works, a connection cap, capabilities: core/oldserver's Learnt, kept by
// core/migrate in the store), and the words the assistant and `domain
// migrate --show` tell it in.

import (
	"context"

	"mailferry/core/migrate"
)

// RememberOldServer records what the connection test (ProbeOldServer, with
// the test account's login) learnt about domain's old server, so that the
// domain's first logins go straight to the login form that works and its
// copies start with the connection cap the server showed. The domain must
// exist; a result that learnt nothing changes nothing.
func (c *Core) RememberOldServer(ctx context.Context, domain string, res *ProbeResult) error {
	if res == nil || res.IMAP.Learnt == nil {
		return nil
	}
	domain, err := CheckDomainName(domain)
	if err != nil {
		return err
	}
	return migrate.Learn(ctx, c.store, domain, res.IMAP.Learnt)
}

// OldServerFacts says what was learnt about domain's old server, each fact
// with the workaround Mailferry applies, as it holds under the domain's
// settings now; none when nothing was learnt at the server the domain now
// uses.
func (c *Core) OldServerFacts(ctx context.Context, domain string) ([]OldServerFact, error) {
	s, _, err := c.MigrationSettings(ctx, domain)
	if err != nil || s == nil {
		return nil, err
	}
	l, err := migrate.Learnt(ctx, c.store, domain)
	if err != nil {
		return nil, err
	}
	d, _ := CheckDomainName(domain)
	return l.Facts(*s, d), nil
}
