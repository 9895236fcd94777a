package imapfront_test

import (
	"bufio"
	"fmt"
	"math"
	"math/rand"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	// latencyPace is the time between the starts of a client's rounds in
	// the first paced table (MAILFERRY_LATENCY_PACE: others, 0 for none):
	// 10 clients, 40 rounds a second on each server, which Dovecot serves
	// with about one core of its CPU per round, so that both servers get
	// the same offered load rather than as much as each can take.
	latencyPace = 250 * time.Millisecond
	// latencyAutoShare is the share of the slowest server's closed-loop
	// rate (one LOGIN per client) that the "auto" paced table offers both:
	// near what the slower server can take at all, and still under it, so
	// that both serve the same load and neither falls behind the pace.
	latencyAutoShare = 0.8
	// latencyKeptUp is the share of the offered rate a server must have
	// served in a paced run for the run to count as at that load (a
	// server slower than the pace serves less, and its table is then a
	// closed loop again).
	latencyKeptUp = 0.9
)

var appendUIDRe = regexp.MustCompile(`\[APPENDUID \d+ (\d+)\]`)

// latencyClient is one raw IMAP connection of the load, timing each
// command from the first byte sent to its tagged OK.
type latencyClient struct {
	tb  testing.TB
	c   net.Conn
	r   *bufio.Reader
	tag int
	// sent, when set, counts the commands sent (latencyRun's throughput).
	sent *atomic.Int64
}

func (lc *latencyClient) cmd(format string, args ...any) (tagged string, d time.Duration) {
	lc.tag++
	if lc.sent != nil {
		lc.sent.Add(1)
	}
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
// logins. With pace (and one connection) each client starts its rounds
// pace apart, the clients spread over the first pace, instead of each
// round at once after the one before: a closed loop with no pause gives
// a server as much load as it serves (a faster server gets more commands
// at once than a slower one), a pace the same load to both. It returns
// every duration per command, and the load the server took: the rounds'
// wall time (from the start of the first round, once every client logged
// in when relogin is false, to the end of the last) and the commands
// sent in it (with relogin its LOGIN and LOGOUT too). started, when not
// nil, is called once as the rounds start.
func latencyRun(tb testing.TB, addr, login, password string, msgs []string, relogin bool, pace time.Duration, started func()) (map[string][]time.Duration, latencyLoad) {
	var mu sync.Mutex
	out := map[string][]time.Duration{}
	var sent atomic.Int64
	var t0 time.Time
	begin := sync.OnceFunc(func() {
		if started != nil {
			started()
		}
		t0 = time.Now()
	})
	if relogin {
		begin()
	}
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
				if relogin {
					lc.sent = &sent
				}
				if _, err := lc.r.ReadString('\n'); err != nil { // greeting
					tb.Error(err)
					nc.Close()
					return false
				}
				return true
			}
			note := func(name string, d time.Duration) { local[name] = append(local[name], d) }
			var start time.Time // of the paced rounds
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
						begin()
						lc.sent = &sent
						start = time.Now().Add(pace * time.Duration(k) / latencyClients)
					}
				}
				if pace > 0 && !relogin {
					time.Sleep(time.Until(start.Add(pace * time.Duration(round))))
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
	return out, latencyLoad{rounds: latencyClients * latencyRounds, cmds: int(sent.Load()), wall: time.Since(t0)}
}

// latencyLoad is the load a server took in one latencyRun.
type latencyLoad struct {
	rounds, cmds int
	wall         time.Duration
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

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(tenths(d))/10) }

// latencySide is one server the latency benchmarks drive, and what they
// measured of it.
type latencySide struct {
	name, addr, user, pass string
	// cpu is the CPU time the server (all its processes) has used so far;
	// nil when it runs inside the benchmark's process.
	cpu      func() time.Duration
	pid      int                        // a serve process's (0: another server)
	p50, p90 map[string][]time.Duration // per run
	roundCPU []time.Duration            // per run: its CPU over the run per client round
	cmdCPU   map[string][]time.Duration // per pass of cpuPerCommand
	// Per run, the load it took (latencyRun's latencyLoad): client rounds
	// and commands per second of the rounds' wall time, and its CPU in
	// those rounds per second of them (cores busy; nil cpu: none).
	roundsPerSec, cmdsPerSec, cores []float64
}

// mailferrySides starts the Mailferry servers of a latency benchmark, each
// on its own copy of the same n messages (fill's): "Mailferry", a
// `mailferry serve` process built from this module (MAILFERRY_LATENCY_BIN:
// that binary instead; MAILFERRY_LATENCY_PROFILE and
// MAILFERRY_LATENCY_TRACE: its CPU profile and Go execution trace, written
// when the benchmark ends; MAILFERRY_LATENCY_LOG: a copy of its log, with
// GODEBUG=gctrace=1 its collections; MAILFERRY_LATENCY_SERVE_ENV="K=V
// ...": more of its environment, such as GOGC); with MAILFERRY_LATENCY_BEFORE=binary also
// "before", a serve process of that binary (the code before a change, in
// the same runs; MAILFERRY_LATENCY_BEFORE_ENV its environment as
// MAILFERRY_LATENCY_SERVE_ENV); with MAILFERRY_LATENCY_INPROCESS=1 also "in-process",
// the server inside the benchmark's process as measured before 2026-12-06
// evening (it shares the heap, collector and 2 Ps with the 10 clients).
// Every side has read its messages once (readAll).
func mailferrySides(b *testing.B, n int) []*latencySide {
	data := seedServeData(b, n)
	var before string
	if bin := os.Getenv("MAILFERRY_LATENCY_BEFORE"); bin != "" {
		before = copyDir(b, data)
	}
	env := strings.Fields(os.Getenv("MAILFERRY_LATENCY_SERVE_ENV"))
	if f := os.Getenv("MAILFERRY_LATENCY_PROFILE"); f != "" {
		env = append(env, "MAILFERRY_CPUPROFILE="+f)
	}
	if f := os.Getenv("MAILFERRY_LATENCY_TRACE"); f != "" {
		env = append(env, "MAILFERRY_TRACE="+f)
	}
	mf := startServeProc(b, mailferryBinary(b), data, os.Getenv("MAILFERRY_LATENCY_LOG"), env...)
	sides := []*latencySide{{name: "Mailferry", addr: mf.addr, user: user, pass: pass, cpu: mf.cpu, pid: mf.cmd.Process.Pid}}
	if before != "" {
		p := startServeProc(b, os.Getenv("MAILFERRY_LATENCY_BEFORE"), before, "", strings.Fields(os.Getenv("MAILFERRY_LATENCY_BEFORE_ENV"))...)
		sides = append(sides, &latencySide{name: "before", addr: p.addr, user: user, pass: pass, cpu: p.cpu, pid: p.cmd.Process.Pid})
	}
	if os.Getenv("MAILFERRY_LATENCY_INPROCESS") == "1" {
		e := newEnv(b, nil)
		fill(b, e.st, e.inbox(), n)
		sides = append(sides, &latencySide{name: "in-process", addr: e.addr, user: user, pass: pass})
	}
	for _, s := range sides {
		readAll(b, s.addr, s.user, s.pass)
	}
	return sides
}

// latencyMessages4K are the 4 KiB messages the clients APPEND.
func latencyMessages4K() []string {
	rnd := rand.New(rand.NewSource(3))
	msgs := make([]string, 32)
	for i := range msgs {
		m := realisticMessage(rnd, i*4+1)
		msgs[i] = m + strings.Repeat("x", max(0, 4096-len(m)-2)) + "\r\n"
	}
	return msgs
}

// runLatency does one latencyRun against s, keeps its p50, p90 and the
// server's CPU per client round, and returns its durations.
func (s *latencySide) runLatency(b *testing.B, msgs []string, relogin bool, pace time.Duration) map[string][]time.Duration {
	var cpu0, cpuStart time.Duration
	var started func()
	if s.cpu != nil {
		cpu0 = s.cpu()
		started = func() { cpuStart = s.cpu() }
	}
	got, load := latencyRun(b, s.addr, s.user, s.pass, msgs, relogin, pace, started)
	secs := load.wall.Seconds()
	s.roundsPerSec = append(s.roundsPerSec, float64(load.rounds)/secs)
	s.cmdsPerSec = append(s.cmdsPerSec, float64(load.cmds)/secs)
	if s.cpu != nil {
		s.cores = append(s.cores, (s.cpu()-cpuStart).Seconds()/secs)
		time.Sleep(cpuSettle)
		s.roundCPU = append(s.roundCPU, (s.cpu()-cpu0)/(latencyClients*latencyRounds))
	}
	for _, c := range latencyCmds {
		s.p50[c] = append(s.p50[c], percentile(got[c], 50))
		s.p90[c] = append(s.p90[c], percentile(got[c], 90))
	}
	return got
}

func (s *latencySide) reset() {
	s.p50, s.p90, s.roundCPU = map[string][]time.Duration{}, map[string][]time.Duration{}, nil
	s.roundsPerSec, s.cmdsPerSec, s.cores = nil, nil, nil
}

// medianF is the median of v (the upper one of an even count), 0 for
// none.
func medianF(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// latencyTable writes the medians of the sides' runs: p50 of each side,
// then p90 of each, per command (LOGIN only with relogin), then the
// servers' CPU per client round and the load each took (rounds and
// commands per second, cores busy), the goal line and the verdict line.
// It returns the verdict.
func latencyTable(sb *strings.Builder, sides []*latencySide, relogin bool, pace time.Duration, runs int) latencyVerdict {
	how := "each round a new connection and LOGIN"
	if !relogin {
		how = "one LOGIN per client, then its rounds on one connection"
	}
	if pace > 0 && !relogin {
		how = fmt.Sprintf("one LOGIN per client, then a round every %v per client: %.0f rounds/s offered to each server", pace, latencyClients/pace.Seconds())
	}
	fmt.Fprintf(sb, "latency under %d clients, ms (%s; median of %d runs of %d rounds each; %d messages in INBOX)\n", latencyClients, how, runs, latencyRounds, latencyMessages)
	fmt.Fprintf(sb, "%-8s", "command")
	for _, q := range []string{"p50", "p90"} {
		for _, s := range sides {
			fmt.Fprintf(sb, " %16s", s.name+" "+q)
		}
	}
	sb.WriteString("\n")
	for _, c := range latencyCmds {
		if c == "LOGIN" && !relogin {
			continue
		}
		fmt.Fprintf(sb, "%-8s", c)
		for _, s := range sides {
			fmt.Fprintf(sb, " %16s", ms(median3(s.p50[c])))
		}
		for _, s := range sides {
			fmt.Fprintf(sb, " %16s", ms(median3(s.p90[c])))
		}
		sb.WriteString("\n")
	}
	fmt.Fprintf(sb, "%-8s", "CPU/rnd")
	for _, s := range sides {
		if s.cpu == nil {
			fmt.Fprintf(sb, " %16s", "-")
		} else {
			fmt.Fprintf(sb, " %16s", ms(median3(s.roundCPU)))
		}
	}
	sb.WriteString("  (server CPU per client round, ms: whole process(es), user + system)\n")
	load := func(name string, v func(s *latencySide) []float64, format, what string) {
		fmt.Fprintf(sb, "%-8s", name)
		for _, s := range sides {
			if f := v(s); len(f) == 0 {
				fmt.Fprintf(sb, " %16s", "-")
			} else {
				fmt.Fprintf(sb, " %16s", fmt.Sprintf(format, medianF(f)))
			}
		}
		sb.WriteString("  (" + what + ")\n")
	}
	load("rounds/s", func(s *latencySide) []float64 { return s.roundsPerSec }, "%.0f", "client rounds served per second of the rounds' wall time, all clients: the load each server took")
	load("cmds/s", func(s *latencySide) []float64 { return s.cmdsPerSec }, "%.0f", "commands answered per second of it")
	load("cores", func(s *latencySide) []float64 { return s.cores }, "%.2f", "server CPU in the rounds per second of them: cores busy")
	sb.WriteString(latencyGoal(sides, relogin) + "\n")
	v := verdict(sides, relogin, pace)
	sb.WriteString(v.line() + "\n\n")
	return v
}

// latencyVerdict says, for one table (one load), which of Mailferry
// (sides[0]) and Dovecot had the lower p50 of each command.
type latencyVerdict struct {
	load string // the table's load, in words
	// Each server's rounds per second (medians), and, for a paced table,
	// the servers that served under latencyKeptUp of the offered rate.
	mfRate, dvRate float64
	behind         []string
	cmds           []string
	faster         []string // per cmds: "Mailferry", "Dovecot" or "equal"
	mf, dv         []time.Duration
}

// verdict compares Mailferry's and Dovecot's p50 of each command of one
// table at its precision (0.1 ms); without a Dovecot side it compares
// nothing.
func verdict(sides []*latencySide, relogin bool, pace time.Duration) latencyVerdict {
	v := latencyVerdict{load: "closed loop, one LOGIN per client"}
	switch {
	case relogin:
		v.load = "closed loop, a LOGIN per round"
	case pace > 0:
		v.load = fmt.Sprintf("paced %v (%.0f rounds/s offered)", pace, latencyClients/pace.Seconds())
	}
	mf, dv := sides[0], sideNamed(sides, "Dovecot")
	if dv == nil {
		return v
	}
	v.mfRate, v.dvRate = medianF(mf.roundsPerSec), medianF(dv.roundsPerSec)
	if pace > 0 {
		offered := latencyClients / pace.Seconds()
		for _, s := range []*latencySide{mf, dv} {
			if medianF(s.roundsPerSec) < latencyKeptUp*offered {
				v.behind = append(v.behind, s.name)
			}
		}
	}
	for _, c := range latencyCmds {
		if c == "LOGIN" && !relogin {
			continue
		}
		m, d := median3(mf.p50[c]), median3(dv.p50[c])
		f := "equal"
		if tenths(m) < tenths(d) {
			f = "Mailferry"
		} else if tenths(m) > tenths(d) {
			f = "Dovecot"
		}
		v.cmds = append(v.cmds, c)
		v.faster = append(v.faster, f)
		v.mf = append(v.mf, m)
		v.dv = append(v.dv, d)
	}
	return v
}

// line is the verdict line under a table: per command, which server's
// p50 is lower, with both, and the load each took.
func (v latencyVerdict) line() string {
	if len(v.cmds) == 0 {
		return "faster (p50): no Dovecot side"
	}
	parts := make([]string, len(v.cmds))
	for i, c := range v.cmds {
		parts[i] = fmt.Sprintf("%s %s (%s / %s)", c, v.faster[i], ms(v.mf[i]), ms(v.dv[i]))
	}
	s := fmt.Sprintf("faster (p50 Mailferry / Dovecot, ms) %s, at %.0f / %.0f rounds/s: %s", v.load, v.mfRate, v.dvRate, strings.Join(parts, ", "))
	if len(v.behind) > 0 {
		s += fmt.Sprintf("; %s served under %.0f%% of the offered rate: not at the same load", strings.Join(v.behind, " and "), latencyKeptUp*100)
	}
	return s
}

// verdictTable writes the verdicts of every table: per load, per
// command, the faster server.
func verdictTable(sb *strings.Builder, vs []latencyVerdict) {
	var cmds []string
	for _, c := range latencyCmds {
		for _, v := range vs {
			if slices.Contains(v.cmds, c) && !slices.Contains(cmds, c) {
				cmds = append(cmds, c)
			}
		}
	}
	if len(cmds) == 0 {
		return
	}
	sb.WriteString("verdict: the server with the lower p50 (MF Mailferry, DV Dovecot, = equal at 0.1 ms), per load (rounds/s Mailferry / Dovecot) and command\n")
	fmt.Fprintf(sb, "%-60s", "load")
	for _, c := range cmds {
		fmt.Fprintf(sb, " %8s", c)
	}
	sb.WriteString("\n")
	short := map[string]string{"Mailferry": "MF", "Dovecot": "DV", "equal": "="}
	for _, v := range vs {
		load := fmt.Sprintf("%s, %.0f / %.0f", v.load, v.mfRate, v.dvRate)
		if len(v.behind) > 0 {
			load += " (behind)"
		}
		fmt.Fprintf(sb, "%-60s", load)
		for _, c := range cmds {
			f := "-"
			if i := slices.Index(v.cmds, c); i >= 0 {
				f = short[v.faster[i]]
			}
			fmt.Fprintf(sb, " %8s", f)
		}
		sb.WriteString("\n")
	}
	sb.WriteString("\n")
}

// latencyGoal is issue 15's goal line for one table: no command's p50 on
// Mailferry (sides[0]) slower than on Dovecot (the side so named), at the
// table's precision (0.1 ms), and which commands miss it, by how much.
func latencyGoal(sides []*latencySide, relogin bool) string {
	mf, dv := sides[0], sideNamed(sides, "Dovecot")
	if dv == nil {
		return "goal (p50 no slower than Dovecot's): no Dovecot side"
	}
	var slower []string
	for _, c := range latencyCmds {
		if c == "LOGIN" && !relogin {
			continue
		}
		m, d := median3(mf.p50[c]), median3(dv.p50[c])
		if tenths(m) > tenths(d) {
			slower = append(slower, fmt.Sprintf("%s %s > %s", c, ms(m), ms(d)))
		}
	}
	if len(slower) == 0 {
		return "goal (p50 no slower than Dovecot's): holds"
	}
	line := "goal (p50 no slower than Dovecot's): not met: " + strings.Join(slower, ", ")
	// A latency compared at loads that differ says little of either
	// server: in the closed loop a faster server takes more rounds, so
	// more commands wait for a core at once. Say so, with the loads.
	if m, d := medianF(mf.roundsPerSec), medianF(dv.roundsPerSec); m > 0 && d > 0 && math.Abs(m-d) > (1-latencyKeptUp)*max(m, d) {
		line += fmt.Sprintf(" (at unequal loads: Mailferry %.0f, Dovecot %.0f rounds/s; the paced tables compare at the same load)", m, d)
	}
	return line
}

// sideNamed is the side of sides with that name, nil if none.
func sideNamed(sides []*latencySide, name string) *latencySide {
	for _, s := range sides {
		if s.name == name {
			return s
		}
	}
	return nil
}

// tenths is d in tenths of a millisecond, rounded as ms prints it.
func tenths(d time.Duration) int64 { return (d.Microseconds() + 50) / 100 }

// cpuOps is how many of each command every client sends in a pass of
// cpuPerCommand: 10 clients x 40 = 400 commands, so that the servers'
// CPU (counted in 10 ms ticks) spans many ticks.
const cpuOps = 40

// cpuSettle is how long a CPU measurement waits after its commands, for
// the work they left to the server's background (a flag's fsync within
// 100 ms, a WAL checkpoint) to be counted with them.
const cpuSettle = 300 * time.Millisecond

// cpuPerCommand measures the server's CPU per command (whole process or
// processes, user + system, from /proc): for each command of latencyCmds,
// the 10 clients at once send cpuOps of it each, and the difference of
// s.cpu() around them, divided by their number, is that command's cost.
// LOGIN is a new connection, its greeting, LOGIN and LOGOUT; the others
// go on one logged-in connection per client with INBOX selected: SELECT
// INBOX, the FETCH of 10 messages of latencyRun, a STORE of a keyword,
// an APPEND of a 4 KiB message with \Deleted, the UID EXPUNGE of one of
// those (so the mailbox ends as it began).
func (s *latencySide) cpuPerCommand(b *testing.B, msgs []string) {
	if s.cmdCPU == nil {
		s.cmdCPU = map[string][]time.Duration{}
	}
	each := func(work func(k int)) {
		var wg sync.WaitGroup
		for k := 0; k < latencyClients; k++ {
			wg.Add(1)
			go func(k int) {
				defer wg.Done()
				work(k)
			}(k)
		}
		wg.Wait()
	}
	measure := func(name string, work func(k int)) {
		time.Sleep(cpuSettle)
		cpu0 := s.cpu()
		each(work)
		time.Sleep(cpuSettle)
		s.cmdCPU[name] = append(s.cmdCPU[name], (s.cpu()-cpu0)/(latencyClients*cpuOps))
	}
	measure("LOGIN", func(k int) {
		for i := 0; i < cpuOps; i++ {
			lc := loggedIn(b, s.addr, s.user, s.pass)
			lc.cmd("LOGOUT")
			lc.c.Close()
		}
	})
	conns := make([]*latencyClient, latencyClients)
	each(func(k int) {
		conns[k] = loggedIn(b, s.addr, s.user, s.pass)
		conns[k].cmd("SELECT INBOX")
	})
	defer func() {
		for _, lc := range conns {
			if lc != nil {
				lc.c.Close()
			}
		}
	}()
	measure("SELECT", func(k int) {
		for i := 0; i < cpuOps; i++ {
			conns[k].cmd("SELECT INBOX")
		}
	})
	measure("FETCH", func(k int) {
		rnd := rand.New(rand.NewSource(int64(k)))
		for i := 0; i < cpuOps; i++ {
			first := 1 + rnd.Intn(latencyMessages-10)
			conns[k].cmd("FETCH %d:%d (UID FLAGS RFC822.SIZE ENVELOPE BODY.PEEK[])", first, first+9)
		}
	})
	measure("STORE", func(k int) {
		rnd := rand.New(rand.NewSource(int64(k)))
		for i := 0; i < cpuOps; i++ {
			conns[k].cmd(`STORE %d +FLAGS.SILENT ($Bench%d)`, 1+rnd.Intn(latencyMessages), k)
		}
	})
	uids := make([][]string, latencyClients)
	measure("APPEND", func(k int) {
		for i := 0; i < cpuOps; i++ {
			m := msgs[(k+i)%len(msgs)]
			tagged, _ := conns[k].cmd("APPEND INBOX (\\Deleted) {%d+}\r\n%s", len(m), m)
			uid := appendUIDRe.FindStringSubmatch(tagged)
			if uid == nil {
				b.Errorf("APPEND without APPENDUID: %s", tagged)
				return
			}
			uids[k] = append(uids[k], uid[1])
		}
	})
	measure("EXPUNGE", func(k int) {
		for _, uid := range uids[k] {
			conns[k].cmd("UID EXPUNGE %s", uid)
		}
	})
	each(func(k int) { conns[k].cmd("LOGOUT") })
}

// cpuTable writes the medians of the sides' cpuPerCommand passes, in µs
// per command.
func cpuTable(sb *strings.Builder, sides []*latencySide, passes int) {
	fmt.Fprintf(sb, "server CPU per command, µs (whole process(es), user + system, from /proc; %d clients at once, %d commands each; median of %d passes)\n", latencyClients, cpuOps, passes)
	fmt.Fprintf(sb, "%-8s", "command")
	for _, s := range sides {
		if s.cpu != nil {
			fmt.Fprintf(sb, " %16s", s.name)
		}
	}
	sb.WriteString("\n")
	for _, c := range latencyCmds {
		fmt.Fprintf(sb, "%-8s", c)
		for _, s := range sides {
			if s.cpu != nil {
				fmt.Fprintf(sb, " %16d", median3(s.cmdCPU[c]).Microseconds())
			}
		}
		sb.WriteString("\n")
	}
}

// BenchmarkLatency10Clients prints the latency (p50, p90) of LOGIN, SELECT,
// FETCH, STORE, APPEND and EXPUNGE under a load of 10 clients, for
// Mailferry (a `mailferry serve` process, see mailferrySides) and for the
// Dovecot fixture (core/oldserver/oldtest, mail_fsync optimized, plaintext
// passwords) serving the same 2,000 messages, run by turns three times,
// once both read every message (readAll); each figure is the median of
// the three runs. Beside the latencies it prints each server's CPU (all
// its processes, from /proc) per client round of those runs, and per
// command in passes of cpuPerCommand. Mailferry hashes passwords with
// argon2id on purpose, so its LOGIN is slower by design, and under load
// the hashing takes CPU from the other commands: a second table has each
// client log in once and do all its rounds on one connection. Both are
// closed loops (each round right after the one before), where a server
// fast at some commands gets more of the others at once; paced tables
// pace the one-connection rounds (MAILFERRY_LATENCY_PACE: latencyPace and
// "auto", latencyAutoShare of the slower server's closed-loop rate) so
// that both servers get the same offered load. Each table gives the load
// each server took (rounds and commands per second, cores busy) and a
// verdict per command; a verdict table per load ends the output. Needs the
// Dovecot fixture (root, dovecot-imapd); it skips without it unless
// MAILFERRY_REQUIRE_OLDSERVER=1. It prints its tables on stdout;
// MAILFERRY_LATENCY_OUT=file writes them to file too.
func BenchmarkLatency10Clients(b *testing.B) {
	dv := dovecotSide(b)
	sides := mailferrySides(b, latencyMessages)
	sides = append(sides[:1], append([]*latencySide{dv}, sides[1:]...)...)
	msgs := latencyMessages4K()
	b.ResetTimer()
	var sb strings.Builder
	paces, err := latencyPaces(os.Getenv("MAILFERRY_LATENCY_PACE"))
	if err != nil {
		b.Fatal(err)
	}
	type mode struct {
		relogin bool
		pace    time.Duration
		auto    bool
	}
	modes := []mode{{true, 0, false}, {false, 0, false}}
	for _, p := range paces {
		modes = append(modes, mode{false, p, p == 0})
	}
	var verdicts []latencyVerdict
	closedRate := 0.0 // the slowest side's rounds/s in the closed loop, one LOGIN per client
	for _, mode := range modes {
		relogin := mode.relogin
		if mode.auto {
			if closedRate <= 0 {
				b.Fatal("MAILFERRY_LATENCY_PACE auto: no closed-loop rate measured")
			}
			mode.pace = autoPace(closedRate)
		}
		for _, s := range sides {
			s.reset()
		}
		for i := 0; i < b.N*latencyRuns; i++ {
			for _, s := range byTurns(sides, i) {
				s.runLatency(b, msgs, relogin, mode.pace)
			}
		}
		verdicts = append(verdicts, latencyTable(&sb, sides, relogin, mode.pace, latencyRuns*b.N))
		if !relogin && mode.pace == 0 {
			for _, s := range sides {
				if r := medianF(s.roundsPerSec); s.cpu != nil && (closedRate == 0 || r < closedRate) {
					closedRate = r
				}
			}
		}
		if relogin {
			for _, s := range sides[:2] {
				for _, c := range latencyCmds {
					b.ReportMetric(float64(median3(s.p50[c]).Microseconds())/1000, map[string]string{"Mailferry": "mf", "Dovecot": "dv"}[s.name]+"-"+strings.ToLower(c)+"-p50-ms")
				}
			}
		}
	}
	for pass := 0; pass < latencyRuns; pass++ {
		for _, s := range byTurns(sides, pass) {
			if s.cpu != nil {
				s.cpuPerCommand(b, msgs)
			}
		}
	}
	cpuTable(&sb, sides, latencyRuns)
	sb.WriteString("\n")
	verdictTable(&sb, verdicts)
	printTables(b, sb.String())
}

// latencyPaces reads MAILFERRY_LATENCY_PACE: the paced tables' time
// between a client's rounds, comma-separated, each a duration or "auto"
// (returned as 0): latencyPace and auto when v is empty, none for "0".
func latencyPaces(v string) ([]time.Duration, error) {
	if v == "" {
		v = latencyPace.String() + ",auto"
	}
	var paces []time.Duration
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "auto" {
			paces = append(paces, 0)
			continue
		}
		p, err := time.ParseDuration(f)
		if err != nil {
			return nil, fmt.Errorf("MAILFERRY_LATENCY_PACE: %q is neither a duration nor auto: %v", f, err)
		}
		if p < 0 {
			return nil, fmt.Errorf("MAILFERRY_LATENCY_PACE: %v is negative", p)
		}
		if p > 0 {
			paces = append(paces, p)
		}
	}
	return paces, nil
}

// autoPace is the "auto" paced table's pace: each client's rounds so far
// apart that the clients together offer latencyAutoShare of rate, the
// slowest server's closed-loop rounds per second (one LOGIN per client),
// to the millisecond.
func autoPace(rate float64) time.Duration {
	p := time.Duration(float64(latencyClients) / (latencyAutoShare * rate) * float64(time.Second))
	return max(p.Round(time.Millisecond), time.Millisecond)
}

// dovecotSide starts the Dovecot fixture (mail_fsync optimized; it skips
// the benchmark without root and dovecot-imapd unless
// MAILFERRY_REQUIRE_OLDSERVER=1) with the latency benchmarks' messages
// (seedDovecot), each read once (readAll).
func dovecotSide(b *testing.B) *latencySide {
	dv := oldtest.Start(b, &oldtest.Options{Fsync: "optimized"})
	var dvUser, dvPass string
	for u, p := range dv.Users {
		if dvUser == "" || u < dvUser {
			dvUser, dvPass = u, p
		}
	}
	seedDovecot(b, dv.IMAPAddr, dvUser, dvPass, latencyMessages)
	readAll(b, dv.IMAPAddr, dvUser, dvPass)
	return &latencySide{name: "Dovecot", addr: dv.IMAPAddr, user: dvUser, pass: dvPass, cpu: dv.CPU}
}

// byTurns is the order of the sides in their i-th run: as listed, then
// the other way round, and so on, so that no side always starts beside
// what the one before it left to its background (fsyncs, checkpoints)
// or in caches that one filled.
func byTurns(sides []*latencySide, i int) []*latencySide {
	if i%2 == 0 {
		return sides
	}
	r := slices.Clone(sides)
	slices.Reverse(r)
	return r
}

// printTables prints a benchmark's tables on stdout (b.Log would cut them
// to its first lines) and, with MAILFERRY_LATENCY_OUT=file, to that file.
func printTables(b *testing.B, tables string) {
	fmt.Printf("--- %s (b.N=%d)\n%s", b.Name(), b.N, tables)
	if path := os.Getenv("MAILFERRY_LATENCY_OUT"); path != "" {
		os.WriteFile(path, []byte(tables), 0o644)
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
// APPEND and EXPUNGE at once, against the serve process of mailferrySides
// (and its "before" and "in-process" sides when asked, by turns). It
// reports the serve process's p50 and p90 of each command over b.N runs,
// and prints every side's medians, CPU per round and, after the runs,
// CPU per command (cpuPerCommand, three passes by turns); for profiling
// (MAILFERRY_LATENCY_PROFILE, MAILFERRY_LATENCY_TRACE) and A/B runs
// (MAILFERRY_LATENCY_BEFORE) where the Dovecot fixture cannot run.
func BenchmarkLatencyMailferry(b *testing.B) {
	sides := mailferrySides(b, latencyMessages)
	msgs := latencyMessages4K()
	all := map[string][]time.Duration{}
	for _, s := range sides {
		s.reset()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, s := range byTurns(sides, i) {
			got := s.runLatency(b, msgs, false, 0)
			if s == sides[0] {
				for c, ds := range got {
					all[c] = append(all[c], ds...)
				}
			}
		}
	}
	b.StopTimer()
	for _, c := range latencyCmds[1:] {
		b.ReportMetric(float64(percentile(all[c], 50).Microseconds())/1000, strings.ToLower(c)+"-p50-ms")
		b.ReportMetric(float64(percentile(all[c], 90).Microseconds())/1000, strings.ToLower(c)+"-p90-ms")
	}
	for pass := 0; pass < latencyRuns; pass++ {
		for _, s := range byTurns(sides, pass) {
			if s.cpu != nil {
				s.cpuPerCommand(b, msgs)
			}
		}
	}
	var sb strings.Builder
	latencyTable(&sb, sides, false, 0, b.N)
	cpuTable(&sb, sides, latencyRuns)
	printTables(b, sb.String())
}
