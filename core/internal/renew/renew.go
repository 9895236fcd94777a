// Package renew is the loop of a lease's renewal, which Mailferry's leases
// share: a migration's copy lease (core/migrate), a queue item's delivery
// claim (core/relay), a POP3 maildrop lock (core/pop3front), each renewed
// every third of its time to live while its holder works; the store's
// poll of other processes' commits (core/store watch.go) runs on it too.
package renew

import (
	"context"
	"time"
)

// Every calls fn every period until ctx ends or fn returns false. The
// first call is one period after Every is called: the holder took the
// lease just before.
func Every(ctx context.Context, period time.Duration, fn func() (more bool)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !fn() {
			return
		}
	}
}
