package store

import (
	"context"
	"sync"
	"testing"
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
	s, _, _ := inboxStore(t, nil, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	begin := func(ctx context.Context) func() {
		return func() {
			tx, err := s.beginRead(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tx.Rollback()
		}
	}
	// AllocsPerRun counts the whole process's allocations, the store's
	// background goroutines' too: they only add, so the best of a few
	// tries is the one that counts (without the change a context that can
	// end cost 3 allocations more in every try).
	var plain, cancellable float64
	for try := 0; try < 5; try++ {
		plain = testing.AllocsPerRun(200, begin(context.Background()))
		cancellable = testing.AllocsPerRun(200, begin(ctx))
		if cancellable <= plain {
			return
		}
	}
	if cancellable > plain {
		t.Fatalf("a read transaction with a context that can end: %.0f allocations, %.0f without; want no more (no goroutines to watch it)", cancellable, plain)
	}
}
