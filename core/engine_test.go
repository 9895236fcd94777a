package core_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"mailferry/core"
	"mailferry/core/internal/pgtest"
)

// TestStoreEngineInStatus: Status names the store's engine and where its
// metadata is: the SQLite file by default, the PostgreSQL database of
// database_url with its password hidden; a database_url that is not a
// postgres:// URL is a configuration error that does not show it.
func TestStoreEngineInStatus(t *testing.T) {
	ctx := context.Background()
	bad := core.Config{DataDir: t.TempDir(), DatabaseURL: "host=db password=Pw-Secret-4"}
	if err := bad.Defaults().Validate(); !errors.Is(err, core.ErrInvalid) || strings.Contains(err.Error(), "Pw-Secret-4") {
		t.Fatalf("Validate of a key=value database_url: %v", err)
	}
	for _, tc := range []struct {
		engine string
		url    func(t *testing.T) string
	}{
		{core.EngineSQLite, func(*testing.T) string { return "" }},
		{core.EnginePostgres, func(t *testing.T) string { return pgtest.URL(t) }},
	} {
		t.Run(tc.engine, func(t *testing.T) {
			url := tc.url(t)
			co, err := core.Open(core.Config{DataDir: t.TempDir(), DatabaseURL: url})
			if err != nil {
				t.Fatal(err)
			}
			defer co.Close()
			if _, err := co.AddDomain(ctx, "example.test"); err != nil {
				t.Fatal(err)
			}
			st, err := co.Status(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if st.Engine != tc.engine || len(st.Domains) != 1 {
				t.Fatalf("Status: engine %q, %d domains", st.Engine, len(st.Domains))
			}
			if url != "" && (st.Database != core.RedactDatabaseURL(url) || !strings.Contains(st.Database, "xxxxx")) {
				t.Fatalf("Status.Database = %q, want the URL with its password hidden", st.Database)
			}
		})
	}
}
