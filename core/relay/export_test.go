package relay

import "time"

// SetLeaseForTest shortens r's queue claims' lease (a minute at least
// otherwise), so that a test sees a dead worker's item taken over. Call it
// before Run.
func SetLeaseForTest(r *Relay, d time.Duration) { r.testLease = d }
