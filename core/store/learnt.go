package store

import (
	"context"
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
	return s.setDomainRecord(ctx, oldServerLearnt, domain, learnt)
}

// OldServerLearnt returns what was learnt about a domain's old server, ""
// when nothing was (or the domain is unknown).
func (s *Store) OldServerLearnt(ctx context.Context, domain string) (string, error) {
	return s.domainRecord(ctx, oldServerLearnt, domain)
}

var oldServerLearnt = domainRecord{"old_server_learnt", "learnt", "old server learnt", false}
