package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestReadersStayOpen: reads at once, as many as Options.Readers, leave
// their connections open for the next reads; none is closed and opened
// again (database/sql keeps only 2 idle ones unless told).
func TestReadersStayOpen(t *testing.T) {
	sqliteOnly(t)
	s, mb, _ := inboxStore(t, &Options{ChangePoll: -1, Readers: 6}, 3)
	ctx := context.Background()
	for round := 0; round < 3; round++ {
		// Six reads holding their connections at once.
		var wg sync.WaitGroup
		start := make(chan struct{})
		var held sync.WaitGroup
		held.Add(6)
		for i := 0; i < 6; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tx, err := s.r.BeginTx(ctx, nil)
				if err != nil {
					t.Error(err)
					held.Done()
					return
				}
				defer tx.Rollback()
				var n int
				if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE mailbox_id = ?`, mb.ID).Scan(&n); err != nil {
					t.Error(err)
				}
				held.Done()
				<-start
			}()
		}
		held.Wait()
		close(start)
		wg.Wait()
	}
	st := s.r.Stats()
	if st.MaxIdleClosed != 0 || st.OpenConnections != 6 {
		t.Fatalf("reader pool after reads at once: %d connections closed for want of an idle place, %d open; want 0 closed, 6 open", st.MaxIdleClosed, st.OpenConnections)
	}
}

// TestReadBeginsInPlace: a read transaction on SQLite begins on the
// caller's goroutine whatever its context: a context that can end costs
// no goroutine of database/sql's to watch it nor one of the driver's to
// run BEGIN (measured as allocations, equal to those of a context that
// cannot end).
func TestReadBeginsInPlace(t *testing.T) {
	sqliteOnly(t)
	skipAllocsUnderRace(t)
	noCheckpoints(t) // a goroutine of the store's that allocates after commits
	s, _, _ := inboxStore(t, nil, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	begin := func(ctx context.Context) func() {
		return func() {
			tx, err := s.beginRead(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tx.end()
		}
	}
	// Without the change a context that can end cost 3 allocations more
	// in every try.
	if plain, cancellable := fewestAllocs(200, begin(context.Background()), begin(ctx)); cancellable > plain {
		t.Fatalf("a read transaction with a context that can end: %.0f allocations, %.0f without; want no more (no goroutines to watch it)", cancellable, plain)
	}
}

// TestReadStatementsInPlace: the reads of every IMAP FETCH (EachMessage,
// EachMessageLocated) and of every poll (Delta) run their statements on
// the caller's goroutine whatever its context, as beginRead does its
// BEGIN: a context that can end costs no goroutine of database/sql's per
// statement to watch it (measured as allocations, equal to those of a
// context that cannot end). A context that ended still stops them.
func TestReadStatementsInPlace(t *testing.T) {
	sqliteOnly(t)
	skipAllocsUnderRace(t)
	noCheckpoints(t) // a goroutine of the store's that allocates after commits
	s, mb, uids := inboxStore(t, nil, 12)
	bg := context.Background()
	// A change after modseq 1, so that Delta runs all its statements.
	if _, err := s.StoreFlags(bg, mb.ID, uids[3:4], FlagsAdd, []string{"$K"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	each := func(m *Message) error { return nil }
	reads := map[string]func(context.Context) error{
		"EachMessage": func(ctx context.Context) error {
			return s.EachMessage(ctx, mb.ID, uids[0], uids[9], true, each)
		},
		"EachMessageLocated": func(ctx context.Context) error {
			return s.EachMessageLocated(ctx, mb.ID, uids[0], uids[9], true, each)
		},
		"Delta": func(ctx context.Context) error {
			d, err := s.Delta(ctx, mb.ID, 1)
			if err == nil && len(d.Changed) == 0 {
				t.Fatal("Delta since modseq 1 found no change")
			}
			return err
		},
	}
	for name, read := range reads {
		run := func(ctx context.Context) func() {
			return func() {
				if err := read(ctx); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
		}
		if plain, cancellable := fewestAllocs(100, run(bg), run(ctx)); cancellable > plain {
			t.Errorf("%s with a context that can end: %.0f allocations, %.0f without; want no more (no goroutine per statement to watch it)", name, cancellable, plain)
		}
		done, stop := context.WithCancel(bg)
		stop()
		if err := read(done); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with an ended context: %v, want context.Canceled", name, err)
		}
	}
}

// fewestAllocs is the allocations per run of plain and of cancellable,
// each the fewest of up to ten tries, 20 ms apart (it stops once cancellable's is no
// more than plain's). AllocsPerRun counts the whole process's allocations,
// the store's background goroutines' and the runtime's too: they only
// add, so the fewest is the one that counts (a CI run under -race beside
// the whole tree counted one more in each of five tries taken in pairs).
func fewestAllocs(runs int, plain, cancellable func()) (p, c float64) {
	p, c = testing.AllocsPerRun(runs, plain), testing.AllocsPerRun(runs, cancellable)
	for try := 1; try < 10 && c > p; try++ {
		time.Sleep(20 * time.Millisecond) // for a burst of another goroutine's to end
		c = min(c, testing.AllocsPerRun(runs, cancellable))
		p = min(p, testing.AllocsPerRun(runs, plain))
	}
	return p, c
}

// skipAllocsUnderRace skips a test of allocation counts under the race
// detector, as Go's own tests do: in make test's -race pass beside the
// whole tree these tests counted 3 allocations more per Delta with a
// context that can end in each of five tries (twice in a row, never
// alone). make test runs them again without it (its last line), as does
// go test ./....
func skipAllocsUnderRace(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not reliable under the race detector")
	}
}
