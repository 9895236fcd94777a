package relay

import (
	"errors"
	"log/slog"
	"sync"

	"mailferry/core/store"
)

// seenUsers remembers which recipients of migrating domains this process
// has recorded as known users (Store.NoteKnownUser): an address the old
// server accepted — at a callout, or taking a queued message — is a user
// of the old server, whom the readiness check must count even when the
// admin's list forgot them. The memory only saves writes: it is cleared
// when it grows past maxSeen, and a record written twice is harmless.
type seenUsers struct {
	mu sync.Mutex
	m  map[string]struct{}
}

const maxSeen = 100000

// note runs record once per domain and address (in this process's
// memory); a failure is logged and forgotten, never the session's.
func (s *seenUsers) note(record func() error, domain, addr string, log *slog.Logger) {
	key := domain + "\x00" + addr
	s.mu.Lock()
	if _, ok := s.m[key]; ok {
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	if err := record(); err != nil {
		if !errors.Is(err, store.ErrInvalid) && !errors.Is(err, errAcceptsAnyone) {
			log.Warn("record a known user", "rcpt", addr, "err", err)
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil || len(s.m) >= maxSeen {
		s.m = map[string]struct{}{}
	}
	s.m[key] = struct{}{}
}
