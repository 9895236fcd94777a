package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Outbound routes: how mail from a local domain's users to other domains
// leaves (the relay's Route, as opaque JSON: the store does not read it).
// A route may hold a smarthost's AUTH password: it lives in this database,
// which is private to the owner (see the package doc on file modes), and is
// never logged by the store.

// SetOutboundRoute records the outbound route of a local domain (opaque
// JSON); an empty route removes it, so that the domain's default applies.
// The domain must exist (ErrNotFound).
func (s *Store) SetOutboundRoute(ctx context.Context, domain, route string) error {
	return s.setDomainRecord(ctx, domainRecord{"outbound_routes", "route", "outbound route", true}, domain, route)
}

// OutboundRoute returns the outbound route recorded for a domain, "" when
// none is (the domain's default applies) or the domain is not local.
func (s *Store) OutboundRoute(ctx context.Context, domain string) (string, error) {
	return s.domainRecord(ctx, domainRecord{"outbound_routes", "route", "outbound route", true}, domain)
}

// domainRecord is a table holding one opaque text per domain (the
// outbound route, what was learnt about the old server): its name, its
// text column, what it is called in errors, and whether a change notifies
// the domains' watchers. The names are the store's own, never input.
type domainRecord struct {
	table, column, what string
	notify              bool
}

// setDomainRecord records value for domain in r (an empty value removes
// it). The domain must exist (ErrNotFound).
func (s *Store) setDomainRecord(ctx context.Context, r domainRecord, domain, value string) error {
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx wtx, ch *changes) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM domains WHERE name = ?`, domain).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("domain %s: %w", domain, ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("store: %s of %s: %w", r.what, domain, err)
		}
		if value == "" {
			_, err = tx.ExecContext(ctx, `DELETE FROM `+r.table+` WHERE domain_id = ?`, id)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO `+r.table+`(domain_id, `+r.column+`, updated) VALUES (?, ?, ?)
ON CONFLICT(domain_id) DO UPDATE SET `+r.column+` = excluded.`+r.column+`, updated = excluded.updated`, id, value, now())
		}
		if err != nil {
			return fmt.Errorf("store: %s of %s: %w", r.what, domain, err)
		}
		ch.domains = ch.domains || r.notify
		return nil
	})
}

// domainRecord returns domain's value in r, "" when it has none (or the
// domain is unknown).
func (s *Store) domainRecord(ctx context.Context, r domainRecord, domain string) (string, error) {
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return "", err
	}
	var v string
	err = s.r.QueryRowContext(ctx, `SELECT t.`+r.column+` FROM `+r.table+` t JOIN domains d ON d.id = t.domain_id WHERE d.name = ?`, domain).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("store: %s of %s: %w", r.what, domain, err)
	}
	return v, nil
}
