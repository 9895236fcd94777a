package migrate_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strconv"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the test's own connection to the store's database

	"mailferry/core/internal/pgtest"
	"mailferry/core/migrate"
	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// injectConflicts makes PostgreSQL roll back the first n statements
// inserting messages into the database at url with a serialization failure
// (SQLSTATE 40001), as a real conflict between two nodes' transactions
// would; it returns how many such statements have run so far. The count
// is a sequence: not rolled back with the transaction that failed.
func injectConflicts(t *testing.T, url string, n int) (ran func() int64) {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, q := range []string{
		`CREATE SEQUENCE test_message_inserts`,
		`CREATE FUNCTION test_conflict() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF nextval('test_message_inserts') <= ` + strconv.Itoa(n) + ` THEN
		RAISE EXCEPTION 'injected by the test: could not serialize access' USING ERRCODE = '40001';
	END IF;
	RETURN NULL;
END $$`,
		`CREATE TRIGGER test_conflict BEFORE INSERT ON messages FOR EACH STATEMENT EXECUTE FUNCTION test_conflict()`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return func() int64 {
		var v int64
		if err := db.QueryRow(`SELECT last_value FROM test_message_inserts`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// TestCommitConflictRerunInPlace: a batch's transaction that PostgreSQL
// rolls back as a conflict (store.ErrConflict) is run again in place: the
// copy neither reconnects to the old server nor fetches the batch again
// (no retry is reported, as many connections as a copy without conflicts),
// and every message is stored exactly once.
func TestCommitConflictRerunInPlace(t *testing.T) {
	srv := oldtest.StartKind(t, oldtest.InProcess, nil)
	seedRich(t, srv, "alice")
	baseline := conflictedCopy(t, srv, 0)
	if got := conflictedCopy(t, srv, 3); got != baseline {
		t.Errorf("%d connections to the old server, %d without conflicts: a conflict made the copy reconnect", got, baseline)
	}
}

// conflictedCopy copies alice into a new PostgreSQL store whose first
// conflicts message inserts conflict, checks the copy, and says how many
// connections it made to the old server.
func conflictedCopy(t *testing.T, srv *oldtest.Server, conflicts int) int32 {
	t.Helper()
	addr, pass := srv.Address(t, "alice")
	px := startFaultProxy(t, srv.IMAPAddr, "", 0, 0) // counts connections
	url := pgtest.URL(t)
	st, err := store.Open(filepath.Join(t.TempDir(), "mail.db"), &store.Options{Logger: quietLogger(), DatabaseURL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if err := migrate.SetDomain(ctx, st, oldtest.Domain, settingsFor(t, px.addr()), true); err != nil {
		t.Fatal(err)
	}
	ran := injectConflicts(t, url, conflicts)
	e := newEngine(t, st, &migrate.Options{BatchMessages: 5, ChunkMessages: 100, ConnsPerAccount: 1})
	defer e.Close()
	events, stop := e.Subscribe()
	defer stop()
	if _, err := e.FirstLogin(ctx, addr, pass); err != nil {
		t.Fatal(err)
	}
	if err := e.Wait(ctx, addr); err != nil {
		t.Fatal(err)
	}
	if n := ran(); n <= int64(conflicts) {
		t.Fatalf("%d message inserts ran, want the %d conflicts and more", n, conflicts)
	}
	for done := false; !done; {
		select {
		case ev := <-events:
			if ev.Kind == migrate.EventError {
				t.Errorf("%d conflicts: the copy reported a retry: %+v", conflicts, ev)
			}
		default:
			done = true
		}
	}
	conns := px.conns.Load()
	if n := compareAll(t, srv, st, "alice"); n != 44 {
		t.Errorf("%d conflicts: compared %d messages, want 44", conflicts, n)
	}
	r, err := e.Verify(ctx, addr, migrate.Credentials{Password: pass})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK || r.Messages != 44 || r.Extra != 0 || r.Missing != 0 {
		t.Errorf("%d conflicts: verify: %+v", conflicts, r)
	}
	return conns
}
