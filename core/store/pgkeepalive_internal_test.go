package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// TestPostgresKeepalives: every connection of a PostgreSQL Store asks the
// server to probe it after 30 s of silence, so that a node that vanished
// (a paused VM, a network cut) holding the writer lock or the login
// counts' lock releases it within about a minute; the server's default
// waits for the OS's two hours, and every other node's writes and logins
// with it. Nor do keepalives help while the server waits for the
// node to acknowledge what it sent (a node frozen right after a query's
// answer went out: keepalives are sent only on an idle connection, and
// retransmissions give up after about 15 minutes), so the connection
// also asks that unacknowledged data be given up on after a minute
// (tcp_user_timeout, PostgreSQL 12 and later).
func TestPostgresKeepalives(t *testing.T) {
	postgresOnly(t, "keepalives are PostgreSQL's settings")
	s := openAt(t, filepath.Join(t.TempDir(), "mail.db"), nil)
	ctx := context.Background()
	for name, db := range map[string]*sql.DB{"writer": s.w, "readers": s.r, "login counts": s.counts} {
		for _, set := range []struct{ name, want string }{
			{"tcp_keepalives_idle", "30"}, {"tcp_keepalives_interval", "10"}, {"tcp_keepalives_count", "3"},
			{"tcp_user_timeout", "60000"},
		} {
			var got string
			if err := db.QueryRowContext(ctx, `SHOW `+set.name).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != set.want {
				t.Errorf("%s connection: %s = %s, want %s", name, set.name, got, set.want)
			}
		}
	}
}

// TestPostgresStoppedNodeFreesWriter: a node whose process stops inside a
// write transaction (SIGSTOP, a debugger: its kernel still answers the
// keepalive probes) holds the writer lock only until the server's
// idle_in_transaction_session_timeout ends its session; every other
// node's writes then go on, and the stopped node, once running again,
// gets a clear error for that transaction and writes again after it.
func TestPostgresStoppedNodeFreesWriter(t *testing.T) {
	postgresOnly(t, "the bound is PostgreSQL's session setting")
	defer func(d time.Duration) { pgIdleInTx = d }(pgIdleInTx)
	pgIdleInTx = time.Second
	a, b := twoStores(t)
	ctx := context.Background()

	stopped, err := a.Begin(ctx) // takes the writer lock, then "stops"
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := b.write(wctx, func(wtx, *changes) error { return nil }); err != nil {
		t.Fatalf("the other node's write, with the lock held by a stopped node: %v (after %v)", err, time.Since(start))
	}
	if err := stopped.Commit(); err == nil {
		t.Fatal("the stopped node's transaction committed after the server ended its session")
	}
	var err2 error
	for range 3 { // database/sql drops the dead connection, then dials anew
		if err2 = a.write(ctx, func(wtx, *changes) error { return nil }); err2 == nil {
			break
		}
	}
	if err2 != nil {
		t.Fatalf("the node, running again, cannot write: %v", err2)
	}
}

// TestPgMajor: the major version gates tcp_user_timeout (PostgreSQL 12
// and later; an older server would refuse the setting, and with it every
// connection).
func TestPgMajor(t *testing.T) {
	engineFree(t)
	for v, want := range map[string]int{"15.4 (Debian 15.4-1.pgdg120+1)": 15, "9.6.24": 9, "11.22": 11, "12beta1": 12, "17devel": 17, "": 0, "x": 0} {
		if got := pgMajor(v); got != want {
			t.Errorf("pgMajor(%q) = %d, want %d", v, got, want)
		}
	}
}
