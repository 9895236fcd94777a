package store

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"mailferry/core/internal/pgtest"
	"mailferry/core/internal/s3test"
)

// The store's tests run on every engine: TestMain runs the whole suite
// once per engine in MAILFERRY_STORE_ENGINES (default "sqlite,postgresql";
// PostgreSQL is skipped when it is not installed, unless
// MAILFERRY_REQUIRE_POSTGRES=1). A test opens its store with testOpen
// (OpenTest outside the package), which opens it on the engine of the
// run; a test about SQLite itself calls sqliteOnly.

// testEngine is the engine of the current run; firstEngine the first run's.
var testEngine, firstEngine = EngineSQLite, ""

func TestMain(m *testing.M) {
	engines := os.Getenv("MAILFERRY_STORE_ENGINES")
	if engines == "" {
		engines = EngineSQLite + "," + EnginePostgres
	}
	code := 0
	for _, e := range strings.Split(engines, ",") {
		switch e = strings.TrimSpace(e); e {
		case EngineSQLite:
		case EnginePostgres:
			if err := pgtest.Available(); err != nil {
				if errors.Is(err, pgtest.ErrNotInstalled) && os.Getenv("MAILFERRY_REQUIRE_POSTGRES") != "1" {
					fmt.Printf("--- SKIP: store tests on %s: %v (MAILFERRY_REQUIRE_POSTGRES=1 makes this a failure)\n", e, err)
					continue
				}
				fmt.Printf("--- FAIL: store tests on %s: %v\n", e, err)
				code = 1
				continue
			}
		default:
			fmt.Printf("--- FAIL: MAILFERRY_STORE_ENGINES names %q; engines are %s and %s\n", e, EngineSQLite, EnginePostgres)
			code = 1
			continue
		}
		testEngine = e
		if firstEngine == "" {
			firstEngine = e
		}
		fmt.Printf("=== store tests on %s\n", e)
		if c := m.Run(); c != 0 {
			fmt.Printf("--- FAIL: store tests on %s\n", e)
			code = c
		}
	}
	pgtest.Stop()
	s3test.Stop()
	os.Exit(code)
}

// testDatabases keeps the database of each path opened on PostgreSQL, so
// that opening the path again opens the same database.
var testDatabases sync.Map

// testOpen opens the store at path on the engine of the run: for
// PostgreSQL, a new database for a path not opened before (its packs
// beside path, as always).
func testOpen(t testing.TB, path string, opts *Options) (*Store, error) {
	t.Helper()
	if testEngine != EnginePostgres {
		return Open(path, opts)
	}
	o := Options{}
	if opts != nil {
		o = *opts
	}
	u, ok := testDatabases.Load(path)
	if !ok {
		u = pgtest.URL(t)
		testDatabases.Store(path, u)
		t.Cleanup(func() { testDatabases.Delete(path) })
	}
	o.DatabaseURL = u.(string)
	t.Logf("store on %s", RedactDatabaseURL(o.DatabaseURL))
	return Open(path, &o)
}

// engineFree skips a test that touches no database (hashing, parsing) on
// every run but the first: it would only test the same again.
func engineFree(t testing.TB) {
	t.Helper()
	if testEngine != firstEngine {
		t.Skipf("touches no database; ran on the %s run", firstEngine)
	}
}

// sqliteOnly skips a test about SQLite (its file, its schema steps) on
// the other engines' runs.
func sqliteOnly(t testing.TB) {
	t.Helper()
	if testEngine != EngineSQLite {
		t.Skipf("about SQLite; runs on the %s engine", EngineSQLite)
	}
}

// postgresOnly skips a test about PostgreSQL (its locks, its
// connections) on the other engines' runs, saying why it does not apply.
func postgresOnly(t testing.TB, why string) {
	t.Helper()
	if testEngine != EnginePostgres {
		t.Skip("PostgreSQL only: " + why)
	}
}
