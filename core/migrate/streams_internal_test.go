package migrate

import (
	"context"
	"testing"
	"time"
)

// Streams go in turn: up to the limit at once, the waiting ones by turn
// with INBOXes before other folders, a job's second stream beside its
// first, the login gate's pass at once, work without a turn and on-login
// copies (jobs no bulk run asked for) never held.
func TestStreamsInTurn(t *testing.T) {
	s := newStreamTurns(2, time.Minute)
	ctx := context.Background()
	job := func(turn uint64) context.Context { return withStreamTurns(withTurn(ctx, turn)) }
	take := func(turn uint64, inbox, pass bool) func() {
		t.Helper()
		end, err := s.take(job(turn), inbox, pass)
		if err != nil {
			t.Fatal(err)
		}
		return end
	}
	end10, end11 := take(10, true, false), take(11, true, false)
	end10b := take(10, false, false) // the same job's other folder: beside its first
	through := make(chan uint64, 8)
	ends := map[uint64]func(){}
	waiter := func(turn uint64, inbox bool) {
		end, err := s.take(job(turn), inbox, false)
		if err == nil {
			ends[turn] = end // read after the turn came through
			through <- turn
		}
	}
	queued := func(n int) {
		t.Helper()
		waitQueued(t, n, "for a stream", func() int {
			s.mu.Lock()
			defer s.mu.Unlock()
			return len(s.queue)
		})
	}
	go waiter(30, false) // another folder of an earlier job than the two INBOXes below
	queued(1)
	go waiter(25, true)
	queued(2)
	go waiter(20, true)
	queued(3)
	nothing := func() {
		t.Helper()
		select {
		case got := <-through:
			t.Fatalf("turn %d streamed beside two others", got)
		case <-time.After(50 * time.Millisecond):
		}
	}
	nothing()
	if end, err := s.take(ctx, true, false); err != nil { // no job's: never held
		t.Fatal(err)
	} else {
		end()
	}
	// An on-login copy's job (no bulk run asked for it): never held.
	if end, err := s.take(withTurn(ctx, 50), true, false); err != nil {
		t.Fatal(err)
	} else {
		end()
	}
	take(40, true, true)() // the login gate's pass: at once
	nothing()
	end10b() // turn 10 streams on
	nothing()
	end11()
	if got := <-through; got != 20 {
		t.Fatalf("turn %d came through, want 20 (the earliest INBOX)", got)
	}
	end10()
	if got := <-through; got != 25 {
		t.Fatalf("turn %d came through, want 25 (an INBOX before turn 30's other folder)", got)
	}
	nothing()
	ends[20]()
	if got := <-through; got != 30 {
		t.Fatalf("turn %d came through, want 30", got)
	}
	ends[25]()
	ends[30]()
	if n := s.streaming(); n != 0 {
		t.Fatalf("%d streaming after every stream ended", n)
	}
}

// No stream waits longer than the bound (a huge mailbox holds its turn as
// long as its stream lasts): it then goes beside the others. A wait whose
// context ends takes no turn.
func TestStreamWaitBounded(t *testing.T) {
	s := newStreamTurns(1, 100*time.Millisecond)
	ctx := withStreamTurns(context.Background())
	end1, err := s.take(withTurn(ctx, 1), true, false)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(withTurn(ctx, 2))
	cancel()
	if _, err := s.take(cctx, true, false); err == nil {
		t.Fatal("a wait whose context ended took a turn")
	}
	t0 := time.Now()
	end3, err := s.take(withTurn(ctx, 3), true, false)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < 100*time.Millisecond {
		t.Fatalf("went after %v beside a stream, want after the bound (100ms)", d)
	}
	if n := s.streaming(); n != 2 {
		t.Fatalf("%d streaming, want 2 (the bound's beside the first)", n)
	}
	end1()
	end3()
	if n := s.streaming(); n != 0 || len(s.queue) != 0 {
		t.Fatalf("%d streaming, %d waiting after every stream ended", n, len(s.queue))
	}
}

// waitQueued waits until count says n wait (what for: in the failure), or
// fails t after 5 s.
func waitQueued(t *testing.T, n int, what string, count func() int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		q := count()
		if q == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiting %s, want %d", q, what, n)
		}
	}
}
