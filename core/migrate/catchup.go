package migrate

// Catch-up: accounts whose old-server credentials the engine holds are run
// again periodically (and on every login), so that mail still landing on
// the old server while the domain migrates is pulled.

import (
	"context"
	"errors"
	"time"

	"mailferry/core/store"
)

// catchUpLoop periodically schedules every account the engine can log in
// for, so that mail still landing on the old server is pulled.
func (e *Engine) catchUpLoop() {
	t := time.NewTicker(e.opts.CatchUpInterval)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		// A panic fails this round only (logged with its stack by
		// recovered); the timer goes on, so catch-up never stays dead.
		_ = recovered(e.log, "catch-up", func() error { e.Resume(e.ctx); e.catchUpAll(e.ctx); return nil })
	}
}

// CatchUp schedules a catch-up (or resume) run of every migrated account of
// a migrating domain that the engine has credentials for, and returns how
// many it scheduled. The periodic timer calls it too.
func (e *Engine) CatchUp(ctx context.Context) int { return e.catchUpAll(ctx) }

func (e *Engine) catchUpAll(ctx context.Context) int {
	accts, err := e.st.Accounts(ctx, "")
	if err != nil {
		e.log.Warn("migrate: catch-up: list accounts", "err", err)
		return 0
	}
	n := 0
	for _, a := range accts {
		if a.Migration == "" {
			continue
		}
		if _, ok := e.credsFor(a); !ok {
			continue
		}
		_, domain, err := store.SplitAddress(a.Address)
		if err != nil {
			continue
		}
		if _, err := migratingSettings(ctx, e.st, domain); err != nil {
			if errors.Is(err, ErrNotMigrating) {
				// The domain's migration is over: its passwords are no
				// longer needed.
				e.mu.Lock()
				delete(e.creds, a.ID)
				e.mu.Unlock()
			}
			continue
		}
		if e.schedule(a.ID, a.Address) != nil {
			n++
		}
	}
	return n
}
