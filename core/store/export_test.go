package store

import (
	"testing"
	"time"
)

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

// SkewClock sets s's wall clock d away from the machine's, as a node whose
// clock is wrong has it (clock.go). Call it before s is used.
func SkewClock(s *Store, d time.Duration) {
	s.clk.wall = func() time.Time { return time.Now().Add(d) }
}
