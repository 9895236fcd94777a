package testkit

import (
	"testing"

	"mailferry/core/internal/pgtest"
	"mailferry/core/internal/s3test"
)

// The distributed engine's real components for tests outside core (the
// command's black-box tests), which cannot import core/internal: a
// PostgreSQL database (core/internal/pgtest) and a SeaweedFS S3 server
// (core/internal/s3test). Both skip the test with the reason when not
// installed, unless MAILFERRY_REQUIRE_POSTGRES=1 / MAILFERRY_REQUIRE_S3=1.

// PostgresURL returns the URL of a new, empty PostgreSQL database, dropped
// when the test ends (pgtest.URL).
func PostgresURL(t testing.TB) string { return pgtest.URL(t) }

// S3 is a running S3-compatible server: its endpoint (host:port, plain
// HTTP), a bucket no other test of the binary uses, and the identity it
// accepts.
type S3 struct {
	Endpoint, Bucket, AccessKey, SecretKey string
}

// StartS3 returns the test binary's SeaweedFS (started on first use) with
// a fresh bucket name (s3test.Shared).
func StartS3(t testing.TB) S3 {
	s := s3test.Shared(t)
	return S3{Endpoint: s.Endpoint, Bucket: s.Bucket(t), AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey}
}

// StopEngines stops the PostgreSQL cluster and the SeaweedFS server a test
// binary started; its TestMain calls it after m.Run.
func StopEngines() {
	pgtest.Stop()
	s3test.Stop()
}
