package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// TestPostgresCommitsDurable: a PostgreSQL Store's commits are durable
// before they return, whatever the server's, database's or role's
// synchronous_commit (a tuned or managed server may default to off, where a
// commit returns, and is seen, up to 3 × wal_writer_delay before its WAL
// is flushed). Mailferry answers an APPEND OK and an SMTP DATA 250 once
// committed, and takes a UID or MODSEQ other sessions saw as given for
// good (marks.go covers SQLite only): with off, a server crash lost mail
// the sender was told delivered, and gave those numbers again. Before,
// every connection took the server's setting as it was.
func TestPostgresCommitsDurable(t *testing.T) {
	postgresOnly(t, "synchronous_commit is PostgreSQL's")
	path := filepath.Join(t.TempDir(), "mail.db")
	first := openAt(t, path, nil)
	ctx := context.Background()
	var db string
	if err := first.w.QueryRowContext(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	if _, err := first.w.ExecContext(ctx, `ALTER DATABASE "`+db+`" SET synchronous_commit = off`); err != nil {
		t.Fatal(err)
	}
	s := openAt(t, path, nil)
	for name, conns := range map[string]*sql.DB{"writer": s.w, "readers": s.r, "login counts": s.counts} {
		var got string
		if err := conns.QueryRowContext(ctx, `SHOW synchronous_commit`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got == "off" {
			t.Errorf("%s connection: synchronous_commit = off (the database's default): commits answered before they are durable", name)
		}
	}
	// A stronger setting of the admin's stands.
	if _, err := first.w.ExecContext(ctx, `ALTER DATABASE "`+db+`" SET synchronous_commit = remote_apply`); err != nil {
		t.Fatal(err)
	}
	s2 := openAt(t, path, nil)
	var got string
	if err := s2.w.QueryRowContext(ctx, `SHOW synchronous_commit`).Scan(&got); err != nil || got != "remote_apply" {
		t.Errorf("writer connection: synchronous_commit = %q (%v), want the database's remote_apply kept", got, err)
	}
}
