package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"mailferry/core/internal/backoff"
	"mailferry/core/store"
)

// Copies that finish on their own. A job that ends without finishing its
// account is run again by the engine, not left for the user's next login:
//
//   - A failed job (the old server cannot be reached, every attempt of a
//     mailbox made no progress, the disk is full) is run again after
//     Options.ResumeBackoff, doubling per failure in a row up to
//     Options.ResumeBackoffMax, for as long as the engine has credentials
//     for the account. The wait is recorded in the store
//     (store.SetCopyWait: kind, reason, when) so that any process's status
//     shows it.
//   - A job stopped because the old server refused the password, or with
//     no credentials in memory, cannot go on by itself: the wait says the
//     copy resumes at the user's next login.
//   - Resume (which `serve` calls when it starts, and the catch-up timer
//     calls each round) picks up accounts left running, pending or failed
//     by a process that stopped or died: with credentials in memory (a
//     master user) it runs them, else it records that they wait for the
//     user's next login. Old-server passwords are in memory only, so after
//     a restart an on-login copy cannot resume before the user logs in.
//
// CopyStates reads the truth back for the status: an account is running
// only while a live process holds its copy lease.

// States of an account's copy besides the store's, as CopyStates and the
// status report them.
const (
	// StateInterrupted: the store says the copy is running (or pending)
	// but no live process holds its lease: the process was stopped or died.
	StateInterrupted = "interrupted"
	// StateRetrying: the copy failed and a live engine runs it again at
	// CopyState.RetryAt.
	StateRetrying = "retrying"
	// StateDiskFull: the copy stopped because the disk is full; a live
	// engine tries again at CopyState.RetryAt.
	StateDiskFull = "disk-full"
	// StateWaitingLogin: the copy cannot go on without the user's
	// old-server password, which is in memory only: it resumes at the
	// user's next login.
	StateWaitingLogin = "waiting-login"
)

// Reasons recorded with a wait.
const (
	reasonNoPassword  = "the old-server password is kept in memory only and this process does not have it; the copy resumes at the user's next login"
	reasonInterrupted = "the copy stopped before it finished (the process was stopped or died); it resumes when mailferry serve runs and has the password: the user's next login, or the master user's in master_password_files"
)

// afterRun decides what follows a job's run of an account that ended with
// err (nil: it finished).
func (e *Engine) afterRun(id int64, address string, err error) {
	wctx := context.WithoutCancel(e.ctx)
	switch {
	case err == nil:
		e.mu.Lock()
		delete(e.fails, id)
		e.mu.Unlock()
		return
	case errors.Is(err, store.ErrLeased) || errors.Is(err, errLeaseLost):
		e.retryLeased(id, address, err)
		return
	case errors.Is(err, ErrClosed) || errors.Is(err, context.Canceled) || e.ctx.Err() != nil:
		return // stopped: interrupted, resumed by the next serve
	case errors.Is(err, ErrNotMigrating):
		return
	}
	acct, aerr := e.st.AccountByID(wctx, id)
	if aerr != nil || acct.Migration == store.MigDone {
		return // a catch-up: the periodic one tries again
	}
	switch {
	case errors.Is(err, ErrBadPassword) || errors.Is(err, ErrNoCredentials):
		reason := reasonNoPassword
		if errors.Is(err, ErrBadPassword) {
			reason = "the old server refused the password (" + err.Error() + "); the copy resumes at the user's next login with the right password"
		}
		e.setWait(wctx, store.CopyWait{AccountID: id, Kind: store.WaitLogin, Reason: reason})
		return
	}
	e.mu.Lock()
	n := e.fails[id]
	e.fails[id] = n + 1
	e.mu.Unlock()
	delay := backoff.Delay(e.opts.ResumeBackoff, e.opts.ResumeBackoffMax, n)
	kind := store.WaitRetry
	if errors.Is(err, ErrDiskFull) || store.IsDiskFull(err) { // the copy's, or the database's own write (the job's state)
		kind = store.WaitDiskFull
	}
	until := time.Now().Add(delay)
	e.setWait(wctx, store.CopyWait{AccountID: id, Kind: kind, Reason: err.Error(), Until: until, Holder: e.holder})
	e.log.Info("migrate: copy failed; running it again later", "account", address, "at", until.Format(time.TimeOnly), "err", err)
	e.prog.update(id, address, EventState, "", func(a *AccountProgress) {
		a.State = StateRetrying
		if kind == store.WaitDiskFull {
			a.State = StateDiskFull
		}
		a.RetryAt = until
	})
	e.later(id, address, delay)
}

// later schedules the account's job after d, unless the engine closes.
func (e *Engine) later(id int64, address string, d time.Duration) {
	e.goSafe("resume "+address, func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-e.ctx.Done():
		case <-t.C:
			acct, err := e.st.AccountByID(e.ctx, id)
			if err != nil {
				return
			}
			if _, ok := e.credsFor(acct); !ok {
				e.setWait(context.WithoutCancel(e.ctx), store.CopyWait{AccountID: id, Kind: store.WaitLogin, Reason: reasonNoPassword})
				return
			}
			e.schedule(id, address)
		}
	})
}

func (e *Engine) setWait(ctx context.Context, w store.CopyWait) {
	if err := e.st.SetCopyWait(ctx, w); err != nil {
		e.log.Warn("migrate: record why a copy waits", "account_id", w.AccountID, "err", err)
	}
}

// Resume runs again every account of a migrating domain whose copy was left
// unfinished (running, pending or failed) and that no live process copies
// now: at once when the engine has credentials for it (a master user, or
// a password from a login since this process started), else it records that
// the copy waits for the user's next login. It returns how many it
// scheduled. `serve` calls it when it starts; the catch-up timer each round.
func (e *Engine) Resume(ctx context.Context) int {
	n, _ := e.resume(ctx)
	return n
}

// resume is Resume, and says when the first lease that kept an
// unfinished copy from it expires (zero if none did).
func (e *Engine) resume(ctx context.Context) (n int, next time.Time) {
	node := e.opts.Node
	accts, err := e.st.Accounts(ctx, "")
	if err != nil {
		e.log.Warn("migrate: resume: list accounts", "err", err)
		return 0, next
	}
	leases, err := e.st.Leases(ctx)
	if err != nil {
		e.log.Warn("migrate: resume: leases", "err", err)
		return 0, next
	}
	waits, err := e.st.CopyWaits(ctx)
	if err != nil {
		e.log.Warn("migrate: resume: waits", "err", err)
		return 0, next
	}
	for _, a := range accts {
		switch a.Migration {
		case store.MigRunning, store.MigPending, store.MigFailed:
		default:
			continue
		}
		if l, ok := leases[a.ID]; ok && leaseLive(node, l) {
			if l.Holder != e.holder && (next.IsZero() || l.Expires.Before(next)) {
				next = l.Expires
			}
			continue // being copied
		}
		w, waiting := waits[a.ID]
		retry := waiting && (w.Kind == store.WaitRetry || w.Kind == store.WaitDiskFull)
		if retry && w.Holder != e.holder && e.waitLive(w) {
			continue // another live engine runs it again
		}
		e.mu.Lock()
		_, busy := e.jobs[a.ID]
		e.mu.Unlock()
		if busy {
			continue
		}
		if retry && w.Holder == e.holder {
			continue // this engine's own retry is planned
		}
		_, domain, err := store.SplitAddress(a.Address)
		if err != nil {
			continue
		}
		if _, err := migratingSettings(ctx, e.st, domain); err != nil {
			continue
		}
		if _, ok := e.credsFor(a); !ok {
			if w.Kind != store.WaitLogin {
				e.setWait(ctx, store.CopyWait{AccountID: a.ID, Kind: store.WaitLogin, Reason: reasonNoPassword})
			}
			continue
		}
		if e.schedule(a.ID, a.Address) != nil {
			n++
		}
	}
	return n, next
}

// waitLive reports whether the engine that recorded w (a retry, or a wait
// for disk space) may still run it: not when it is of this node and its
// process is gone, nor when it is another node's and a lease's time has
// passed since it was due (that node died: a live one would have run it
// and recorded a new wait).
func (e *Engine) waitLive(w store.CopyWait) bool {
	if !holderAlive(e.opts.Node, w.Holder) {
		return false
	}
	return w.Until.IsZero() || time.Now().Before(w.Until.Add(e.opts.LeaseTTL))
}

// KeepResuming runs Resume now and then every third of Options.LeaseTTL
// until the engine closes (`serve` calls it once it listens), so a copy
// whose node died (its lease not renewed) is taken over within the lease's
// time, not at the next catch-up round: a round comes a third of it after
// the last, or as the first lease that kept a copy from the last round
// expires, whichever is sooner. Resume reads the
// accounts, leases and waits: three queries a round.
func (e *Engine) KeepResuming() {
	round := func() (next time.Time) {
		_ = recovered(e.log, "resume", func() error {
			var n int
			if n, next = e.resume(e.ctx); n > 0 {
				e.log.Info("migration: resuming unfinished copies", "accounts", n)
			}
			return nil
		})
		return next
	}
	next := round()
	e.goSafe("resume timer", func() {
		for {
			t := time.NewTimer(untilLeaseEnds(e.opts.LeaseTTL, next))
			select {
			case <-e.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			next = round()
		}
	})
}

// untilLeaseEnds is how long to wait before trying again for a lease held
// by another engine that expires at expires (zero: unknown): a third of
// the lease's time, or until just after it expires if that is sooner.
func untilLeaseEnds(ttl time.Duration, expires time.Time) time.Duration {
	d := ttl / 3
	if !expires.IsZero() {
		d = min(d, max(time.Until(expires)+20*time.Millisecond, 20*time.Millisecond))
	}
	return d
}

// CopyState is what an account's copy is doing, as any process can tell
// from the store (CopyStates).
type CopyState struct {
	// State is the store's state (store.MigDone, MigFailed, ...), or
	// StateInterrupted, StateRetrying, StateDiskFull or StateWaitingLogin
	// when that is truer; "running" means a live process copies it now.
	State string
	// Reason says why it waits, was interrupted or failed.
	Reason string
	// RetryAt is when a retrying (or disk-full) copy is run again.
	RetryAt time.Time
}

// CopyStates reads, for every account, what its copy is doing: the store's
// migration state corrected by the copy leases (a "running" copy nobody
// holds the lease of was interrupted) and the waits engines recorded.
//
// node is the node asking (Options.Node; "" the host name): a lease or
// wait of this node whose process is gone is known to be dead, another
// node's only once its lease expires.
func CopyStates(ctx context.Context, st *store.Store, node string) (map[int64]CopyState, error) {
	if node == "" {
		node, _ = os.Hostname()
	}
	accts, err := st.Accounts(ctx, "")
	if err != nil {
		return nil, err
	}
	leases, err := st.Leases(ctx)
	if err != nil {
		return nil, err
	}
	waits, err := st.CopyWaits(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]CopyState, len(accts))
	for _, a := range accts {
		cs := CopyState{State: a.Migration, Reason: a.MigrationError}
		l, leased := leases[a.ID]
		w, waiting := waits[a.ID]
		waiting = waiting && w.Kind != store.WaitNone
		switch {
		case a.Migration == "" || a.Migration == store.MigDone:
		case leased && leaseLive(node, l):
			if a.Migration != store.MigDone {
				cs.State, cs.Reason = store.MigRunning, ""
			}
		case waiting && w.Kind == store.WaitLogin:
			cs.State, cs.Reason = StateWaitingLogin, w.Reason
		case waiting && holderAlive(node, w.Holder):
			cs.State, cs.Reason, cs.RetryAt = StateRetrying, w.Reason, w.Until
			if w.Kind == store.WaitDiskFull {
				cs.State = StateDiskFull
			}
		case a.Migration == store.MigRunning || waiting:
			cs.State, cs.Reason = StateInterrupted, reasonInterrupted
			if waiting {
				cs.Reason += "; last error: " + w.Reason
			}
		}
		out[a.ID] = cs
	}
	return out, nil
}

// leaseLive: a lease not expired whose holder is not known to be dead.
func leaseLive(node string, l store.Lease) bool {
	return time.Now().Before(l.Expires) && holderAlive(node, l.Holder)
}

// holderAlive reports whether the engine named holder (newHolder) may
// still run: false only when it is of this node (the engine's
// Options.Node) and of this machine (its process ID means a process
// here: same boot, same PID namespace), and its process is gone. A holder
// that names no machine (written before machines were named) is taken as
// of this machine when its node is this one.
func holderAlive(node, holder string) bool {
	if holder == "" {
		return false
	}
	host, rest, ok := strings.Cut(holder, " pid ")
	if !ok {
		return true
	}
	pidText, rest, _ := strings.Cut(rest, " ")
	pid, err := strconv.Atoi(pidText)
	if err != nil {
		return true
	}
	if host != node {
		return true // another node's: its lease's expiry tells
	}
	if m, ok := strings.CutPrefix(rest, "on "); ok {
		if m, _, _ = strings.Cut(m, " "); m != thisMachine {
			return true // another machine's under this node's name: its expiry tells
		}
	}
	return processAlive(pid)
}

// Retry runs the account's copy again now (a catch-up when it is done:
// the messages recorded as problems are tried again). It needs the user's
// password or a master user in memory (ErrNoCredentials) and a migrating
// domain (ErrNotMigrating); a copy running now runs once more after it.
func (e *Engine) Retry(ctx context.Context, address string) error {
	acct, err := e.st.Account(ctx, address)
	if err != nil {
		return fmt.Errorf("migrate: retry %s: %w", address, err)
	}
	if acct.Migration == "" {
		return fmt.Errorf("migrate: retry %s: %w: a native account", address, ErrNotMigrating)
	}
	_, domain, err := store.SplitAddress(acct.Address)
	if err != nil {
		return err
	}
	if _, err := migratingSettings(ctx, e.st, domain); err != nil {
		return fmt.Errorf("migrate: retry %s: %w", address, err)
	}
	if _, ok := e.credsFor(acct); !ok {
		return fmt.Errorf("migrate: retry %s: %w", address, ErrNoCredentials)
	}
	if e.schedule(acct.ID, acct.Address) == nil {
		return ErrClosed
	}
	return nil
}
