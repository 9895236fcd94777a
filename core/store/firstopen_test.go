package store_test

import (
	"sync"
	"testing"

	"mailferry/core/store"
)

// TestFirstOpensAtOnce: stores opened at the same moment on one new
// database file (`serve` and `migrate` started together on a new data
// directory) all open: each schema step is applied once, by whichever
// comes first, and the others see it done. Before, each read the schema
// version before taking the writer, so the second ran step 1 again and
// failed with "table domains already exists".
func TestFirstOpensAtOnce(t *testing.T) {
	if store.EngineUnderTest() != store.EngineSQLite {
		t.Skip("about SQLite's file: a path names one database only there")
	}
	for round := 0; round < 5; round++ {
		path := dbPath(t)
		const n = 4
		var wg sync.WaitGroup
		var start sync.WaitGroup
		start.Add(1)
		errs := make([]error, n)
		stores := make([]*store.Store, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				start.Wait()
				stores[i], errs[i] = store.OpenTest(t, path, nil)
			}(i)
		}
		start.Done()
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: open %d of %d at once: %v", round, i+1, n, err)
			}
		}
		// One store: what one made, the others see.
		if _, err := stores[n-1].CreateDomain(t.Context(), "example.test"); err != nil {
			t.Fatal(err)
		}
		if _, err := stores[0].CreateAccount(t.Context(), "first@example.test", "pw", nil); err != nil {
			t.Fatal(err)
		}
		for i, s := range stores {
			if _, err := s.Account(t.Context(), "first@example.test"); err != nil {
				t.Fatalf("round %d: store %d does not see the account: %v", round, i, err)
			}
			s.Close()
		}
	}
}
