package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// MTA-STS policies (RFC 8461) of the domains mail is delivered to, kept
// with their id and expiry so that a restart does not forget a policy an
// attacker could then strip (RFC 8461 section 5.1: a sender caches a policy
// until its max_age runs out). The store keeps the policy file's text as
// fetched (at most MaxMTASTSPolicy bytes) and does not read it.

// MaxMTASTSPolicy bounds a kept policy (RFC 8461 section 3.3 suggests 64 KiB).
const MaxMTASTSPolicy = 64 << 10

// MTASTSPolicy is a recipient domain's kept policy.
type MTASTSPolicy struct {
	ID      string
	Policy  string
	Expires time.Time
}

// SetMTASTSPolicy keeps domain's policy (replacing the one kept).
func (s *Store) SetMTASTSPolicy(ctx context.Context, domain string, p MTASTSPolicy) error {
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return err
	}
	if len(p.Policy) > MaxMTASTSPolicy || len(p.ID) > 32 {
		return fmt.Errorf("%w: MTA-STS policy of %s too long", ErrInvalid, domain)
	}
	return s.write(ctx, func(tx wtx, _ *changes) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO mtasts_policies(domain, id, policy, expires) VALUES (?, ?, ?, ?)
ON CONFLICT(domain) DO UPDATE SET id = excluded.id, policy = excluded.policy, expires = excluded.expires`,
			domain, p.ID, p.Policy, p.Expires.Unix())
		if err != nil {
			return fmt.Errorf("store: MTA-STS policy of %s: %w", domain, err)
		}
		return nil
	})
}

// DeleteMTASTSPolicy forgets domain's policy (it published mode none).
func (s *Store) DeleteMTASTSPolicy(ctx context.Context, domain string) error {
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx wtx, _ *changes) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM mtasts_policies WHERE domain = ?`, domain); err != nil {
			return fmt.Errorf("store: MTA-STS policy of %s: %w", domain, err)
		}
		return nil
	})
}

// MTASTSPolicyOf returns domain's kept policy, nil when none is kept or it
// expired.
func (s *Store) MTASTSPolicyOf(ctx context.Context, domain string) (*MTASTSPolicy, error) {
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	var p MTASTSPolicy
	var exp int64
	err = s.r.QueryRowContext(ctx, `SELECT id, policy, expires FROM mtasts_policies WHERE domain = ?`, domain).Scan(&p.ID, &p.Policy, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("store: MTA-STS policy of %s: %w", domain, err)
	}
	p.Expires = time.Unix(exp, 0)
	if !time.Now().Before(p.Expires) {
		return nil, nil
	}
	return &p, nil
}
