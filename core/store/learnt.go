package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// What the migration engine learnt about a domain's old server (the login
// form that works, a connection cap, capabilities: oldserver.Learnt, as
// opaque JSON the store does not read). It is kept apart from the admin's
// old-server settings (Domain.OldServer), which setting them again does not
// touch. It holds no password.

// SetOldServerLearnt records what was learnt about a domain's old server
// (opaque JSON); an empty learnt removes it. The domain must exist
// (ErrNotFound).
func (s *Store) SetOldServerLearnt(ctx context.Context, domain, learnt string) error {
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
			return fmt.Errorf("store: old server learnt of %s: %w", domain, err)
		}
		if learnt == "" {
			_, err = tx.ExecContext(ctx, `DELETE FROM old_server_learnt WHERE domain_id = ?`, id)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO old_server_learnt(domain_id, learnt, updated) VALUES (?, ?, ?)
ON CONFLICT(domain_id) DO UPDATE SET learnt = excluded.learnt, updated = excluded.updated`, id, learnt, now())
		}
		if err != nil {
			return fmt.Errorf("store: old server learnt of %s: %w", domain, err)
		}
		return nil
	})
}

// OldServerLearnt returns what was learnt about a domain's old server, ""
// when nothing was (or the domain is unknown).
func (s *Store) OldServerLearnt(ctx context.Context, domain string) (string, error) {
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return "", err
	}
	var learnt string
	err = s.r.QueryRowContext(ctx, `SELECT l.learnt FROM old_server_learnt l JOIN domains d ON d.id = l.domain_id WHERE d.name = ?`, domain).Scan(&learnt)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("store: old server learnt of %s: %w", domain, err)
	}
	return learnt, nil
}
