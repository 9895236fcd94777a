//go:build mailferry_testhash

package store

import (
	"os"
	"testing"
)

// With the tag mailferry_testhash (make test's race pass of core/...),
// password hashes are argon2id with m=64 KiB, t=1: the race detector
// makes each real one cost seconds, and most tests only need a hash that
// is right or wrong. The tag is refused outside a test binary, so no
// server can be built with it; the real parameters are tested by every
// run without the tag (`go test ./...`, the store's PostgreSQL pass, the
// real binaries of the cmd tests).
func init() {
	if !testing.Testing() {
		panic("store: built with the tag mailferry_testhash, which is for test binaries only")
	}
	argonTime, argonMemory, cheapTestHash = 1, 64, true
	h, err := HashPassword("mailferry-dummy")
	if err != nil {
		panic(err)
	}
	dummyHash = h
}

// FailLogFsyncs makes every later fsync of s's SQLite log fail with err, for
// the tests of other packages (what a client is told, walsync.go). Test
// binaries only (the tag).
func FailLogFsyncs(s *Store, err error) {
	s.wal.syncFile = func(*os.File) error { return err }
}
