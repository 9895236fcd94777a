// Package backoff is the one rule for waiting between retries: a delay that
// doubles from a base up to a ceiling. The migration engine uses it between
// reconnects to an old server, the relay between delivery attempts of a
// queued message.
package backoff

import (
	"context"
	"time"
)

// Delay returns the wait before retry n (n = 0 for the first retry): base
// doubled n times, never more than ceiling (ceiling when base is above it).
func Delay(base, ceiling time.Duration, n int) time.Duration {
	d := base
	for i := 0; i < n && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}

// Sleep waits for d, or until ctx ends and then returns its error.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
