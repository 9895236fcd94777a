package auth

import (
	"context"
	"log/slog"
	"time"

	"mailferry/core/store"
)

// Failed logins shared through the store, so that several processes (nodes)
// on one database limit guesses as one server. The per-process buckets
// (limit.go) stay in front: they bound the checks in flight and let an
// office's burst of good logins wait its turn; the store counts the
// failures of every process (store.LoginFailures), one per failed login.

// noteWait bounds the write of one failure.
const noteWait = 10 * time.Second

// sharedReserve takes this login's place among the checks of keys in
// the store before it is checked (store.ReserveLoginCheck), so that
// logins checked at once on several nodes are limited as one: a key's
// failures and checks under way, on every node, together never exceed
// its capacity. A key filled by checks under way is waited for, as the
// per-process buckets wait, until wctx ends; one filled by failures
// refuses at once. It says which bucket refused ("" if none), in the
// words of Login's refusals; when "" and no error, the caller must end
// check, the check's ID in the store (endCheck).
//
// The store is waited for MaxWait at most, then the login is "try again
// later" (an error): a node frozen in the middle of a write of the
// counts (a paused VM, a network cut) holds their lock until the
// database notices, which may take hours, and no login may hang so long.
func (p *Policy) sharedReserve(ctx, wctx context.Context, keys []store.LoginFailureKey) (what string, check int64, err error) {
	whats := []string{"from this source", "from this network", "for this account from this source"}
	pause := 20 * time.Millisecond
	rctx, cancel := context.WithTimeout(ctx, p.opts.MaxWait)
	defer cancel()
	for {
		check, refused, busy, err := p.st.ReserveLoginCheck(rctx, keys, p.opts.Refill, p.checkLease())
		if err != nil || refused < 0 {
			return "", check, err
		}
		if !busy {
			return whats[refused], 0, nil
		}
		// Checks under way elsewhere fill the bucket: their outcome
		// (a success gives its place back) decides.
		select {
		case <-wctx.Done():
			return whats[refused], 0, nil
		case <-time.After(pause):
		}
		pause = min(2*pause, 400*time.Millisecond)
	}
}

// checkLease is how long a check's place counts in the store if its node
// never ends it (it died): as long as a login may take.
func (p *Policy) checkLease() time.Duration {
	return 2*p.opts.MaxWait + p.opts.FirstLoginTimeout
}

// endCheck ends check, a check sharedReserve let in (store.EndLoginCheck):
// its places back, a failure counted against failed, the failures of
// clear forgotten. Like noteFailure it is written even when the client
// has gone (hanging up must not make a guess free); a write that fails is
// logged (the places then count until the lease ends).
func (p *Policy) endCheck(ctx context.Context, log *slog.Logger, check int64, failed []store.LoginFailureKey, clear ...string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), noteWait)
	defer cancel()
	if err := p.st.EndLoginCheck(ctx, check, failed, clear, p.opts.Refill); err != nil {
		log.Warn("login check not ended in the store", "err", err)
	}
}

// noteFailure counts a failed login against keys in the store. It is
// written even when the client has gone (ctx cancelled): hanging up must
// not make a guess free. A write that fails is logged; the login's
// answer stays what it was.
func (p *Policy) noteFailure(ctx context.Context, log *slog.Logger, keys ...store.LoginFailureKey) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), noteWait)
	defer cancel()
	if err := p.st.NoteLoginFailure(ctx, keys, p.opts.Refill); err != nil {
		log.Warn("failed login not counted in the store", "err", err)
	}
}

// clearedElsewhere is for a login this process's bucket of acctKey
// refused: if the store counts fewer failures of the account and source
// than this process does (a success on another node cleared them), the
// bucket is reset and the login takes a token from it (true); otherwise
// the refusal stands (false). It reads the store only when the bucket is
// empty of failures, not of logins being checked.
func (p *Policy) clearedElsewhere(ctx context.Context, acctKey string) bool {
	if ctx.Err() != nil {
		return false
	}
	got, err := p.st.LoginFailures(ctx, []string{acctKey}, p.opts.Refill)
	if err != nil || got[acctKey]+1 > float64(p.opts.PerAccount) {
		return false
	}
	p.lim.reset(acctKey)
	return p.lim.takeWait(ctx, acctKey, p.opts.PerAccount)
}
