package pgtest_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"mailferry/core/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// TestURL: two tests' databases are apart, and each answers.
func TestURL(t *testing.T) {
	ctx := context.Background()
	a, b := pgtest.URL(t), pgtest.URL(t)
	if a == b {
		t.Fatalf("one database for two: %s", a)
	}
	for _, u := range []string{a, b} {
		c, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		var v string
		if err := c.QueryRow(ctx, `SHOW server_version`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		t.Logf("PostgreSQL %s", v)
		if _, err := c.Exec(ctx, `CREATE TABLE x (y int)`); err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
	}
}
