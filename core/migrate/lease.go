package migrate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"mailferry/core/internal/renew"
	"mailferry/core/store"
)

// Copy leases: an account is copied by one process at a time. Before it
// copies (or catches up) an account, a job takes the account's lease in the
// store (store.TakeLease), renews it every third of Options.LeaseTTL while
// it copies and releases it after. A job that finds the lease held by
// another process (a `mailferry migrate` beside `serve`, or the reverse)
// fails at once with an error wrapping store.ErrLeased ("being copied by
// another process"), changing nothing, and the engine runs the account
// again every third of LeaseTTL until it gets the lease: the copy resumes
// when the other process's ends (or its lease expires, if it died; at once
// when the holder is a process of this machine that is gone). A bulk run
// (MigrateUsers) that is refused waits and tries again, so a second
// `mailferry migrate` of the same users only catches up after the first.
// A job that loses its lease (it could not renew it in time) stops copying.

// DefaultLeaseTTL is Options.LeaseTTL's default.
const DefaultLeaseTTL = 30 * time.Second

// newHolder names this engine as a lease holder: node, process, the
// machine its process ID belongs to (machine: boot and PID namespace) and
// a random part (two engines of one process are two holders):
// "NODE pid PID on MACHINE #RANDOM", without " on MACHINE" where the
// machine cannot be told. The machine keeps two machines given one node
// name by mistake from taking each other's leases as a dead process's
// (holderAlive).
func newHolder(node string) (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("migrate: lease holder: %w", err)
	}
	on := ""
	if m := thisMachine; m != "" {
		on = " on " + m
	}
	return fmt.Sprintf("%s pid %d%s #%s", node, os.Getpid(), on, hex.EncodeToString(b)), nil
}

// thisMachine is machine(), read once.
var thisMachine = machine()

// errLeaseLost is the cause of a copy's context when its lease was lost.
var errLeaseLost = errors.New("migrate: lost the account's copy lease")

// holdLease takes the account's lease and keeps it renewed until the
// run ends (copyLease.end) or is given up (copyLease.release). Taking it
// also records, in the same commit (store.StartCopy), that the copy waits
// for nothing and, unless state is "" (a catch-up), the account's
// migration state. The copy runs under lctx, which ends when the lease is
// lost (context.Cause wraps errLeaseLost and the renewal's error).
func (e *Engine) holdLease(ctx context.Context, acct *store.Account, state string) (lctx context.Context, l *copyLease, err error) {
	ttl := e.opts.LeaseTTL
	err = e.st.StartCopy(ctx, acct.ID, e.holder, ttl, state)
	if errors.Is(err, store.ErrLeased) {
		// A holder of this machine whose process is gone (kill -9) holds
		// nothing: take its lease now rather than when it expires.
		if leases, lerr := e.st.Leases(ctx); lerr == nil {
			if l, ok := leases[acct.ID]; ok && l.Holder != e.holder && !holderAlive(e.opts.Node, l.Holder) {
				e.log.Info("migrate: taking the copy lease of a dead process", "account", acct.Address, "holder", l.Holder)
				if err = e.st.TakeLeaseFrom(ctx, acct.ID, e.holder, l.Holder, ttl); err == nil {
					err = e.st.StartCopy(ctx, acct.ID, e.holder, ttl, state)
				}
			}
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("migrate: %s: %w", acct.Address, err)
	}
	lctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() { // owned by the copyLease, whose end or release waits for it
		defer close(done)
		_ = recovered(e.log, "lease renewal "+acct.Address, func() error {
			renew.Every(lctx, ttl/3, func() bool {
				err := e.st.TakeLease(lctx, acct.ID, e.holder, ttl)
				if err == nil || lctx.Err() != nil {
					return true
				}
				if store.IsDiskFull(err) {
					// Not lost: the disk is full. The copy ends as a
					// full disk (copyErr), waits for room and resumes.
					e.log.Warn("migrate: the disk is full; stopping the copy", "account", acct.Address, "err", err)
					cancel(fmt.Errorf("%w: renewing the copy lease: %w", ErrDiskFull, err))
					return false
				}
				e.log.Warn("migrate: copy lease lost; stopping the copy", "account", acct.Address, "err", err)
				cancel(fmt.Errorf("%w: %w", errLeaseLost, err))
				return false
			})
			return nil
		})
	}()
	stop := func() {
		cancel(nil)
		<-done
	}
	return lctx, &copyLease{e: e, acct: acct, ctx: context.WithoutCancel(ctx), stop: stop}, nil
}

// copyLease is an account's copy lease held by a run (holdLease).
type copyLease struct {
	e     *Engine
	acct  *store.Account
	ctx   context.Context
	stop  func() // ends the renewal and waits for it
	ended bool
}

// end ends the run: the renewal stops and, in one commit
// (store.EndCopy), the mailboxes of done are marked copied, the account's
// migration state is set (unless state is "") and the lease given back; should that commit fail, the lease is
// still given back on its own. A later release does nothing.
func (l *copyLease) end(state, errText string, done ...store.MailboxDone) error {
	if l.ended {
		return nil
	}
	l.ended = true
	l.stop()
	err := l.e.st.EndCopy(l.ctx, l.acct.ID, l.e.holder, state, errText, done...)
	if err != nil {
		if rerr := l.e.st.ReleaseLease(l.ctx, l.acct.ID, l.e.holder); rerr != nil {
			l.e.log.Warn("migrate: release copy lease", "account", l.acct.Address, "err", rerr)
		}
	}
	return err
}

// release gives the lease back (the run stopped or failed before end),
// unless end did.
func (l *copyLease) release() {
	if l.ended {
		return
	}
	l.ended = true
	l.stop()
	if err := l.e.st.ReleaseLease(l.ctx, l.acct.ID, l.e.holder); err != nil {
		l.e.log.Warn("migrate: release copy lease", "account", l.acct.Address, "err", err)
	}
}

// copyErr is err of a copy that ran under lctx, or why lctx ended when
// the lease renewal found the disk full (the copy itself then sees only a
// canceled context).
func copyErr(lctx context.Context, err error) error {
	if cause := context.Cause(lctx); errors.Is(cause, ErrDiskFull) {
		return cause
	}
	return err
}

// leaseLost returns why lctx ended if its lease was lost, else nil.
func leaseLost(lctx context.Context) error {
	if cause := context.Cause(lctx); errors.Is(cause, errLeaseLost) {
		return cause
	}
	return nil
}

// retryLeased runs the account of a job refused for its lease again after a
// third of LeaseTTL, until the engine closes. (A copy whose node died is
// taken over as its lease ends by KeepResuming, which also runs copies
// this engine has a login's password for.)
func (e *Engine) retryLeased(id int64, address string, err error) {
	if !errors.Is(err, store.ErrLeased) && !errors.Is(err, errLeaseLost) {
		return
	}
	e.log.Info("migrate: account being copied by another process; trying again later", "account", address, "in", e.opts.LeaseTTL/3)
	e.goSafe("lease retry "+address, func() {
		t := time.NewTimer(e.opts.LeaseTTL / 3)
		defer t.Stop()
		select {
		case <-e.ctx.Done():
		case <-t.C:
			e.schedule(id, address)
		}
	})
}
