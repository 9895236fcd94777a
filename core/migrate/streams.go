package migrate

// Streams in turn: of the accounts a bulk run (`mailferry migrate`,
// MigrateUsers) copies at once (as many as the old server takes
// connections, connlimit.go), only Options.Streams download a mailbox's
// messages at a time, the earliest turns first (turn.go: in the list's
// order); on-login copies do not take stream turns (streamTurnsKey says
// why); the others log in, list their folders, open them and
// count what to fetch meanwhile, and wait before their first FETCH of
// message bodies. Work the old server serves in parallel gets done in
// turn, not shared out evenly: with fifty accounts copied ten at once,
// round robin finished them ten together, in waves (the first ten after
// 1.5 s, all ten within 0.6 s of each other, as every other wave), and
// half of the accounts were done only at 0.63-0.75 of the whole copy; in
// turn each stream has the old server's whole speed and accounts finish
// one after another. The other steps of an account (logins, listings,
// the EXAMINEs of its empty folders, commits) wait on round trips and
// fsyncs, not on the old server's throughput, and still overlap.
//
// INBOXes come first: a stream of another folder waits behind every
// INBOX asking, so that each account's INBOX (what a user who logged in
// looks at) is copied before any account's other folders.
//
// A job's other connections stream beside its first without a turn of
// their own. A job holding the login gate's pass (logingate.go) streams
// without waiting: the ones holding stream turns wait for the logins
// then. No stream waits more than Options.StreamWait (a huge mailbox's
// stream holds its turn as long as it lasts): after that it goes beside
// the others, as before turns.

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// streamTurnsKey marks a bulk run's job (MigrateAccount, MigrateUsers):
// only its downloads take stream turns. On-login copies (serve) download
// at once, as before turns: there turns brought the median account no
// sooner and made the whole copy later (BenchmarkManyUsers, serve: half
// done 2.33 s against 2.31 s, the fifty 3.64 s against 3.23 s, medians of
// 3 in one run; BenchmarkFirstLoginBurst: every copy done 3.82 s against
// 3.33 s), while a bulk run's accounts got done sooner and the whole run
// too (4.1 s against 4.6 s, half done at 0.59 against 0.62).
type streamTurnsKey struct{}

// withStreamTurns is ctx whose job's downloads take stream turns.
func withStreamTurns(ctx context.Context) context.Context {
	return context.WithValue(ctx, streamTurnsKey{}, true)
}

// streamTurns counts the streams running at one old server.
type streamTurns struct {
	mu      sync.Mutex
	max     int            // streams at once; <= 0: no limit
	bound   time.Duration  // longest wait
	running map[uint64]int // streams by job turn
	queue   []streamWait   // waiting, by (not INBOX, turn)
}

// streamWait is a stream waiting for its turn.
type streamWait struct {
	turn  uint64
	other bool          // not an INBOX: after every INBOX
	ch    chan struct{} // closed when its turn came (counted in running)
}

func newStreamTurns(n int, bound time.Duration) *streamTurns {
	return &streamTurns{max: n, bound: bound, running: map[uint64]int{}}
}

// before orders waiters: INBOXes first, then by turn.
func (w streamWait) before(o streamWait) int {
	if w.other != o.other {
		if w.other {
			return 1
		}
		return -1
	}
	return cmp.Compare(w.turn, o.turn)
}

// take waits until ctx's job may stream a mailbox (INBOX or not) and
// returns the func that ends its stream (call it once). pass says the job
// holds the login gate's pass: it streams at once. Work without a job's
// turn, or of a job no bulk run asked for (withStreamTurns), never waits. A wait ends after s.bound at the latest; ctx's end
// ends it with ctx's error.
func (s *streamTurns) take(ctx context.Context, inbox, pass bool) (func(), error) {
	turn := jobTurn(ctx)
	if s == nil || turn == 0 || s.max <= 0 || ctx.Value(streamTurnsKey{}) == nil {
		return func() {}, ctx.Err()
	}
	s.mu.Lock()
	w := streamWait{turn: turn, other: !inbox}
	if s.running[turn] > 0 || pass ||
		(len(s.running) < s.max && (len(s.queue) == 0 || w.before(s.queue[0]) < 0)) {
		s.running[turn]++
		s.mu.Unlock()
		return s.doneFunc(turn), nil
	}
	w.ch = make(chan struct{})
	at, _ := slices.BinarySearchFunc(s.queue, w, func(q, w streamWait) int {
		if c := q.before(w); c != 0 {
			return c
		}
		return -1 // after the waiters of the same rank
	})
	s.queue = slices.Insert(s.queue, at, w)
	s.mu.Unlock()
	t := time.NewTimer(s.bound)
	defer t.Stop()
	select {
	case <-w.ch:
		return s.doneFunc(turn), nil
	case <-t.C:
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.IndexFunc(s.queue, func(q streamWait) bool { return q.ch == w.ch }); i >= 0 {
		s.queue = slices.Delete(s.queue, i, i+1)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.running[turn]++ // waited its longest: beside the others
		return s.doneFunc(turn), nil
	}
	// Its turn came meanwhile: counted in running.
	if ctx.Err() != nil {
		s.endLocked(turn)
		return nil, ctx.Err()
	}
	return s.doneFunc(turn), nil
}

// doneFunc ends one stream of turn, once.
func (s *streamTurns) doneFunc(turn uint64) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.endLocked(turn)
			s.mu.Unlock()
		})
	}
}

// endLocked ends one stream of turn and gives free turns to the first
// waiting. s.mu is held.
func (s *streamTurns) endLocked(turn uint64) {
	if s.running[turn]--; s.running[turn] <= 0 {
		delete(s.running, turn)
	}
	for len(s.queue) > 0 && (len(s.running) < s.max || s.running[s.queue[0].turn] > 0) {
		w := s.queue[0]
		s.queue = slices.Delete(s.queue, 0, 1)
		s.running[w.turn]++
		close(w.ch)
		// The same job's other streams go with it.
		s.queue = slices.DeleteFunc(s.queue, func(q streamWait) bool {
			if q.turn != w.turn {
				return false
			}
			s.running[q.turn]++
			close(q.ch)
			return true
		})
	}
}

// streaming is how many jobs stream now (for tests).
func (s *streamTurns) streaming() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.running)
}
