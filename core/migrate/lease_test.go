package migrate_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailferry/core/demo"
	"mailferry/core/migrate"
	"mailferry/core/store"
)

// TestSecondCopyRefusedWhileOneRuns runs two engines on two Stores of one
// database, as `mailferry serve` and `mailferry migrate` on one data
// directory, against the in-process demo old server (no root, no Dovecot).
// While the first copies an account, the second's copy of it is refused
// ("being copied by another process") and changes nothing; once the first
// is done, the second runs the account again by itself.
func TestSecondCopyRefusedWhileOneRuns(t *testing.T) {
	ctx := context.Background()
	srv, err := demo.Start(ctx, &demo.Options{Seed: true, DisableTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	addr := srv.SeedAccount()
	cred := migrate.Credentials{Address: addr, Password: demo.DefaultUsers(srv.Domain())[addr]}

	// The first engine's copy stalls on its second old-server connection
	// until release: it holds the lease meanwhile.
	p, release := startHoldProxy(t, srv.IMAPAddr())
	path := filepath.Join(t.TempDir(), "mail.db")
	stA, stB := openStore(t, path), openStore(t, path)
	t.Cleanup(func() { stA.Close(); stB.Close() })
	if err := migrate.SetDomain(ctx, stA, srv.Domain(), settingsFor(t, p.addr()), true); err != nil {
		t.Fatal(err)
	}
	const ttl = 600 * time.Millisecond
	eA := newEngine(t, stA, &migrate.Options{ConnsPerAccount: 2, LeaseTTL: ttl, CatchUpInterval: -1})
	eB := newEngine(t, stB, &migrate.Options{ConnsPerAccount: 2, LeaseTTL: ttl, CatchUpInterval: -1})

	doneA := make(chan error, 1)
	go func() { doneA <- eA.MigrateAccount(ctx, addr, cred) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a, err := stB.Account(ctx, addr)
		if err == nil && a.Migration == store.MigRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first copy did not start: %v, %v", a, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	err = eB.MigrateAccount(ctx, addr, cred)
	if !errors.Is(err, store.ErrLeased) || !strings.Contains(err.Error(), "being copied by another process") {
		t.Fatalf("second copy while the first runs: %v, want refused", err)
	}
	if a, err := stB.Account(ctx, addr); err != nil || a.Migration != store.MigRunning || a.MigrationError != "" {
		t.Fatalf("the refusal changed the account: %+v, %v", a, err)
	}
	select {
	case err := <-doneA:
		t.Fatalf("the first copy ended while held: %v", err)
	default:
	}

	release()
	select {
	case err := <-doneA:
		if err != nil {
			t.Fatalf("first copy: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("first copy did not finish")
	}
	// The second engine runs the account again once the lease is free (a
	// catch-up now, the copy being done).
	deadline = time.Now().Add(10 * time.Second)
	for {
		var st string
		for _, a := range eB.Progress() {
			if a.Address == addr {
				st = a.State
			}
		}
		if st == store.MigDone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second engine did not resume the account: state %q", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := eB.Wait(ctx, addr); err != nil {
		t.Fatalf("second engine's run after the first: %v", err)
	}
}
