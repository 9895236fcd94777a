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
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx, ch *changes) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM domains WHERE name = ?`, domain).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("domain %s: %w", domain, ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("store: outbound route of %s: %w", domain, err)
		}
		if route == "" {
			_, err = tx.ExecContext(ctx, `DELETE FROM outbound_routes WHERE domain_id = ?`, id)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO outbound_routes(domain_id, route, updated) VALUES (?, ?, ?)
ON CONFLICT(domain_id) DO UPDATE SET route = excluded.route, updated = excluded.updated`, id, route, now())
		}
		if err != nil {
			return fmt.Errorf("store: outbound route of %s: %w", domain, err)
		}
		ch.domains = true
		return nil
	})
}

// OutboundRoute returns the outbound route recorded for a domain, "" when
// none is (the domain's default applies) or the domain is not local.
func (s *Store) OutboundRoute(ctx context.Context, domain string) (string, error) {
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return "", err
	}
	var route string
	err = s.r.QueryRowContext(ctx, `SELECT r.route FROM outbound_routes r JOIN domains d ON d.id = r.domain_id WHERE d.name = ?`, domain).Scan(&route)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("store: outbound route of %s: %w", domain, err)
	}
	return route, nil
}
