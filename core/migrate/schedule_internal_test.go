package migrate

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"mailferry/core/oldserver"
	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// A first login starts the account's copy and, as every login, kicks the
// engine (LoggedIn): the copy runs once, not once more as a catch-up right
// after it, which held the account's slot while other accounts' first
// copies waited. Both ways a login's kick meets the job: while it waits for
// a slot (no debounce), and once its run began (within the debounce).
func TestFirstLoginCopiesOnce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		debounce time.Duration
		began    time.Duration // how long before the login's kick the run began; 0: not yet (waiting for a slot)
		again    bool          // whether the kick asks for one more run
	}{
		{"waiting for a slot", -1, 0, false},
		{"waiting for a slot, debounced", time.Minute, 0, false},
		{"run begun within the debounce", time.Minute, time.Second, false},
		{"run begun before the debounce", time.Minute, 2 * time.Minute, true},
		{"run begun, no debounce", -1, time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := oldtest.StartKind(t, oldtest.InProcess, nil)
			addr, pass := srv.Address(t, "carol")
			for i := range 5 {
				srv.Append(t, "carol", "INBOX", nil, time.Now(), []byte("Subject: "+strconv.Itoa(i)+"\r\n\r\nbody\r\n"))
			}
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			st, err := store.Open(filepath.Join(t.TempDir(), "m.db"), &store.Options{Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			host, port, _ := net.SplitHostPort(srv.IMAPAddr)
			p, _ := strconv.Atoi(port)
			s := &oldserver.Settings{Host: oldserver.MustParseHost(host), IMAPPort: p, IMAPTLS: oldserver.TLSNone,
				SMTPPort: 25, SMTPTLS: oldserver.TLSNone, LoginForm: oldserver.LoginFull}
			ctx := context.Background()
			if err := SetDomain(ctx, st, oldtest.Domain, s, true); err != nil {
				t.Fatal(err)
			}
			e, err := New(Options{Store: st, Logger: quiet, Accounts: 1, CatchUpInterval: -1, CatchUpDebounce: tc.debounce})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			events, stop := e.Subscribe()
			defer stop()
			e.sem <- struct{}{} // the one slot is taken: the job waits
			acct, err := e.FirstLogin(ctx, addr, pass)
			if err != nil {
				t.Fatal(err)
			}
			e.mu.Lock()
			j := e.jobs[acct.ID]
			if j == nil {
				e.mu.Unlock()
				t.Fatal("no job after a first login")
			}
			if tc.began > 0 {
				j.began = time.Now().Add(-tc.began) // as if its run had begun then
			}
			first := j.turn
			e.mu.Unlock()
			other := nextTurn() // another account's job, scheduled before the kick
			e.LoggedIn(acct, pass)
			e.LoggedIn(acct, pass) // a second kick asks for the same run
			e.mu.Lock()
			again, turn := j.again, j.turn
			e.mu.Unlock()
			if again != tc.again {
				t.Errorf("the login's kick asks for one more run: %v, want %v", again, tc.again)
			}
			// One more run waits behind what was scheduled before the kick
			// (else an account kicked again and again goes before other
			// accounts' first copies for ever); no more run, no new turn.
			if tc.again && turn <= other {
				t.Errorf("the run the kick asked for has turn %d, before turn %d scheduled earlier", turn, other)
			} else if !tc.again && turn != first {
				t.Errorf("a kick that asks for no run moved the job's turn %d to %d", first, turn)
			}
			<-e.sem
			if err := e.Wait(ctx, addr); err != nil {
				t.Fatal(err)
			}
			runs := 0
			for {
				select {
				case ev := <-events:
					if ev.Kind == EventState && (ev.Account.State == store.MigRunning || ev.Account.State == StateCatchUp) {
						runs++
					}
					continue
				default:
				}
				break
			}
			if tc.began == 0 && runs != 1 {
				t.Errorf("the account's job ran %d times, want once", runs)
			}
			if got, _ := st.Account(ctx, addr); got == nil || got.Migration != store.MigDone {
				t.Errorf("account after the copy: %+v", got)
			}
		})
	}
}

// Before an account's first copy, its hash's memory goes back to the OS
// only when the copy is the engine's only work: with other accounts' jobs
// or hashes about, every next argon2id hash would fault its 19 MiB in
// afresh (about 40% of a 50-account migrate's CPU).
func TestAfterHashKeepsMemoryForOthers(t *testing.T) {
	defer func(f func()) { freeOSMemory = f }(freeOSMemory)
	freed := 0
	freeOSMemory = func() { freed++ }
	for _, tc := range []struct {
		name    string
		jobs    []int64
		pending []int64
		free    bool
	}{
		{"alone", []int64{1}, nil, true},
		{"alone, its own hash pending", []int64{1}, []int64{1}, true},
		{"another account's job", []int64{1, 2}, nil, false},
		{"another account's hash", []int64{1}, []int64{2}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &Engine{jobs: map[int64]*job{}, pending: map[int64]pendingHash{}}
			for _, id := range tc.jobs {
				e.jobs[id] = &job{id: id}
			}
			for _, id := range tc.pending {
				e.pending[id] = pendingHash{}
			}
			freed = 0
			e.afterHash(1)
			if got := freed == 1; got != tc.free {
				t.Errorf("memory given back to the OS: %v, want %v", got, tc.free)
			}
		})
	}
}

// A hash stored in the background (hashLater) gives its memory back to
// the OS as soon as it is stored, when nothing else is about: a
// one-account migrate otherwise held argon2id's 19 MiB beside the copy's
// own memory until the scavenger got to it (peak RSS 66 MB against 46 MB
// at 241 MB, BenchmarkMigrateProcess). With another hash pending, the
// memory is kept for it.
func TestHashLaterGivesMemoryBack(t *testing.T) {
	defer func(f func()) { freeOSMemory = f }(freeOSMemory)
	var freed atomic.Int32
	freeOSMemory = func() { freed.Add(1) }
	st, e := quietEngine(t)
	for i, others := range []bool{false, true} {
		freed.Store(0)
		hashInBackground(t, st, e, i, others)
		// freeOSMemory runs just after stored is closed.
		deadline := time.Now().Add(5 * time.Second)
		for !others && freed.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		if got := freed.Load() == 1; got == others {
			t.Errorf("others pending %v: memory given back to the OS %d times", others, freed.Load())
		}
	}
}

// A background hash with another account's hash after it collects before
// it gives its place up, so that the next hash's allocation takes its 19
// MiB as free, resident heap rather than pages given back to the OS
// (faulted in afresh: memclr alone was 17% of a 50-account migrate's
// CPU). Alone, it collects nothing (the memory goes back to the OS).
func TestHashLaterCollectsForTheNext(t *testing.T) {
	defer func(f func()) { collectHash = f }(collectHash)
	var collected atomic.Int32
	collectHash = func() { collected.Add(1) }
	st, e := quietEngine(t)
	ctx := context.Background()
	for i, others := range []bool{false, true} {
		collected.Store(0)
		addr := hashInBackground(t, st, e, i, others) // stored closes after the collection
		if got := collected.Load(); (got == 1) != others {
			t.Errorf("another hash pending %v: collected %d times", others, got)
		}
		// The hash stored verifies (argon2id, x/crypto's).
		if _, err := st.Authenticate(ctx, addr, "Old-Pass-1"); err != nil {
			t.Errorf("the stored hash does not verify: %v", err)
		}
		if _, err := st.Authenticate(ctx, addr, "Old-Pass-2"); err == nil {
			t.Error("the stored hash takes a wrong password")
		}
	}
}

// hashInBackground makes account i (u<i>@example.test, password
// Old-Pass-1) with its hash left to hashLater, with another account's hash
// pending beside it if others, and returns its address once hashLater
// stored the hash.
func hashInBackground(t *testing.T, st *store.Store, e *Engine, i int, others bool) string {
	t.Helper()
	addr := fmt.Sprintf("u%d@example.test", i)
	a, err := st.CreateAccount(context.Background(), addr, "Old-Pass-1", &store.AccountOptions{Migration: store.MigPending,
		OldLogin: addr, PasswordOrigin: store.PasswordOld, HashLater: true})
	if err != nil {
		t.Fatal(err)
	}
	if others {
		e.mu.Lock()
		e.pending[a.ID+100] = pendingHash{address: "other@example.test", stored: make(chan struct{})}
		e.mu.Unlock()
	}
	e.hashLater(a, "Old-Pass-1", newLoginGate(0))
	e.mu.Lock()
	stored := e.pending[a.ID].stored
	e.mu.Unlock()
	if stored != nil { // nil: stored already, and gone from pending
		<-stored
	}
	return addr
}
