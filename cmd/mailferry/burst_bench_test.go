package main_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailferry/core/oldserver/oldtest"
)

// The first-login burst of issue 17: burstUsers users of a migrating
// domain, each with a burstMessages-message (about 8 MB) INBOX on the
// Dovecot fixture, log in to `mailferry serve` within the same instant,
// each from an address of its own. The benchmark prints, per run and as
// the median of three runs: when the logins were answered (p50, p90,
// max), when every copy was done, and serve's peak RSS; and the goals
// (p90 under 1 s, peak RSS under 256 MB).
const (
	burstUsers    = 50
	burstMessages = 150
)

type burstRun struct {
	p50, p90, max time.Duration
	allCopied     time.Duration
	peakRSSKiB    int
	bytes         int64
}

func BenchmarkFirstLoginBurst(b *testing.B) {
	old, users, total := burstOldServer(b)
	var runs, before []burstRun
	var floor []time.Duration
	n := 3
	if v, err := strconv.Atoi(os.Getenv("MAILFERRY_BURST_RUNS")); err == nil && v > 0 {
		n = v // for a quick look; the figures are medians of 3
	}
	// MAILFERRY_BURST_BEFORE=binary: each run also bursts a `serve` of
	// that binary (the code before a change), side by side.
	beforeBin := os.Getenv("MAILFERRY_BURST_BEFORE")
	for range n {
		// The floor: the same 50 logins straight to the old server, no
		// copies, in the same run (the machine's load changes).
		took := oldtest.BurstLogins(b, users, old.IMAPAddr)
		floor = append(floor, took[len(took)*9/10])
		r := burstOnce(b, old, users, 1, "")
		r.bytes = total
		runs = append(runs, r)
		b.Logf("run: logins answered p50 %v p90 %v max %v (floor p90 %v); every copy done %v (%.0f MB/s); serve peak RSS %d MiB",
			r.p50.Round(time.Millisecond), r.p90.Round(time.Millisecond), r.max.Round(time.Millisecond), floor[len(floor)-1].Round(time.Millisecond),
			r.allCopied.Round(10*time.Millisecond), float64(total)/1e6/r.allCopied.Seconds(), r.peakRSSKiB/1024)
		if beforeBin != "" {
			var rb burstRun
			withBinary(beforeBin, func() { rb = burstOnce(b, old, users, 1, "") })
			before = append(before, rb)
			b.Logf("run of %s: logins answered p50 %v p90 %v max %v; every copy done %v",
				beforeBin, rb.p50.Round(time.Millisecond), rb.p90.Round(time.Millisecond), rb.max.Round(time.Millisecond), rb.allCopied.Round(10*time.Millisecond))
		}
	}
	slices.Sort(floor)
	m := burstMedian(runs)
	p90, rss := m.p90, float64(m.peakRSSKiB)/1024
	fmt.Printf("first-login burst, %d users x %d messages (medians of %d): logins p50 %v p90 %v max %v; every copy done %v; serve peak RSS %.0f MiB\n",
		burstUsers, burstMessages, len(runs), m.p50.Round(time.Millisecond), p90.Round(time.Millisecond), m.max.Round(time.Millisecond),
		m.allCopied.Round(10*time.Millisecond), rss)
	fl := floor[len(floor)/2]
	fmt.Printf("  floor: the same logins straight to the old server, no copies: p90 %v; Mailferry adds %v\n",
		fl.Round(time.Millisecond), (p90 - fl).Round(time.Millisecond))
	if len(before) > 0 {
		mb := burstMedian(before)
		fmt.Printf("  before (%s): logins p90 %v; every copy done %v\n", beforeBin, mb.p90.Round(time.Millisecond), mb.allCopied.Round(10*time.Millisecond))
	}
	fmt.Printf("  goal p90 < 1s: %s; goal peak RSS < 256 MiB: %s\n", holds(p90 < time.Second), holds(rss < 256))
	b.ReportMetric(p90.Seconds(), "p90-s")
	b.ReportMetric(rss, "peakRSS-MiB")
}

// withBinary runs fn with bin as the mailferry binary the helpers start
// (benchmarks run one at a time).
func withBinary(bin string, fn func()) {
	saved := mailferryBin
	mailferryBin = bin
	defer func() { mailferryBin = saved }()
	fn()
}

func holds(ok bool) string {
	if ok {
		return "holds"
	}
	return "NOT MET"
}

// burstOldServer starts the Dovecot fixture with burstUsers users, each
// with burstMessages messages in INBOX, and returns it, the users and
// their passwords, and the bytes in all.
func burstOldServer(b *testing.B) (*oldtest.Server, map[string]string, int64) {
	users := map[string]string{}
	for i := range burstUsers {
		users[fmt.Sprintf("u%02d@example.test", i)] = fmt.Sprintf("Burst-Secret-%02d", i)
	}
	old := oldtest.Start(b, &oldtest.Options{Users: users})
	var total int64
	for name := range users {
		total += old.SeedMaildir(b, name, "INBOX", burstMessages, func(i int) int { return 40_000 + i%10*1_000 })
	}
	b.Logf("old server: %d users, %d messages, %.0f MB in all", burstUsers, burstUsers*burstMessages, float64(total)/1e6)
	return old, users, total
}

// burstOnce runs one burst against a fresh store: the embedded one in a
// data directory (config ""), or the one config names, served by nodes
// `serve` processes (each with a data directory of its own) that the
// logins are spread over. peakRSSKiB is the largest node's.
func burstOnce(b *testing.B, old *oldtest.Server, users map[string]string, nodes int, config string) burstRun {
	var extra []string
	if config != "" {
		extra = []string{"--config", config}
	}
	data := b.TempDir()
	oh, op, _ := net.SplitHostPort(old.IMAPAddr)
	if out, stderr, code := mf(b, data, "", append([]string{"domain", "migrate", "example.test", "--old", "[" + oh + "]",
		"--imap-port", op, "--smtp-port", "25", "--tls", "none"}, extra...)...); code != 0 {
		b.Fatalf("domain migrate: %s %s", out, stderr)
	}
	var srvs []*serveProc
	var addrs []string
	for i := range nodes {
		dir := data
		if i > 0 {
			dir = b.TempDir()
		}
		srv := startServe(b, dir, "", nil, append([]string{"--allow-insecure-auth"}, extra...)...)
		defer func() {
			srv.stop()
			srv.saveLog("MAILFERRY_BURST_LOG")
		}()
		srvs, addrs = append(srvs, srv), append(addrs, srv.addr)
	}
	logs := func() string {
		var all strings.Builder
		for _, srv := range srvs {
			fmt.Fprintf(&all, "serve on %s:\n%s\n", srv.addr, srv.log())
		}
		return all.String()
	}
	t0 := time.Now()
	took := oldtest.BurstLogins(b, users, addrs...)
	if b.Failed() {
		b.Fatalf("serve logs:\n%s", logs())
	}
	// Every copy done: poll the one status model, as an admin would.
	var allCopied time.Duration
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		out, _, code := mf(b, data, "", append([]string{"status", "--json"}, extra...)...)
		var st struct {
			Domains []struct {
				Accounts []struct {
					State string `json:"migration"`
				} `json:"accounts"`
			} `json:"domains"`
		}
		if code == 0 && json.Unmarshal([]byte(out), &st) == nil && len(st.Domains) == 1 {
			done := 0
			for _, a := range st.Domains[0].Accounts {
				if a.State == "done" {
					done++
				}
			}
			if done == len(users) {
				allCopied = time.Since(t0)
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("copies not done after 5 minutes: %s\n%s", out, logs())
		}
	}
	rss := 0
	for _, srv := range srvs {
		rss = max(rss, peakRSS(b, srv.cmd.Process.Pid))
	}
	return burstRun{p50: took[len(took)/2], p90: took[len(took)*9/10], max: took[len(took)-1], allCopied: allCopied, peakRSSKiB: rss}
}

// BenchmarkFirstLoginBurstNodes is the burst on the distributed engine
// (PostgreSQL + SeaweedFS, a fresh database and bucket per run): one
// `serve` node against two sharing the store, the logins spread over
// them, side by side in one run (medians of 3; MAILFERRY_BURST_RUNS for a
// quick look).
func BenchmarkFirstLoginBurstNodes(b *testing.B) {
	old, users, total := burstOldServer(b)
	n := 3
	if v, err := strconv.Atoi(os.Getenv("MAILFERRY_BURST_RUNS")); err == nil && v > 0 {
		n = v
	}
	runs := map[int][]burstRun{}
	for range n {
		for _, nodes := range []int{1, 2} {
			r := burstOnce(b, old, users, nodes, distributedConfig(b, b.TempDir(), nil))
			runs[nodes] = append(runs[nodes], r)
			b.Logf("%d node(s): logins answered p50 %v p90 %v; every copy done %v (%.0f MB/s); largest node's peak RSS %d MiB",
				nodes, r.p50.Round(time.Millisecond), r.p90.Round(time.Millisecond), r.allCopied.Round(10*time.Millisecond),
				float64(total)/1e6/r.allCopied.Seconds(), r.peakRSSKiB/1024)
		}
	}
	fmt.Printf("first-login burst on PostgreSQL + S3, %d users x %d messages (medians of %d):\n", burstUsers, burstMessages, n)
	for _, nodes := range []int{1, 2} {
		m := burstMedian(runs[nodes])
		fmt.Printf("  %d node(s): logins p50 %v p90 %v; every copy done %v (%.0f MB/s); largest node's peak RSS %d MiB\n",
			nodes, m.p50.Round(time.Millisecond), m.p90.Round(time.Millisecond), m.allCopied.Round(10*time.Millisecond),
			float64(total)/1e6/m.allCopied.Seconds(), m.peakRSSKiB/1024)
		b.ReportMetric(m.p90.Seconds(), fmt.Sprintf("p90-s-%dnodes", nodes))
	}
}

// burstMedian is each figure's median over runs.
func burstMedian(runs []burstRun) burstRun {
	med := func(f func(burstRun) int64) int64 {
		v := make([]int64, len(runs))
		for i, r := range runs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return burstRun{
		p50:        time.Duration(med(func(r burstRun) int64 { return int64(r.p50) })),
		p90:        time.Duration(med(func(r burstRun) int64 { return int64(r.p90) })),
		max:        time.Duration(med(func(r burstRun) int64 { return int64(r.max) })),
		allCopied:  time.Duration(med(func(r burstRun) int64 { return int64(r.allCopied) })),
		peakRSSKiB: int(med(func(r burstRun) int64 { return int64(r.peakRSSKiB) })),
	}
}
