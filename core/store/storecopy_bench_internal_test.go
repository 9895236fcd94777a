package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"mailferry/core/oldserver/oldtest"
)

// seedBenchMailbox fills src the way the migration benchmarks' mailbox
// is (BenchmarkMigrate5000: four folders of 40/30/20/10 percent of n
// messages, oldtest.MixedSize, about 50 kB each on average, every second
// \Seen), with old-server UIDVALIDITYs and UIDs, and returns the bytes.
func seedBenchMailbox(tb testing.TB, src *Store, n int) int64 {
	tb.Helper()
	ctx := context.Background()
	if _, err := src.CreateDomain(ctx, "example.test"); err != nil {
		tb.Fatal(err)
	}
	a, err := src.CreateAccount(ctx, "alice@example.test", "Alice-pass-1", &AccountOptions{Migration: MigDone,
		Inbox: &MailboxOptions{UIDValidity: 1700000001, UIDNext: 1}})
	if err != nil {
		tb.Fatal(err)
	}
	folders := []string{"INBOX", "Archive", "Sent", "Lists"}
	share := []int{40, 30, 20, 10}
	var total int64
	k := 0
	for i, f := range folders {
		box, err := src.Mailbox(ctx, a.ID, f)
		if err != nil {
			box, err = src.CreateMailbox(ctx, a.ID, f, &MailboxOptions{UIDValidity: uint32(1700000001 + i), Subscribed: true})
		}
		if err != nil {
			tb.Fatal(err)
		}
		count := n * share[i] / 100
		for start := 0; start < count; start += 200 {
			var msgs []*NewMessage
			for j := start; j < min(start+200, count); j++ {
				body := oldtest.BigMessage(fmt.Sprintf("alice %s %d", f, j), oldtest.MixedSize(k+j))
				total += int64(len(body))
				m := &NewMessage{UID: uint32(2*j + 1), Body: body, InternalDate: time.Date(2019, 6, 1, 12, j%60, 0, 0, time.FixedZone("", 3600*(j%5)))}
				if j%2 == 0 {
					m.Flags = []string{`\Seen`}
				}
				if j%7 == 0 {
					m.Flags = append(m.Flags, "$Important")
				}
				msgs = append(msgs, m)
			}
			t, err := src.Begin(ctx)
			if err != nil {
				tb.Fatal(err)
			}
			if _, err := t.AppendMany(box.ID, msgs); err != nil {
				tb.Fatal(err)
			}
			if err := t.Commit(); err != nil {
				tb.Fatal(err)
			}
		}
		k += count
	}
	return total
}

// copyBenchMailbox copies a store seeded with n messages into the run's
// engine with object storage, verifies it, and checks, through the API,
// that every mailbox's UIDVALIDITY and UIDNEXT and every message's UID,
// flags and MODSEQ are the source's.
func copyBenchMailbox(tb testing.TB, n int) (copied, verified time.Duration, total int64) {
	src, _ := copySourceStoreTB(tb)
	total = seedBenchMailbox(tb, src, n)
	dst := copyTargetTB(tb)
	ctx := context.Background()
	start := time.Now()
	p, err := Copy(ctx, src, dst, nil)
	if err != nil {
		tb.Fatal(err)
	}
	copied = time.Since(start)
	if p.Messages != int64(n) || p.Bytes != total {
		tb.Fatalf("copied %d messages, %d bytes; seeded %d, %d", p.Messages, p.Bytes, n, total)
	}
	start = time.Now()
	r, err := VerifyCopy(ctx, src, dst, 0)
	if err != nil {
		tb.Fatal(err)
	}
	verified = time.Since(start)
	if !r.OK() || r.Messages != int64(n) || r.Bytes != total {
		tb.Fatalf("verify: %+v", r)
	}
	a, _ := src.Account(ctx, "alice@example.test")
	boxes, _ := src.Mailboxes(ctx, a.ID)
	if len(boxes) != 4 {
		tb.Fatalf("%d mailboxes", len(boxes))
	}
	for _, b := range boxes {
		ws, err1 := src.Snapshot(ctx, b.ID, 0)
		gs, err2 := dst.Snapshot(ctx, b.ID, 0)
		if err1 != nil || err2 != nil {
			tb.Fatal(err1, err2)
		}
		if gs.UIDValidity != ws.UIDValidity || gs.UIDNext != ws.UIDNext || gs.HighestModSeq != ws.HighestModSeq || len(gs.Changed) != len(ws.Changed) {
			tb.Fatalf("%s: target %d/%d/%d/%d, source %d/%d/%d/%d", b.Name, gs.UIDValidity, gs.UIDNext, gs.HighestModSeq, len(gs.Changed), ws.UIDValidity, ws.UIDNext, ws.HighestModSeq, len(ws.Changed))
		}
		for i, w := range ws.Changed {
			g := gs.Changed[i]
			if g.UID != w.UID || g.ModSeq != w.ModSeq || fmt.Sprint(g.Flags) != fmt.Sprint(w.Flags) {
				tb.Fatalf("%s: message %d: target %+v, source %+v", b.Name, i, g, w)
			}
		}
	}
	return copied, verified, total
}

// A 250-message slice of the benchmark mailbox, SQLite + packs into the
// run's engine + object storage: every message, flag, UID, UIDVALIDITY
// identical (BenchmarkStoreCopy5000 is the 5,000 one, in `make bench`).
func TestStoreCopyBenchMailbox(t *testing.T) {
	c, v, total := copyBenchMailbox(t, 250)
	t.Logf("250 messages, %.1f MB: copy %v (%.1f MB/s), verify %v", float64(total)/1e6, c.Round(time.Millisecond), float64(total)/1e6/c.Seconds(), v.Round(time.Millisecond))
}

// BenchmarkStoreCopy5000 is `store copy` of the 5,000-message benchmark
// mailbox (about 250 MB) from SQLite + packs into the run's engine +
// SeaweedFS, with its verify pass; it prints time and rates.
func BenchmarkStoreCopy5000(b *testing.B) {
	for i := 0; i < b.N; i++ {
		c, v, total := copyBenchMailbox(b, 5000)
		b.ReportMetric(5000/c.Seconds(), "msgs/s")
		b.ReportMetric(float64(total)/1e6/c.Seconds(), "MB/s")
		b.Logf("%s + S3: 5000 messages, %.1f MB: copy %v (%.0f msgs/s, %.1f MB/s), verify %v (%.1f MB/s read on each side)", testEngine,
			float64(total)/1e6, c.Round(time.Millisecond), 5000/c.Seconds(), float64(total)/1e6/c.Seconds(), v.Round(time.Millisecond), float64(total)/1e6/v.Seconds())
	}
}
