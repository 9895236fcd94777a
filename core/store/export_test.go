package store

import "testing"

// OpenTest is testOpen for the external tests: Open on the engine of the
// run (see engine_internal_test.go).
func OpenTest(t testing.TB, path string, opts *Options) (*Store, error) {
	t.Helper()
	return testOpen(t, path, opts)
}

// SQLiteOnly is sqliteOnly for the external tests.
func SQLiteOnly(t testing.TB) { t.Helper(); sqliteOnly(t) }

// EngineUnderTest names the engine of the run.
func EngineUnderTest() string { return testEngine }

// EngineFree is engineFree for the external tests.
func EngineFree(t testing.TB) { t.Helper(); engineFree(t) }
