package core

// Domain, account and relay-queue administration: what `mailferry domain`,
// `account` and `queue` and the assistant's domain dialogs change.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"mailferry/core/store"
)

// CheckDomainName returns the canonical form of a mail domain typed by an
// admin, or an error saying what is wrong with it (wrapping ErrInvalid).
func CheckDomainName(name string) (string, error) {
	return store.NormalizeDomain(strings.TrimSpace(name))
}

// SetMigration records domain's old server (s, or the settings already
// recorded when s is nil) and turns its automatic migration on or off,
// creating the domain if needed; invalid settings change nothing.
func (c *Core) SetMigration(ctx context.Context, domain string, s *OldServerSettings, on bool) error {
	return c.mig.SetDomain(ctx, domain, s, on)
}

// MigrationSettings returns the old-server settings recorded for domain
// (nil when none) and whether its migration is on.
func (c *Core) MigrationSettings(ctx context.Context, domain string) (*OldServerSettings, bool, error) {
	return c.mig.DomainSettings(ctx, domain)
}

// EnableMigration turns automatic migration from the old server s on for
// domain, creating the domain if needed. Invalid settings change nothing.
func (c *Core) EnableMigration(ctx context.Context, domain string, s OldServerSettings) error {
	domain, err := CheckDomainName(domain)
	if err != nil {
		return err
	}
	if s.DefaultDomain == "" {
		// The test migration learnt, with the admin's own test account,
		// that this old server's bare user names are this domain's: keep
		// that for the same server.
		if old, _, err := c.MigrationSettings(ctx, domain); err == nil && old != nil &&
			old.DefaultDomain == domain && old.Host == s.Host && old.IMAPPort == s.IMAPPort {
			s.DefaultDomain = domain
		}
	}
	return c.SetMigration(ctx, domain, &s, true)
}

// AddDomain creates a domain without migration and returns it.
func (c *Core) AddDomain(ctx context.Context, domain string) (*Domain, error) {
	domain, err := CheckDomainName(domain)
	if err != nil {
		return nil, err
	}
	d, err := c.store.CreateDomain(ctx, domain)
	if err != nil {
		return nil, err
	}
	// Its DKIM keys, so that the records to publish are there to show.
	if err := c.EnsureDKIM(ctx, d.Name); err != nil {
		c.log.Warn("DKIM keys of a new domain", "domain", d.Name, "err", err)
	}
	return d, nil
}

// DeleteDomain deletes an empty domain.
func (c *Core) DeleteDomain(ctx context.Context, domain string) error {
	return c.store.DeleteDomain(ctx, domain)
}

// Domain returns the domain name.
func (c *Core) Domain(ctx context.Context, name string) (*Domain, error) {
	return c.store.Domain(ctx, name)
}

// Domains lists the domains.
func (c *Core) Domains(ctx context.Context) ([]*Domain, error) {
	return c.store.Domains(ctx)
}

// OldServerOf returns the old-server settings recorded for domain, or nil.
func (c *Core) OldServerOf(ctx context.Context, domain string) (*OldServerSettings, error) {
	d, err := c.store.Domain(ctx, domain)
	if err != nil {
		return nil, err
	}
	return parseOldServer(d.OldServer)
}

func parseOldServer(js string) (*OldServerSettings, error) {
	if js == "" {
		return nil, nil
	}
	var s OldServerSettings
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		return nil, fmt.Errorf("old server settings: %w", err)
	}
	return &s, nil
}

// AddAccount creates a native account (one not migrated) with password.
func (c *Core) AddAccount(ctx context.Context, address, password string) (*Account, error) {
	return c.store.CreateAccount(ctx, address, password, nil)
}

// Account returns the account address.
func (c *Core) Account(ctx context.Context, address string) (*Account, error) {
	return c.store.Account(ctx, address)
}

// Accounts lists the accounts of domain ("" for every domain).
func (c *Core) Accounts(ctx context.Context, domain string) ([]*Account, error) {
	return c.store.Accounts(ctx, domain)
}

// SetPassword sets an account's password.
func (c *Core) SetPassword(ctx context.Context, address, password string) error {
	return c.store.SetPassword(ctx, address, password)
}

// DeleteAccount deletes an account with all its mail.
func (c *Core) DeleteAccount(ctx context.Context, address string) error {
	return c.store.DeleteAccount(ctx, address)
}

// Queue lists the relay queue.
func (c *Core) Queue(ctx context.Context) ([]*QueueItem, error) {
	return c.store.Queue(ctx)
}

// QueueRetry makes a queued message due now (and releases a held one).
func (c *Core) QueueRetry(ctx context.Context, id int64) error { return c.store.QueueRetry(ctx, id) }

// QueueHold keeps a queued message from being tried until retried.
func (c *Core) QueueHold(ctx context.Context, id int64) error { return c.store.QueueHold(ctx, id) }

// QueueDelete removes a queued message (without a bounce).
func (c *Core) QueueDelete(ctx context.Context, id int64) error { return c.store.QueueDelete(ctx, id) }
