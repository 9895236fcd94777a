package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// TestPostgresKeepalives: every connection of a PostgreSQL Store asks the
// server to probe it after 30 s of silence, so that a node that vanished
// (a paused VM, a network cut) holding the writer lock or the login
// counts' lock releases it within about a minute; the server's default
// waits for the OS's two hours, and every other node's writes and logins
// with it.
func TestPostgresKeepalives(t *testing.T) {
	postgresOnly(t, "keepalives are PostgreSQL's settings")
	s := openAt(t, filepath.Join(t.TempDir(), "mail.db"), nil)
	ctx := context.Background()
	for name, db := range map[string]*sql.DB{"writer": s.w, "readers": s.r, "login counts": s.counts} {
		for _, set := range []struct{ name, want string }{
			{"tcp_keepalives_idle", "30"}, {"tcp_keepalives_interval", "10"}, {"tcp_keepalives_count", "3"},
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
