package store

import (
	"context"
	"fmt"
	"path/filepath"
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
	s, err := Open(filepath.Join(b.TempDir(), "mail.db"), &Options{ChangePoll: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	s.CreateDomain(ctx, "example.test")
	a, err := s.CreateAccount(ctx, "u@example.test", "pw", nil)
	if err != nil {
		b.Fatal(err)
	}
	mb, _ := s.Mailbox(ctx, a.ID, "INBOX")
	var uids []uint32
	for i := 0; i < 5; i++ {
		m, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: fmt.Appendf(nil, "Subject: %d\r\n\r\nx\r\n", i)})
		if err != nil {
			b.Fatal(err)
		}
		uids = append(uids, m.UID)
	}
	body := make([]byte, 4096)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	var mu sync.Mutex
	var stores, appends []time.Duration
	b.ResetTimer()
	var wg sync.WaitGroup
	for k := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if k < 5 {
					op := FlagsAdd
					if i%2 == 1 {
						op = FlagsRemove
					}
					if _, err := s.StoreFlags(ctx, mb.ID, []uint32{uids[k]}, op, []string{`\Flagged`}); err != nil {
						b.Error(err)
						return
					}
				} else {
					m := slices.Clone(body)
					copy(m, fmt.Sprintf("Subject: %d %d\r\n\r\n", k, i))
					if _, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: m}); err != nil {
						b.Error(err)
						return
					}
				}
				d := time.Since(start)
				mu.Lock()
				if k < 5 {
					stores = append(stores, d)
				} else {
					appends = append(appends, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(stores)
	slices.Sort(appends)
	b.ReportMetric(float64(stores[len(stores)/2].Microseconds())/1000, "store-p50-ms")
	b.ReportMetric(float64(stores[len(stores)*9/10].Microseconds())/1000, "store-p90-ms")
	b.ReportMetric(float64(appends[len(appends)/2].Microseconds())/1000, "append-p50-ms")
	b.ReportMetric(float64(appends[len(appends)*9/10].Microseconds())/1000, "append-p90-ms")
}
