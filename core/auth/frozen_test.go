package auth_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"mailferry/core/auth"
	"mailferry/core/internal/pgtest"
	"mailferry/core/store"
)

// pgLockLogins is the advisory lock every write of the shared login
// counts takes on PostgreSQL (core/store/logincheck.go, writeCounters).
const pgLockLogins int64 = 0x4d46_0004

// TestLoginFrozenNode: a node frozen (a paused VM, a network cut between
// it and the database) in the middle of a write of the shared login
// counts holds their lock until PostgreSQL notices, which may take hours.
// The other nodes' logins must not hang meanwhile: each is answered
// "try again later" once it waited MaxWait for the store.
func TestLoginFrozenNode(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	st, err := store.Open(filepath.Join(t.TempDir(), "mail.db"), &store.Options{Logger: quiet(), DatabaseURL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateAccount(ctx, "carol@example.test", "Carol-Secret-1", nil); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Options{Store: st, Logger: quiet(), Delay: -1, MaxWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The frozen node: its transaction holds the lock and never ends.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, pgLockLogins); err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	unavailableWithin(t, 20*time.Second, "a login beside a node frozen mid-write of the login counts (MaxWait 1 s)", func() error {
		_, err := a.Login(lctx, req("carol@example.test", "Carol-Secret-1", "198.51.100.7"))
		return err
	})
}
