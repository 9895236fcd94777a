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

// sharedLimited reads the failures counted in the store against keys and
// says which bucket they have spent ("" if none), in the words of
// Login's refusals, and whether the last key (the account's, when given)
// had failures to clear on success.
func (p *Policy) sharedLimited(ctx context.Context, keys []store.LoginFailureKey) (acctFailed bool, what string, err error) {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.Key
	}
	got, err := p.st.LoginFailures(ctx, names, p.opts.Refill)
	if err != nil {
		return false, "", err
	}
	whats := []string{"from this source", "from this network", "for this account from this source"}
	for i, k := range keys {
		// As a bucket: a login needs one whole attempt left.
		if got[k.Key]+1 > float64(k.Capacity) {
			return false, whats[i], nil
		}
	}
	return len(keys) == 3 && got[keys[2].Key] > 0, "", nil
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
