package main_test

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailferry/core/oldserver/oldtest"
)

// BenchmarkMigratePinnedAB is a diagnostic for issue 17's pinned wall
// goal, not part of `make bench`: the 964 MB mailbox of
// BenchmarkMigrateProcess copied pinned only (Dovecot on CPU 0, the child
// on CPU 1), by several binaries (or one binary under several
// environments) in turns within each run, so that a change of a few per
// cent is told by medians of interleaved runs on a shared machine.
// Besides wait4's figures, each child runs under `perf stat` where perf
// works: task-clock (the child's CPU alone), context switches, CPU
// migrations and page faults, each a count that moves less with the
// machine's load than CPU time does; and the old server's CPU in the run
// (Dovecot's processes', from its master's reaped children's times), for
// the floor and for each copy: how busy the copy kept the old server's
// core (the floor keeps it busy nearly all the time).
//
//	MAILFERRY_REQUIRE_OLDSERVER=1 MAILFERRY_PINNED_AB='/tmp/before,/tmp/after,/tmp/after@GOMAXPROCS=1' \
//	  go test -run '^$' -bench MigratePinnedAB -benchtime 1x ./cmd/mailferry
//
// MAILFERRY_PINNED_AB: comma-separated binaries (build them with -tags
// nogui), each optionally followed by @NAME=VALUE, environment variables
// given to that child only (GOMAXPROCS=1, GODEBUG=...; several:
// @A=1@B=2; TMPDIR=DIR puts its data directory there, set in this
// process while the child runs); empty: this tree's binary.
// MAILFERRY_PINNED_AB_RUNS: runs (3); each run starts one variant further
// on (turnOrder). _SMALL=1: the 241 MB mailbox instead. _PERF: the perf
// stat events (default
// task-clock,context-switches,cpu-migrations,page-faults; "-": no perf).
// _WRAP: a command run instead of perf stat, with %d %d the binary's
// index and the run (e.g. "perf record -e sched:sched_switch -g -o
// /tmp/sw.%d.%d.data": what each thread was doing when it left the CPU).
func BenchmarkMigratePinnedAB(b *testing.B) {
	if runtime.NumCPU() < 2 || !hasTaskset() {
		b.Skip("pinning needs two CPUs and taskset")
	}
	type variant struct{ bin, env string }
	var vs []variant
	for _, s := range strings.Split(os.Getenv("MAILFERRY_PINNED_AB"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			bin, env, _ := strings.Cut(s, "@")
			vs = append(vs, variant{bin, env})
		}
	}
	if len(vs) == 0 {
		vs = []variant{{bin: mailferryBin}}
	}
	runs := 3
	if v, err := strconv.Atoi(os.Getenv("MAILFERRY_PINNED_AB_RUNS")); err == nil && v > 0 {
		runs = v
	}
	events := os.Getenv("MAILFERRY_PINNED_AB_PERF")
	if events == "" {
		events = "task-clock,context-switches,cpu-migrations,page-faults"
	}
	if _, err := exec.LookPath("perf"); err != nil || exec.Command("perf", "stat", "-e", "task-clock", "true").Run() != nil {
		events = "-"
	}
	w := migrateWorkload{"20,000 msgs", "bob", []int{8000, 6000, 4000, 2000}}
	if os.Getenv("MAILFERRY_PINNED_AB_SMALL") != "" {
		w = migrateWorkload{"5,000 msgs", "alice", []int{2000, 1500, 1000, 500}}
	}
	old := oldtest.Start(b, &oldtest.Options{Fsync: "never"})
	b.Cleanup(func() { os.RemoveAll(filepath.Join(old.StateDir, "mail")) })
	total := seedWorkload(b, old, w)
	addr, pass := old.Address(b, w.user)
	migrateFloor(b, old, w.user, total, false) // warm the old server's caches
	statDir := b.TempDir()
	type figs struct {
		runs []migrateRun
		perf []map[string]float64
	}
	res := make([]figs, len(vs))
	var floors []time.Duration
	wrapWas, wrapSet := os.LookupEnv("MAILFERRY_MIGRATE_BENCH_WRAP")
	defer func() {
		if wrapSet {
			os.Setenv("MAILFERRY_MIGRATE_BENCH_WRAP", wrapWas)
		} else {
			os.Unsetenv("MAILFERRY_MIGRATE_BENCH_WRAP")
		}
	}()
	var oldCPUFloor []time.Duration
	for i := range runs {
		c0 := oldServerCPU(old)
		floors = append(floors, migrateFloor(b, old, w.user, total, true))
		oldCPUFloor = append(oldCPUFloor, oldServerCPU(old)-c0)
		fmt.Printf("  run %d: pinned floor %.2f s, Dovecot's CPU %.2f s\n", i+1, floors[i].Seconds(), oldCPUFloor[i].Seconds())
		for _, j := range turnOrder(len(vs), i) {
			v := vs[j]
			stat := filepath.Join(statDir, fmt.Sprintf("stat.%d.%d", j, i))
			wrap := ""
			switch {
			case os.Getenv("MAILFERRY_PINNED_AB_WRAP") != "":
				wrap = fmt.Sprintf(os.Getenv("MAILFERRY_PINNED_AB_WRAP"), j, i)
			case events != "-":
				wrap = "perf stat -x , -e " + events + " -o " + stat
			}
			os.Setenv("MAILFERRY_MIGRATE_BENCH_WRAP", wrap)
			restore := setEnvVar(v.env)
			c0 := oldServerCPU(old)
			r := migrateOnce(b, v.bin, old, addr, pass, total, true)
			r.oldCPU = oldServerCPU(old) - c0
			restore()
			p := readPerfStat(stat)
			res[j].runs = append(res[j].runs, r)
			res[j].perf = append(res[j].perf, p)
			fmt.Printf("  run %d: %s%s: %s; CPU %.2f s, Dovecot's %.2f s%s\n", i+1, v.bin, atEnv(v.env), r, (r.user + r.sys).Seconds(),
				r.oldCPU.Seconds(), perfLine(p))
		}
	}
	floor := median(floors)
	fmt.Printf("pinned, %s (%.0f MB), medians of %d runs; floor %.2f s, Dovecot's CPU in it %.2f s\n", w.name, float64(total)/1e6, runs,
		floor.Seconds(), median(oldCPUFloor).Seconds())
	for j, v := range vs {
		m := medianRun(res[j].runs)
		med := map[string]float64{}
		for _, p := range res[j].perf {
			for name := range p {
				var vals []float64
				for _, q := range res[j].perf {
					vals = append(vals, q[name])
				}
				slices.Sort(vals)
				med[name] = vals[len(vals)/2]
			}
		}
		var oc []time.Duration
		for _, r := range res[j].runs {
			oc = append(oc, r.oldCPU)
		}
		fmt.Printf("  %s%s: wall %.2f s = %.2fx the floor, user %.2f + sys %.2f s = %.2f s CPU per GB, peak RSS %.1f MB, Dovecot's CPU %.2f s%s\n",
			v.bin, atEnv(v.env), m.wall.Seconds(), m.wall.Seconds()/floor.Seconds(), m.user.Seconds(), m.sys.Seconds(),
			(m.user+m.sys).Seconds()/(float64(total)/1e9), float64(m.maxRSSKiB)*1024/1e6, median(oc).Seconds(), perfLine(med))
	}
}

// oldServerCPU is the CPU time (user + system) of the old server's
// processes that ended so far: Dovecot's master forks an imap process per
// connection (and imap-login, auth), and the kernel adds each one's CPU to
// the master's children's times when the master reaps it. It first waits
// for the processes of the connections just closed to end and be reaped.
// 0 where /proc is not there.
func oldServerCPU(old *oldtest.Server) time.Duration {
	time.Sleep(300 * time.Millisecond)
	pidb, err := os.ReadFile(filepath.Join(old.StateDir, "run", "master.pid"))
	if err != nil {
		return 0
	}
	st, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pidb)) + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+2:]))
	if len(f) < 15 {
		return 0
	}
	cu, _ := strconv.ParseInt(f[13], 10, 64) // cutime, in clock ticks (USER_HZ, 100 on Linux)
	cs, _ := strconv.ParseInt(f[14], 10, 64) // cstime
	return time.Duration(cu+cs) * 10 * time.Millisecond
}

// turnOrder is the order the variants run in, in run i: each run starts
// one variant further on, so that over as many runs as variants each one
// runs first after the floor once. The one run first was the slower of
// two equal ones more often than not (README, "mailferry migrate, the
// whole process", session 18).
func turnOrder(n, i int) []int {
	order := make([]int, n)
	for k := range order {
		order[k] = (i + k) % n
	}
	return order
}

// setEnvVar sets the variables of "NAME=VALUE", or of several joined by
// "@" (nothing for ""), and returns what sets them back.
func setEnvVar(kvs string) (restore func()) {
	if a, b, ok := strings.Cut(kvs, "@"); ok {
		ra := setEnvVar(a)
		rb := setEnvVar(b)
		return func() { rb(); ra() }
	}
	name, val, ok := strings.Cut(kvs, "=")
	if !ok {
		return func() {}
	}
	was, set := os.LookupEnv(name)
	os.Setenv(name, val)
	return func() {
		if set {
			os.Setenv(name, was)
		} else {
			os.Unsetenv(name)
		}
	}
}

// Each variant runs first after the floor once in as many runs as there
// are variants, every variant once in each run.
func TestTurnOrder(t *testing.T) {
	for n := 1; n <= 4; n++ {
		first := map[int]int{}
		for i := range n {
			order := turnOrder(n, i)
			sorted := slices.Sorted(slices.Values(order))
			for k := range n {
				if sorted[k] != k {
					t.Fatalf("n %d run %d: order %v is not each variant once", n, i, order)
				}
			}
			first[order[0]]++
		}
		if len(first) != n {
			t.Errorf("n %d: runs started with %v, want each variant once", n, first)
		}
	}
}

// A variant's variables: several joined by "@", each set for its run and
// set back after it (unset where it was not set).
func TestSetEnvVar(t *testing.T) {
	t.Setenv("MAILFERRY_TEST_ENV_A", "was")
	os.Unsetenv("MAILFERRY_TEST_ENV_B")
	restore := setEnvVar("MAILFERRY_TEST_ENV_A=1@MAILFERRY_TEST_ENV_B=x=y")
	if a, b := os.Getenv("MAILFERRY_TEST_ENV_A"), os.Getenv("MAILFERRY_TEST_ENV_B"); a != "1" || b != "x=y" {
		t.Fatalf("set: A=%q B=%q, want 1 and x=y", a, b)
	}
	restore()
	if a := os.Getenv("MAILFERRY_TEST_ENV_A"); a != "was" {
		t.Errorf("A set back to %q, want was", a)
	}
	if _, set := os.LookupEnv("MAILFERRY_TEST_ENV_B"); set {
		t.Error("B still set")
	}
}

func atEnv(env string) string {
	if env == "" {
		return ""
	}
	return " (" + env + ")"
}

// readPerfStat reads the counts of `perf stat -x ,` (event name to
// value); none when the file is not there.
func readPerfStat(file string) map[string]float64 {
	m := map[string]float64{}
	text, err := os.ReadFile(file)
	if err != nil {
		return m
	}
	for line := range strings.Lines(string(text)) {
		f := strings.Split(strings.TrimSpace(line), ",")
		if len(f) < 3 || strings.HasPrefix(line, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			m[f[2]] = v
		}
	}
	return m
}

func perfLine(p map[string]float64) string {
	var s strings.Builder
	for _, n := range slices.Sorted(maps.Keys(p)) {
		fmt.Fprintf(&s, ", %s %.0f", n, p[n])
	}
	return s.String()
}
