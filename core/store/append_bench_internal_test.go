package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkStoresBesideAppends: 5 sessions STORE a flag while 5 others
// APPEND 4 KiB messages, on one mailbox, with the real fsync (the load of
// make bench-imap's STORE and APPEND, without IMAP): each command's
// latency (p50, p90). A STORE waits for the writer, which an APPEND held
// for its fsync before session 10 (walsync.go).
func BenchmarkStoresBesideAppends(b *testing.B) {
	s, mb, uids := inboxStore(b, nil, 5)
	ctx := context.Background()
	body := make([]byte, 4096)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	lat := timedSessions(b, 10, func(k, i int) error {
		if k < 5 {
			op := FlagsAdd
			if i%2 == 1 {
				op = FlagsRemove
			}
			_, err := s.StoreFlags(ctx, mb.ID, []uint32{uids[k]}, op, []string{`\Flagged`})
			return err
		}
		m := slices.Clone(body)
		copy(m, fmt.Sprintf("Subject: %d %d\r\n\r\n", k, i))
		_, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: m})
		return err
	})
	reportLatency(b, "store-", slices.Concat(lat[:5]...))
	reportLatency(b, "append-", slices.Concat(lat[5:]...))
}

// timedSessions runs cmd(k, i) for i < b.N in n sessions (k < n) at once,
// with the timer on, and returns each session's latencies.
func timedSessions(b *testing.B, n int, cmd func(k, i int) error) [][]time.Duration {
	lat := make([][]time.Duration, n)
	b.ResetTimer()
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if err := cmd(k, i); err != nil {
					b.Error(err)
					return
				}
				lat[k] = append(lat[k], time.Since(start))
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	return lat
}

// reportLatency reports the p50 and p90 of lat, in ms, named with prefix.
func reportLatency(b *testing.B, prefix string, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, prefix+"p50-ms")
	b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, prefix+"p90-ms")
}
