// Package testkit is what the tests of several packages share: a DNS zone
// on loopback that answers the records a test sets (Zone), and a
// certificate authority of a test's own that issues server certificates
// (CA), and the distributed engine's real components for the command's
// tests (engines.go). Only tests import it; it serves nothing outside a test.
//
// Invariants:
//   - Everything listens on 127.0.0.1 at a random port and is shut down
//     by the test's Cleanup.
//   - A Zone answers only what the test set: a name it has no records for
//     is NXDOMAIN, a name with records of other types NODATA; a query
//     that is not one question gets an empty answer.
//   - A CA's certificates verify only against its own Pool (never the
//     system's roots), so a test says which certificates are trusted.
package testkit
