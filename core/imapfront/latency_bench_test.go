package imapfront_test

import (
	"bufio"
	"fmt"
	"math/rand"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mailferry/core/oldserver/oldtest"
)

// The commands whose latency BenchmarkLatency10Clients measures, in the
// order each client round sends them.
var latencyCmds = []string{"LOGIN", "SELECT", "FETCH", "STORE", "APPEND", "EXPUNGE"}

const (
	latencyClients  = 10
	latencyRounds   = 8    // rounds per client per run
	latencyMessages = 2000 // messages in the INBOX both servers serve
	latencyRuns     = 3
)

var appendUIDRe = regexp.MustCompile(`\[APPENDUID \d+ (\d+)\]`)

// latencyClient is one raw IMAP connection of the load, timing each
// command from the first byte sent to its tagged OK.
type latencyClient struct {
	tb  testing.TB
	c   net.Conn
	r   *bufio.Reader
	tag int
}

func (lc *latencyClient) cmd(format string, args ...any) (tagged string, d time.Duration) {
	lc.tag++
	tag := fmt.Sprintf("L%d", lc.tag)
	start := time.Now()
	fmt.Fprintf(lc.c, tag+" "+format+"\r\n", args...)
	for {
		lc.c.SetReadDeadline(time.Now().Add(2 * time.Minute))
		l, err := lc.r.ReadString('\n')
		if err != nil {
			lc.tb.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
		}
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				lc.tb.Fatalf("%s: %s", fmt.Sprintf(format, args...), l)
			}
			return l, time.Since(start)
		}
		skipLiteral(lc.tb, lc.r, l)
	}
}

// skipLiteral reads past the literals a response line announces.
func skipLiteral(tb testing.TB, r *bufio.Reader, l string) {
	for {
		m := benchLiteral.FindStringSubmatch(l)
		if m == nil {
			return
		}
		var n int
		fmt.Sscan(m[1], &n)
		if _, err := r.Discard(n); err != nil {
			tb.Fatal(err)
		}
		var err error
		if l, err = r.ReadString('\n'); err != nil {
			tb.Fatal(err)
		}
	}
}

// latencyRun has every client do its rounds against addr at once: LOGIN,
// SELECT, FETCH of 10 messages (FLAGS, ENVELOPE, the whole message), STORE
// of a flag, APPEND of a 4 KiB message, EXPUNGE of it, LOGOUT. With
// relogin false each client logs in once and does all its rounds on one
// connection, and the rounds start once every client logged in, so the
// commands' latency is measured without the load of other clients'
// logins. It returns every duration per command.
func latencyRun(tb testing.TB, addr, login, password string, msgs []string, relogin bool) map[string][]time.Duration {
	var mu sync.Mutex
	out := map[string][]time.Duration{}
	var wg sync.WaitGroup
	// loggedIn holds back the rounds of one-connection clients until every
	// client logged in, so that no round is measured beside another
	// client's LOGIN (argon2id takes both cores for a while).
	var loggedIn sync.WaitGroup
	loggedIn.Add(latencyClients)
	for k := 0; k < latencyClients; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			ready := sync.OnceFunc(loggedIn.Done)
			defer ready()
			rnd := rand.New(rand.NewSource(int64(k)))
			local := map[string][]time.Duration{}
			var lc *latencyClient
			dial := func() bool {
				nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if err != nil {
					tb.Error(err)
					return false
				}
				lc = &latencyClient{tb: tb, c: nc, r: bufio.NewReaderSize(nc, 64<<10)}
				if _, err := lc.r.ReadString('\n'); err != nil { // greeting
					tb.Error(err)
					nc.Close()
					return false
				}
				return true
			}
			note := func(name string, d time.Duration) { local[name] = append(local[name], d) }
			for round := 0; round < latencyRounds; round++ {
				if relogin || round == 0 {
					if !dial() {
						return
					}
					_, d := lc.cmd("LOGIN %s %s", login, password)
					if relogin {
						note("LOGIN", d)
					} else {
						ready()
						loggedIn.Wait()
					}
				}
				_, d := lc.cmd("SELECT INBOX")
				note("SELECT", d)
				first := 1 + rnd.Intn(latencyMessages-10)
				_, d = lc.cmd("FETCH %d:%d (UID FLAGS RFC822.SIZE ENVELOPE BODY.PEEK[])", first, first+9)
				note("FETCH", d)
				_, d = lc.cmd(`STORE %d +FLAGS.SILENT ($Bench%d)`, 1+rnd.Intn(latencyMessages), k)
				note("STORE", d)
				m := msgs[rnd.Intn(len(msgs))]
				tagged, d := lc.cmd("APPEND INBOX {%d+}\r\n%s", len(m), m)
				note("APPEND", d)
				uid := appendUIDRe.FindStringSubmatch(tagged)
				if uid == nil {
					tb.Errorf("APPEND without APPENDUID: %s", tagged)
					lc.c.Close()
					return
				}
				lc.cmd(`UID STORE %s +FLAGS.SILENT (\Deleted)`, uid[1])
				_, d = lc.cmd("UID EXPUNGE %s", uid[1])
				note("EXPUNGE", d)
				if relogin || round == latencyRounds-1 {
					lc.cmd("LOGOUT")
					lc.c.Close()
				}
			}
			mu.Lock()
			for n, ds := range local {
				out[n] = append(out[n], ds...)
			}
			mu.Unlock()
		}(k)
	}
	wg.Wait()
	return out
}

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func median3(v []time.Duration) time.Duration {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

// BenchmarkLatency10Clients prints the latency (p50, p90) of LOGIN, SELECT,
// FETCH, STORE, APPEND and EXPUNGE under a load of 10 clients, for
// Mailferry and for the Dovecot fixture (core/oldserver/oldtest, mail_fsync
// optimized, plaintext passwords) serving the same 2,000 messages, run by
// turns three times, once both read every message (readAll); each figure
// is the median of the three runs. Mailferry
// hashes passwords with argon2id on purpose, so its LOGIN is slower by
// design, and under load the hashing takes CPU from the other commands: a
// second table has each client log in once and do all its rounds on one
// connection. Needs the Dovecot fixture (root, dovecot-imapd); it skips
// without it unless MAILFERRY_REQUIRE_OLDSERVER=1.
func BenchmarkLatency10Clients(b *testing.B) {
	dv := oldtest.Start(b, &oldtest.Options{Fsync: "optimized"})
	var dvUser, dvPass string
	for u, p := range dv.Users {
		if dvUser == "" || u < dvUser {
			dvUser, dvPass = u, p
		}
	}
	e := newEnv(b, nil)
	fill(b, e.st, e.inbox(), latencyMessages)
	seedDovecot(b, dv.IMAPAddr, dvUser, dvPass, latencyMessages)
	readAll(b, e.addr, user, pass)
	readAll(b, dv.IMAPAddr, dvUser, dvPass)

	rnd := rand.New(rand.NewSource(3))
	msgs := make([]string, 32)
	for i := range msgs {
		m := realisticMessage(rnd, i*4+1)
		msgs[i] = m + strings.Repeat("x", max(0, 4096-len(m)-2)) + "\r\n"
	}
	type side struct {
		name, addr, user, pass string
		p50, p90               map[string][]time.Duration
	}
	b.ResetTimer()
	var sb strings.Builder
	for _, relogin := range []bool{true, false} {
		sides := []*side{
			{name: "Mailferry", addr: e.addr, user: user, pass: pass},
			{name: "Dovecot", addr: dv.IMAPAddr, user: dvUser, pass: dvPass},
		}
		for _, s := range sides {
			s.p50, s.p90 = map[string][]time.Duration{}, map[string][]time.Duration{}
		}
		for i := 0; i < b.N; i++ {
			for run := 0; run < latencyRuns; run++ {
				for _, s := range sides {
					got := latencyRun(b, s.addr, s.user, s.pass, msgs, relogin)
					for _, c := range latencyCmds {
						s.p50[c] = append(s.p50[c], percentile(got[c], 50))
						s.p90[c] = append(s.p90[c], percentile(got[c], 90))
					}
				}
			}
		}
		how := "each round a new connection and LOGIN"
		if !relogin {
			how = "one LOGIN per client, then its rounds on one connection"
		}
		fmt.Fprintf(&sb, "latency under %d clients, ms (%s; median of %d runs of %d rounds each; %d messages in INBOX)\n", latencyClients, how, latencyRuns*b.N, latencyRounds, latencyMessages)
		fmt.Fprintf(&sb, "%-8s %14s %14s %14s %14s\n", "command", "Mailferry p50", "Dovecot p50", "Mailferry p90", "Dovecot p90")
		for _, c := range latencyCmds {
			if c == "LOGIN" && !relogin {
				continue
			}
			mf50, dv50 := median3(sides[0].p50[c]), median3(sides[1].p50[c])
			mf90, dv90 := median3(sides[0].p90[c]), median3(sides[1].p90[c])
			fmt.Fprintf(&sb, "%-8s %14s %14s %14s %14s\n", c, ms(mf50), ms(dv50), ms(mf90), ms(dv90))
			if relogin {
				b.ReportMetric(float64(mf50.Microseconds())/1000, "mf-"+strings.ToLower(c)+"-p50-ms")
				b.ReportMetric(float64(dv50.Microseconds())/1000, "dv-"+strings.ToLower(c)+"-p50-ms")
			}
		}
	}
	b.Log("\n" + sb.String())
	if path := os.Getenv("MAILFERRY_LATENCY_OUT"); path != "" {
		os.WriteFile(path, []byte(sb.String()), 0o644)
	}
}

// loggedIn dials addr and logs in; the caller closes lc.c.
func loggedIn(tb testing.TB, addr, login, password string) *latencyClient {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	lc := &latencyClient{tb: tb, c: nc, r: bufio.NewReaderSize(nc, 64<<10)}
	lc.r.ReadString('\n')
	lc.cmd("LOGIN %s %s", login, password)
	return lc
}

// seedDovecot appends n messages (the same as fill's) to the Dovecot
// user's INBOX with pipelined LITERAL+ APPENDs.
func seedDovecot(tb testing.TB, addr, login, password string, n int) {
	lc := loggedIn(tb, addr, login, password)
	defer lc.c.Close()
	r := rand.New(rand.NewSource(1))
	w := bufio.NewWriterSize(lc.c, 256<<10)
	for i := 0; i < n; i++ {
		flags := []string{}
		if i%3 != 0 {
			flags = append(flags, `\Seen`)
		}
		if i%17 == 0 {
			flags = append(flags, `\Flagged`, "$Label1")
		}
		m := realisticMessage(r, i)
		date := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour).Format("02-Jan-2006 15:04:05 -0700")
		fmt.Fprintf(w, "S%d APPEND INBOX (%s) \"%s\" {%d+}\r\n%s\r\n", i, strings.Join(flags, " "), date, len(m), m)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	for i := 0; i < n; i++ {
		for {
			l, err := lc.r.ReadString('\n')
			if err != nil {
				tb.Fatal(err)
			}
			if strings.HasPrefix(l, fmt.Sprintf("S%d ", i)) {
				if !strings.Contains(l, " OK") {
					tb.Fatalf("seeding Dovecot: %s", l)
				}
				break
			}
		}
	}
}

// readAll fetches every message of the INBOX once, so that both servers
// start with their messages in the page cache: Dovecot's were just written
// through it, Mailferry's packs with O_DIRECT (store/packdirect.go), which
// leaves them out of it, and each FETCH would otherwise read from the disk
// what Dovecot reads from memory (about 1 ms of a FETCH of 10 messages in
// an execution trace under this load).
func readAll(tb testing.TB, addr, login, password string) {
	lc := loggedIn(tb, addr, login, password)
	defer lc.c.Close()
	lc.cmd("EXAMINE INBOX")
	lc.cmd("FETCH 1:* (BODY.PEEK[])")
	lc.cmd("LOGOUT")
}

// BenchmarkLatencyMailferry is the one-connection half of
// BenchmarkLatency10Clients on Mailferry alone (no Dovecot, no root): 10
// clients each log in once and do their rounds of SELECT, FETCH, STORE,
// APPEND and EXPUNGE at once. It reports each command's p50 and p90 over
// b.N runs, for profiling (-cpuprofile, -blockprofile, -trace) where
// the Dovecot fixture cannot run.
func BenchmarkLatencyMailferry(b *testing.B) {
	e := newEnv(b, nil)
	fill(b, e.st, e.inbox(), latencyMessages)
	readAll(b, e.addr, user, pass)
	rnd := rand.New(rand.NewSource(3))
	msgs := make([]string, 32)
	for i := range msgs {
		m := realisticMessage(rnd, i*4+1)
		msgs[i] = m + strings.Repeat("x", max(0, 4096-len(m)-2)) + "\r\n"
	}
	all := map[string][]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for c, ds := range latencyRun(b, e.addr, user, pass, msgs, false) {
			all[c] = append(all[c], ds...)
		}
	}
	b.StopTimer()
	for _, c := range latencyCmds[1:] {
		b.ReportMetric(float64(percentile(all[c], 50).Microseconds())/1000, strings.ToLower(c)+"-p50-ms")
		b.ReportMetric(float64(percentile(all[c], 90).Microseconds())/1000, strings.ToLower(c)+"-p90-ms")
	}
}
