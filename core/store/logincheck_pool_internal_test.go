package store

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestLoginCountsKeepReadersFree: on PostgreSQL the writes of the shared
// login counts wait for one advisory lock of every node. Logins waiting
// for it (a flood of them, or a node frozen holding it) must not take
// the connections every read of this Store needs: IMAP sessions would
// stop reading mail until the lock came.
func TestLoginCountsKeepReadersFree(t *testing.T) {
	postgresOnly(t, "SQLite writes the counts on its writer connection")
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mail.db")
	a, frozen := openAt(t, path, &Options{Readers: 2}), openAt(t, path, nil)
	if _, err := a.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	// The frozen node holds the counts' lock.
	tx, err := frozen.r.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, pgLockLogins); err != nil {
		t.Fatal(err)
	}
	// Four logins wait for it on a, two readers' worth.
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.ReserveLoginCheck(lctx, []LoginFailureKey{{Key: "src 192.0.2." + string(rune('1'+i)) + "/32", Capacity: 5}}, time.Minute, time.Minute)
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	time.Sleep(500 * time.Millisecond) // they wait for the lock now
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	start := time.Now()
	if _, err := a.Domain(rctx, "example.test"); err != nil {
		t.Fatalf("a read while logins wait for the login counts' lock: %v after %v", err, time.Since(start).Round(time.Millisecond))
	}
}
