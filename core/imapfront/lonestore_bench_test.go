package imapfront_test

import (
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkLoneStore measures the lone STORE: one client, one connection
// with INBOX selected, sending loneStores STOREs one at a time with
// loneGap (MAILFERRY_LONESTORE_GAP) of quiet between the answer and the
// next, so that each finds the server idle (the paced table's STORE,
// without the other commands around it). Each STORE changes a flag: a
// keyword added to a random message, then taken off it again. It prints,
// per side (the serve process of mailferrySides, its "before" side with
// MAILFERRY_LATENCY_BEFORE, and with MAILFERRY_LATENCY_DOVECOT=1 the
// Dovecot fixture on the same messages), run by turns loneRuns times: the
// STORE's p50 and p90 from the client, and the server's CPU per STORE
// (all its processes, from /proc, over the whole run, its idle CPU over
// as long a quiet time taken off). With MAILFERRY_LONESTORE_HOLD=duration
// it waits that long before the runs, printing the serve processes' pids,
// for strace or perf to attach.
func BenchmarkLoneStore(b *testing.B) {
	var sides []*latencySide
	if os.Getenv("MAILFERRY_LATENCY_DOVECOT") == "1" {
		sides = append(sides, dovecotSide(b))
	}
	sides = append(mailferrySides(b, latencyMessages), sides...)
	gap := 2 * time.Millisecond
	if v := os.Getenv("MAILFERRY_LONESTORE_GAP"); v != "" {
		var err error
		if gap, err = time.ParseDuration(v); err != nil {
			b.Fatalf("MAILFERRY_LONESTORE_GAP: %v", err)
		}
	}
	if v := os.Getenv("MAILFERRY_LONESTORE_HOLD"); v != "" {
		hold, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("MAILFERRY_LONESTORE_HOLD: %v", err)
		}
		for _, s := range sides {
			fmt.Printf("%s: pid %d\n", s.name, s.pid)
		}
		time.Sleep(hold)
	}
	type result struct{ p50, p90, cpu []time.Duration }
	res := map[*latencySide]*result{}
	for _, s := range sides {
		res[s] = &result{}
	}
	b.ResetTimer()
	for i := 0; i < b.N*loneRuns; i++ {
		for _, s := range byTurns(sides, i) {
			p50, p90, cpu := loneStoreRun(b, s, gap, int64(i))
			r := res[s]
			r.p50, r.p90, r.cpu = append(r.p50, p50), append(r.p90, p90), append(r.cpu, cpu)
		}
	}
	b.StopTimer()
	var sb strings.Builder
	fmt.Fprintf(&sb, "lone STORE: one client, %d STOREs of a flag each, %v between an answer and the next command; median of %d runs\n", loneStores, gap, b.N*loneRuns)
	fmt.Fprintf(&sb, "%-10s %8s %8s %14s\n", "server", "p50 ms", "p90 ms", "CPU/STORE µs")
	for _, s := range sides {
		r := res[s]
		cpu := "-"
		if s.cpu != nil {
			cpu = strconv.FormatInt(median3(r.cpu).Microseconds(), 10)
		}
		fmt.Fprintf(&sb, "%-10s %8.3f %8.3f %14s\n", s.name, float64(median3(r.p50).Microseconds())/1000, float64(median3(r.p90).Microseconds())/1000, cpu)
	}
	sb.WriteString("(CPU: the server's, all its processes, user + system from /proc over the run, less its CPU over as long a quiet time after it)\n")
	mf := res[sides[0]]
	b.ReportMetric(float64(median3(mf.p50).Microseconds()), "p50-µs")
	b.ReportMetric(float64(median3(mf.cpu).Microseconds()), "cpu-µs/store")
	printTables(b, sb.String())
}

const (
	loneStores = 1000 // STOREs per run of BenchmarkLoneStore
	loneRuns   = 3    // runs per side per b.N
)

// loneStoreRun does one run of BenchmarkLoneStore against s and returns
// the STOREs' p50 and p90, and the server's CPU per STORE (0 without a
// CPU count): over the run, less what it used over as long a quiet time
// right after (its timers, a flag's later fsync, a checkpoint).
func loneStoreRun(b *testing.B, s *latencySide, gap time.Duration, seed int64) (p50, p90, cpu time.Duration) {
	lc := loggedIn(b, s.addr, s.user, s.pass)
	defer lc.c.Close()
	lc.cmd("SELECT INBOX")
	rnd := rand.New(rand.NewSource(seed))
	ds := make([]time.Duration, 0, loneStores)
	time.Sleep(cpuSettle)
	var cpu0 time.Duration
	if s.cpu != nil {
		cpu0 = s.cpu()
	}
	start := time.Now()
	var msg int
	for i := 0; i < loneStores; i++ {
		op := "-"
		if i%2 == 0 {
			op, msg = "+", 1+rnd.Intn(latencyMessages)
		}
		_, d := lc.cmd("STORE %d %sFLAGS.SILENT ($Lone)", msg, op)
		ds = append(ds, d)
		time.Sleep(gap)
	}
	if s.cpu != nil {
		used := s.cpu() - cpu0
		wall := time.Since(start)
		idle0 := s.cpu()
		time.Sleep(wall)
		idle := s.cpu() - idle0
		cpu = max(used-idle, 0) / loneStores
	}
	lc.cmd("LOGOUT")
	return percentile(ds, 50), percentile(ds, 90), cpu
}
