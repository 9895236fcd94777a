package migrate_test

import (
	"context"
	"path/filepath"
	"testing"

	"mailferry/core/internal/pgtest"
	"mailferry/core/migrate"
	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// TestFirstLoginOnPostgres: the on-login migration with the store's
// metadata in PostgreSQL: a first login copies every folder of the old
// server, and the full comparison (bytes, flags, INTERNALDATE, UIDs,
// UIDVALIDITY) and Verify find the copy identical, as on SQLite.
func TestFirstLoginOnPostgres(t *testing.T) {
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		srv := oldtest.StartKind(t, kind, nil)
		seedRich(t, srv, "alice")
		addr, pass := srv.Address(t, "alice")
		st, err := store.Open(filepath.Join(t.TempDir(), "mail.db"), &store.Options{Logger: quietLogger(), DatabaseURL: pgtest.URL(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if st.Engine() != store.EnginePostgres {
			t.Fatalf("engine %q", st.Engine())
		}
		ctx := context.Background()
		if err := migrate.SetDomain(ctx, st, oldtest.Domain, settingsFor(t, srv.IMAPAddr), true); err != nil {
			t.Fatal(err)
		}
		e := newEngine(t, st, &migrate.Options{BatchMessages: 3, ChunkMessages: 4})
		if _, err := e.FirstLogin(ctx, addr, pass); err != nil {
			t.Fatal(err)
		}
		if err := e.Wait(ctx, addr); err != nil {
			t.Fatal(err)
		}
		if a, err := st.Account(ctx, addr); err != nil || a.Migration != store.MigDone {
			t.Fatalf("account %+v, %v", a, err)
		}
		if n := compareAll(t, srv, st, "alice"); n != 44 {
			t.Errorf("compared %d messages, want 44", n)
		}
		r, err := e.Verify(ctx, addr, migrate.Credentials{Password: pass})
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK || r.Messages != 44 || r.Present != 44 || r.Missing != 0 || r.Extra != 0 || r.Different != 0 {
			t.Errorf("verify: %+v", r)
		}
	})
}
