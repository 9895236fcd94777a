package main_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mailferry/core/oldserver/oldtest"
)

// The whole-process figures of issue 17 ("Efficiency", "Wall time"):
// `mailferry migrate` of one account, the real binary run as a child,
// its own CPU (user + system) and peak RSS from wait4's rusage, beside
// the raw-download floor measured in the same run. Two mailboxes, seeded
// once per benchmark process with oldtest.MixedSize (about 51 kB a
// message on average): 5,000 messages (about 257 MB) and 20,000 (about
// 1.07 GB), each in four folders. Every figure is the median of three
// runs; each run is done twice, unpinned and pinned (Dovecot's processes
// on CPU 0, Mailferry and the floor's reader on CPU 1, as two machines
// would have it).
//
// Goals: at most 3 s of Mailferry CPU per GB copied, peak RSS at most
// 64 MB (both sizes), and the 1 GB copy's pinned wall time within 1.5x the
// pinned floor.
//
// Diagnostics, by environment variable (MAILFERRY_MIGRATE_BENCH_...):
// SMALL=1 the 5,000 messages only; RUNS=n runs instead of 3; PROFILE=file
// a CPU profile of the child (the last run's; MAILFERRY_CPUPROFILE);
// TRACE=file a Go execution trace of the child (the last run's;
// MAILFERRY_TRACE: what each goroutine waited on);
// LOG=file the last run's output; WRAP="cmd args" runs the child under a
// command (e.g. "strace -c -f -o FILE", "perf record -g -o FILE");
// BEFORE=binary also runs that binary in every run, unpinned and pinned,
// and prints both medians: a change measured against the build from
// before it (build it with -tags nogui, as this benchmark builds its own:
// the GUI build's peak RSS is about 14 MB higher).

// migrateRun is one `mailferry migrate` of a mailbox, or one floor.
type migrateRun struct {
	wall, user, sys time.Duration
	maxRSSKiB       int64
	minflt          int64         // minor page faults: costly on a paravirtualized VM
	oldCPU          time.Duration // the old server's CPU in the run (BenchmarkMigratePinnedAB)
}

// migrateWorkload is a mailbox of the benchmark.
type migrateWorkload struct {
	name   string // e.g. "5,000 msgs"
	user   string // the fixture's user holding it
	counts []int  // messages per folder of migrateFolders
}

var migrateFolders = []string{"INBOX", "Archive", "Sent", "Lists"}

func BenchmarkMigrateProcess(b *testing.B) {
	workloads := []migrateWorkload{
		{"5,000 msgs", "alice", []int{2000, 1500, 1000, 500}},
		{"20,000 msgs", "bob", []int{8000, 6000, 4000, 2000}},
	}
	if os.Getenv("MAILFERRY_MIGRATE_BENCH_SMALL") != "" { // a quick look: the small mailbox only
		workloads = workloads[:1]
	}
	runs := 3
	if v, err := strconv.Atoi(os.Getenv("MAILFERRY_MIGRATE_BENCH_RUNS")); err == nil && v > 0 {
		runs = v // for a quick look; the figures are medians of 3
	}
	old := oldtest.Start(b, &oldtest.Options{Fsync: "never"})
	// The seeded gigabyte goes before the fixture stops: its stop.sh has a
	// minute for everything, too little on a busy machine.
	b.Cleanup(func() { os.RemoveAll(filepath.Join(old.StateDir, "mail")) })
	type result struct {
		w                  migrateWorkload
		bytes              int64
		floor, floorPinned time.Duration
		runs, pinned       []migrateRun
		pinnedOK           bool
	}
	var results []result
	for _, w := range workloads {
		// Seeded once for every run of this process: the Maildir stays.
		t0 := time.Now()
		total := seedWorkload(b, old, w)
		b.Logf("%s: seeded %.1f MB in %v", w.name, float64(total)/1e6, time.Since(t0).Round(time.Second))
		addr, pass := old.Address(b, w.user)
		migrateFloor(b, old, w.user, total, false) // warm the old server's caches
		r := result{w: w, bytes: total, pinnedOK: runtime.NumCPU() >= 2 && hasTaskset()}
		var floors, floorsPinned []time.Duration
		var before, beforePinned []migrateRun
		beforeBin := os.Getenv("MAILFERRY_MIGRATE_BENCH_BEFORE")
		for i := range runs {
			if beforeBin != "" {
				// A change measured in one run: the binary from before it,
				// between the floor and this tree's binary, unpinned and
				// (below) pinned.
				before = append(before, migrateOnce(b, beforeBin, old, addr, pass, total, false))
				fmt.Printf("  %s run %d: before: %s\n", w.name, i+1, before[i])
			}
			floors = append(floors, migrateFloor(b, old, w.user, total, false))
			r.runs = append(r.runs, migrateOnce(b, mailferryBin, old, addr, pass, total, false))
			if r.pinnedOK {
				if beforeBin != "" {
					beforePinned = append(beforePinned, migrateOnce(b, beforeBin, old, addr, pass, total, true))
					fmt.Printf("  %s run %d: before, pinned: %s\n", w.name, i+1, beforePinned[i])
				}
				floorsPinned = append(floorsPinned, migrateFloor(b, old, w.user, total, true))
				r.pinned = append(r.pinned, migrateOnce(b, mailferryBin, old, addr, pass, total, true))
			}
			// Printed, not logged: go test keeps ten lines of a benchmark's log.
			fmt.Printf("  %s run %d: floor %v, migrate %s; pinned: floor %v, migrate %s\n", w.name, i+1,
				floors[i].Round(time.Millisecond), r.runs[i],
				at(floorsPinned, i).Round(time.Millisecond), atRun(r.pinned, i))
		}
		r.floor, r.floorPinned = median(floors), median(floorsPinned)
		if len(before) > 0 {
			m, n := medianRun(before), medianRun(r.runs)
			fmt.Printf("  %s unpinned, medians: before (%s) CPU %.2f s, wall %.2f s; after CPU %.2f s, wall %.2f s\n", w.name,
				beforeBin, (m.user + m.sys).Seconds(), m.wall.Seconds(), (n.user + n.sys).Seconds(), n.wall.Seconds())
		}
		if len(beforePinned) > 0 {
			m, n := medianRun(beforePinned), medianRun(r.pinned)
			fmt.Printf("  %s pinned, medians: before CPU %.2f s, wall %.2f s = %.2fx the floor; after CPU %.2f s, wall %.2f s = %.2fx\n", w.name,
				(m.user + m.sys).Seconds(), m.wall.Seconds(), m.wall.Seconds()/r.floorPinned.Seconds(),
				(n.user + n.sys).Seconds(), n.wall.Seconds(), n.wall.Seconds()/r.floorPinned.Seconds())
		}
		results = append(results, r)
	}
	fmt.Printf("mailferry migrate, whole process (wait4 rusage), medians of %d runs; floor: raw download, one connection, bytes dropped\n", runs)
	for _, r := range results {
		gb := float64(r.bytes) / 1e9
		for _, v := range []struct {
			how   string
			runs  []migrateRun
			floor time.Duration
		}{{"unpinned", r.runs, r.floor}, {"pinned (Dovecot CPU 0, Mailferry CPU 1)", r.pinned, r.floorPinned}} {
			if len(v.runs) == 0 {
				fmt.Printf("  %s, %.0f MB, %s: not measured (one CPU, or no taskset)\n", r.w.name, float64(r.bytes)/1e6, v.how)
				continue
			}
			m := medianRun(v.runs)
			cpu := (m.user + m.sys).Seconds()
			fmt.Printf("  %s, %.0f MB, %s: wall %.2f s, floor %.2f s = %.2fx; user %.2f s + sys %.2f s = %.2f s CPU per GB; peak RSS %.1f MB\n",
				r.w.name, float64(r.bytes)/1e6, v.how, m.wall.Seconds(), v.floor.Seconds(), m.wall.Seconds()/v.floor.Seconds(),
				m.user.Seconds(), m.sys.Seconds(), cpu/gb, float64(m.maxRSSKiB)*1024/1e6)
		}
		m := medianRun(r.runs)
		cpuPerGB := (m.user + m.sys).Seconds() / gb
		rss := float64(m.maxRSSKiB) * 1024 / 1e6
		fmt.Printf("  goal CPU <= 3 s per GB (%s): %.2f s: %s; goal peak RSS <= 64 MB: %.1f MB: %s\n",
			r.w.name, cpuPerGB, holds(cpuPerGB <= 3), rss, holds(rss <= 64))
		if r.w.user == "bob" {
			if len(r.pinned) == 0 {
				fmt.Printf("  goal pinned wall <= 1.5x floor: not measured (one CPU, or no taskset)\n")
			} else {
				p := medianRun(r.pinned).wall.Seconds() / r.floorPinned.Seconds()
				fmt.Printf("  goal pinned wall <= 1.5x floor (%s): %.2fx: %s (unpinned %.2fx)\n",
					r.w.name, p, holds(p <= 1.5), m.wall.Seconds()/r.floor.Seconds())
			}
		}
		b.ReportMetric(cpuPerGB, strings.ReplaceAll(r.w.user, "alice", "257MB")+"-cpu-s/GB")
		b.ReportMetric(rss, strings.ReplaceAll(r.w.user, "alice", "257MB")+"-peakRSS-MB")
	}
}

// seedWorkload seeds w's folders on the old server (oldtest.MixedSize
// messages) and returns their bytes.
func seedWorkload(b *testing.B, old *oldtest.Server, w migrateWorkload) int64 {
	var total int64
	k := 0
	for i, f := range migrateFolders {
		total += old.SeedMaildir(b, w.user, f, w.counts[i], func(j int) int { return oldtest.MixedSize(k + j) })
		k += w.counts[i]
	}
	return total
}

// hasTaskset says whether taskset (util-linux) is there to pin the child.
func hasTaskset() bool {
	_, err := exec.LookPath("taskset")
	return err == nil
}

func (r migrateRun) String() string {
	if r.wall == 0 {
		return "-"
	}
	return fmt.Sprintf("wall %.2f s user %.2f s sys %.2f s RSS %.1f MB, %d page faults", r.wall.Seconds(), r.user.Seconds(), r.sys.Seconds(), float64(r.maxRSSKiB)*1024/1e6, r.minflt)
}

func at(d []time.Duration, i int) time.Duration {
	if i < len(d) {
		return d[i]
	}
	return 0
}

func atRun(r []migrateRun, i int) migrateRun {
	if i < len(r) {
		return r[i]
	}
	return migrateRun{}
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	return d[len(d)/2]
}

// medianRun takes the median of each figure on its own.
func medianRun(runs []migrateRun) migrateRun {
	pick := func(f func(migrateRun) time.Duration) time.Duration {
		v := make([]time.Duration, len(runs))
		for i, r := range runs {
			v[i] = f(r)
		}
		return median(v)
	}
	return migrateRun{
		wall:      pick(func(r migrateRun) time.Duration { return r.wall }),
		user:      pick(func(r migrateRun) time.Duration { return r.user }),
		sys:       pick(func(r migrateRun) time.Duration { return r.sys }),
		maxRSSKiB: int64(pick(func(r migrateRun) time.Duration { return time.Duration(r.maxRSSKiB) })),
	}
}

// migrateOnce runs `mailferry migrate` of one user into a fresh data
// directory (pinned: on CPU 1, Dovecot on CPU 0) and checks that every
// byte arrived.
func migrateOnce(b *testing.B, bin string, old *oldtest.Server, addr, pass string, total int64, pinned bool) migrateRun {
	b.Helper()
	data, err := os.MkdirTemp("", "mailferry-migratebench")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(data)
	// The data directory is made and read by the binary measured, so that
	// binaries of different store schemas compare (an older one refuses
	// a newer schema).
	saved := mailferryBin
	mailferryBin = bin
	defer func() { mailferryBin = saved }()
	oh, op, _ := net.SplitHostPort(old.IMAPAddr)
	if out, stderr, code := mf(b, data, "", "domain", "migrate", "example.test", "--old", "["+oh+"]",
		"--imap-port", op, "--smtp-port", "25", "--tls", "none"); code != 0 {
		b.Fatalf("domain migrate: %s %s", out, stderr)
	}
	users := filepath.Join(data, "users.csv")
	if err := os.WriteFile(users, []byte(addr+","+pass+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	restore := pinOldServer(b, old, pinned)
	defer restore()
	args := []string{bin, "migrate", "--data", data, "--domain", "example.test", "--users", users}
	if pinned {
		args = append([]string{"taskset", "-c", "1"}, args...)
	}
	if w := os.Getenv("MAILFERRY_MIGRATE_BENCH_WRAP"); w != "" { // diagnostics: e.g. "strace -c -f -o FILE"
		args = append(strings.Fields(w), args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(data, "config"))
	if f := os.Getenv("MAILFERRY_MIGRATE_BENCH_PROFILE"); f != "" {
		cmd.Env = append(cmd.Env, "MAILFERRY_CPUPROFILE="+f) // the last run's profile
	}
	if f := os.Getenv("MAILFERRY_MIGRATE_BENCH_TRACE"); f != "" {
		cmd.Env = append(cmd.Env, "MAILFERRY_TRACE="+f) // the last run's trace
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	if f := os.Getenv("MAILFERRY_MIGRATE_BENCH_LOG"); f != "" {
		os.WriteFile(f, []byte(out.String()), 0o600) // the last run's output
	}
	if err != nil {
		b.Fatalf("%s migrate: %v\n%s", bin, err, out.String())
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		b.Skip("no rusage on this system")
	}
	// Every byte copied: the account holds what was seeded.
	st, stderr, code := mf(b, data, "", "status", "--json")
	var s struct {
		Domains []struct {
			Accounts []struct {
				State string `json:"migration"`
				Bytes int64  `json:"bytes"`
			} `json:"accounts"`
		} `json:"domains"`
	}
	if code != 0 || json.Unmarshal([]byte(st), &s) != nil || len(s.Domains) != 1 || len(s.Domains[0].Accounts) != 1 {
		b.Fatalf("status: %s %s", st, stderr)
	}
	if a := s.Domains[0].Accounts[0]; a.State != "done" || a.Bytes != total {
		b.Fatalf("after migrate: state %s, %d bytes, want done and %d", a.State, a.Bytes, total)
	}
	return migrateRun{wall: wall, user: time.Duration(ru.Utime.Nano()), sys: time.Duration(ru.Stime.Nano()), maxRSSKiB: ru.Maxrss, minflt: ru.Minflt}
}

// migrateFloor is one raw download of the user's folders on one
// connection, the bytes dropped (pinned: Dovecot on CPU 0, this process
// on CPU 1).
func migrateFloor(b *testing.B, old *oldtest.Server, user string, total int64, pinned bool) time.Duration {
	b.Helper()
	restore := pinOldServer(b, old, pinned)
	defer restore()
	if pinned {
		self := pinTree(b, os.Getpid(), 1)
		defer self()
	}
	time.Sleep(100 * time.Millisecond) // until Dovecot reaped the last imap process
	c := old.Dial(b, user)
	defer func() { c.Logout().Wait() }()
	start := time.Now()
	n, err := oldtest.Download(c, migrateFolders...)
	if err != nil {
		b.Fatal(err)
	}
	d := time.Since(start)
	if n != total {
		b.Fatalf("floor read %d bytes, seeded %d", n, total)
	}
	return d
}

// pinOldServer puts the fixture's Dovecot (its master and every process
// under it; the imap processes forked later inherit it) on CPU 0, and
// returns what undoes it. Unpinned, it does nothing.
func pinOldServer(b *testing.B, old *oldtest.Server, pinned bool) func() {
	if !pinned {
		return func() {}
	}
	pidb, err := os.ReadFile(filepath.Join(old.StateDir, "run", "master.pid"))
	if err != nil {
		b.Fatalf("dovecot's pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidb)))
	if err != nil {
		b.Fatalf("dovecot's pid %q: %v", pidb, err)
	}
	return pinTree(b, pid, 0)
}

// pinTree sets the CPU affinity of every thread of pid and of its
// descendants to cpu, and returns what gives them every CPU again.
func pinTree(b *testing.B, pid, cpu int) func() {
	var one, all unix.CPUSet
	one.Set(cpu)
	for i := range runtime.NumCPU() {
		all.Set(i)
	}
	set := func(s *unix.CPUSet) {
		for _, p := range processTree(pid) {
			tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", p))
			for _, t := range tasks {
				if tid, err := strconv.Atoi(t.Name()); err == nil {
					unix.SchedSetaffinity(tid, s) // a thread that just ended: nothing to pin
				}
			}
		}
	}
	set(&one)
	return func() { set(&all) }
}

// processTree lists pid and every process descended from it.
func processTree(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+2:]))
		if pp, err := strconv.Atoi(f[1]); err == nil {
			children[pp] = append(children[pp], p)
		}
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}
