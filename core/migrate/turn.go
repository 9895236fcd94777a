package migrate

// Turns: the order in which work asking the old server was scheduled. A
// job takes its turn when it is scheduled (a first login's job as its
// login is answered), and keeps it through its run's context, so that
// whatever it waits for on the way — the first logins being answered
// (loginGate), a place under the old server's cap (connLimit) — it gets
// in that order, not in the order the waiters happened to wake: the
// first user to log in is copied first. One more run of a job (a login's
// kick while it runs) takes a new turn when asked for, behind the work
// scheduled before it: an account kicked again and again never goes
// before other accounts' first copies.

import (
	"context"
	"sync/atomic"
)

// turns hands out turns, one engine-wide sequence for every engine of the
// process (only their order matters).
var turns atomic.Uint64

// nextTurn is a new turn, after every turn taken before.
func nextTurn() uint64 { return turns.Add(1) }

type turnKey struct{}

// withTurn is ctx carrying turn: the work done under it waits in that turn.
func withTurn(ctx context.Context, turn uint64) context.Context {
	return context.WithValue(ctx, turnKey{}, turn)
}

// jobTurn is the turn ctx carries (withTurn), 0 if none: work that is not
// a job's (a password hash) has none.
func jobTurn(ctx context.Context) uint64 {
	t, _ := ctx.Value(turnKey{}).(uint64)
	return t
}

// turnOf is the turn ctx carries, or a new one (after every turn taken
// before) for work that carries none.
func turnOf(ctx context.Context) uint64 {
	if t := jobTurn(ctx); t != 0 {
		return t
	}
	return nextTurn()
}
