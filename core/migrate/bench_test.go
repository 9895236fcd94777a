package migrate_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailferry/core/imapfront"
	"mailferry/core/migrate"
	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// rawDownload is the floor: one connection, UID FETCH 1:* BODY.PEEK[] per
// folder, bytes dropped.
func rawDownload(tb testing.TB, srv *oldtest.Server, userName string, folders []string) (time.Duration, int64) {
	c := srv.Dial(tb, userName)
	defer func() { c.Logout().Wait() }()
	start := time.Now()
	n, err := oldtest.Download(c, folders...)
	if err != nil {
		tb.Fatal(err)
	}
	return time.Since(start), n
}

// peakRSS reads the process's peak resident set size (VmHWM) in bytes.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return -1
}

func curRSS() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") || strings.HasPrefix(l, "RssAnon:") {
			return strings.Join(strings.Fields(l), "")
		}
	}
	return ""
}

// cpuTimes returns this process's CPU time and the whole machine's busy
// CPU time (/proc/stat: all but idle and iowait).
func cpuTimes() (self, machine time.Duration) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var ticks int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i != 3 && i != 4 { // idle, iowait
			ticks += n
		}
	}
	return self, time.Duration(ticks) * 10 * time.Millisecond // USER_HZ = 100
}

// oldServerCPU is the CPU time used by the fixture's Dovecot: its master
// and the children it has reaped (imap processes end at LOGOUT).
func oldServerCPU(srv *oldtest.Server) time.Duration {
	ents, _ := os.ReadDir("/proc")
	var ticks int64
	for _, e := range ents {
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmd), srv.StateDir) || !strings.Contains(string(cmd), "dovecot") {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+2:]))
		for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
			n, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// resetPeakRSS starts a new VmHWM measurement (Linux: clear_refs 5).
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// setupSummarized is setup with the store as Mailferry runs it: every
// appended message is summarized for the IMAP front end.
func setupSummarized(b *testing.B, addr string) *store.Store {
	st, err := store.Open(filepath.Join(b.TempDir(), "mail.db"), &store.Options{Logger: quietLogger(), Summarize: imapfront.Summarize})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := migrate.SetDomain(context.Background(), st, oldtest.Domain, settingsFor(b, addr), true); err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkMigrate5000 copies a mailbox of 5,000 messages (about 250 MB,
// varied sizes, four folders) from Dovecot and reports, beside the time per
// copy, the raw-download floor measured in the same run, the ratio, the
// rates and the peak RSS (VmHWM) during the first copy.
//
// Diagnostics, by environment variable: COPY_CPUPROFILE=file (a CPU
// profile of the first copy alone), CPUTRACE=1 (the machine's busy share
// every 20 ms), RSSTRACE=1 (RSS and Go heap every 20 ms), HEAPSNAP=file (a
// heap profile once the heap passes 30 MiB).
func BenchmarkMigrate5000(b *testing.B) {
	srv := oldtest.Start(b, &oldtest.Options{Fsync: "never"})
	folders := []string{"INBOX", "Archive", "Sent", "Lists"}
	counts := []int{2000, 1500, 1000, 500}
	var total int64
	k := 0
	for i, f := range folders {
		total += srv.SeedMaildir(b, "alice", f, counts[i], func(j int) int { return oldtest.MixedSize(k + j) })
		k += counts[i]
	}
	addr, pass := srv.Address(b, "alice")
	rawDownload(b, srv, "alice", folders) // warm the old server's caches
	time.Sleep(100 * time.Millisecond)    // until Dovecot reaped its imap process
	// The floor is the median of three downloads: on a shared machine one
	// download alone varies by half.
	var floors []time.Duration
	for range 3 {
		fcpu0, fbusy0 := cpuTimes()
		fold0 := oldServerCPU(srv)
		d, n := rawDownload(b, srv, "alice", folders)
		fcpu1, fbusy1 := cpuTimes()
		time.Sleep(100 * time.Millisecond) // until Dovecot reaped the imap process
		b.Logf("floor %v; CPU: reader %.2f s, Dovecot %.2f s, whole machine %.2f s of %.2f s available", d.Round(time.Millisecond),
			(fcpu1 - fcpu0).Seconds(), (oldServerCPU(srv) - fold0).Seconds(), (fbusy1 - fbusy0).Seconds(), d.Seconds()*float64(runtime.NumCPU()))
		if n != total {
			b.Fatalf("floor read %d bytes, seeded %d", n, total)
		}
		floors = append(floors, d)
	}
	slices.Sort(floors)
	floor := floors[1]
	ctx := context.Background()
	var elapsed, cpuSum time.Duration
	var peak int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st := setupSummarized(b, srv.IMAPAddr)
		e := newEngine(b, st, nil)
		debug.FreeOSMemory() // drop the seeding's garbage before measuring
		resetPeakRSS()
		base := peakRSS()
		stopSample := make(chan struct{})
		var goPeak uint64
		traceStart, lastTrace := time.Now(), time.Duration(0)
		_, lastBusy := cpuTimes()
		go func() {
			var ms runtime.MemStats
			for {
				select {
				case <-stopSample:
					return
				case <-time.After(20 * time.Millisecond):
				}
				runtime.ReadMemStats(&ms)
				goPeak = max(goPeak, ms.HeapInuse+ms.StackInuse)
				if os.Getenv("CPUTRACE") != "" { // the machine's busy share, every 20 ms
					_, busy := cpuTimes()
					now := time.Since(traceStart)
					fmt.Fprintf(os.Stderr, "t=%4dms busy=%3d%%\n", now.Milliseconds(),
						int(100*(busy-lastBusy).Seconds()/((now-lastTrace).Seconds()*float64(runtime.NumCPU()))))
					lastBusy, lastTrace = busy, now
				}
				if os.Getenv("RSSTRACE") != "" {
					fmt.Fprintf(os.Stderr, "rss %s heapinuse %d MiB\n", curRSS(), ms.HeapInuse>>20)
				}
				if ms.HeapInuse > 30<<20 && os.Getenv("HEAPSNAP") != "" {
					f, _ := os.Create(os.Getenv("HEAPSNAP"))
					pprof.Lookup("heap").WriteTo(f, 0)
					f.Close()
				}
			}
		}()
		b.StartTimer()
		start := time.Now()
		cpu0, busy0 := cpuTimes()
		old0 := oldServerCPU(srv)
		if f := os.Getenv("COPY_CPUPROFILE"); f != "" && i == 0 { // the first copy only
			out, err := os.Create(f)
			if err != nil {
				b.Fatal(err)
			}
			pprof.StartCPUProfile(out)
			defer out.Close()
		}
		if err := e.MigrateAccount(ctx, addr, migrate.Credentials{Password: pass}); err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			pprof.StopCPUProfile()
		}
		took := time.Since(start)
		elapsed += took
		b.StopTimer()
		cpu1, busy1 := cpuTimes()
		e.Close() // logs out: Dovecot's imap processes end and are counted
		time.Sleep(100 * time.Millisecond)
		oldCPU := oldServerCPU(srv) - old0
		cpuSum += cpu1 - cpu0 + oldCPU
		b.Logf("CPU during the copy: Dovecot %.2f s, Mailferry %.2f s, whole machine %.2f s of %.2f s available (%d cores, %.0f%% busy)",
			oldCPU.Seconds(), (cpu1 - cpu0).Seconds(), (busy1 - busy0).Seconds(), took.Seconds()*float64(runtime.NumCPU()), runtime.NumCPU(),
			100*(busy1-busy0).Seconds()/(took.Seconds()*float64(runtime.NumCPU())))
		close(stopSample)
		if i == 0 {
			// Later iterations start with what the earlier ones left
			// (freed C memory of SQLite stays with the allocator), so the
			// first one is the clean figure.
			peak = peakRSS()
		}
		b.Logf("RSS at start %.1f MiB, peak %.1f MiB; Go heap in use peak %.1f MiB", float64(base)/(1<<20), float64(peakRSS())/(1<<20), float64(goPeak)/(1<<20))
		a, _ := st.Account(ctx, addr)
		var n int64
		mbs, _ := st.Mailboxes(ctx, a.ID)
		for _, m := range mbs {
			s, _ := st.Status(ctx, m.ID)
			n += s.Size
		}
		if n != total {
			b.Fatalf("copied %d bytes, want %d", n, total)
		}
		st.Close()
		b.StartTimer()
	}
	per := elapsed / time.Duration(b.N)
	// What the machine allows: Dovecot and Mailferry share its cores, so
	// the copy cannot end before their CPU time over the number of cores.
	bound := cpuSum / time.Duration(b.N) / time.Duration(runtime.NumCPU())
	b.Logf("Dovecot and Mailferry used %.2f s of CPU per copy: on %d cores no copy ends before %v = %.2fx the floor",
		(cpuSum / time.Duration(b.N)).Seconds(), runtime.NumCPU(), bound.Round(time.Millisecond), bound.Seconds()/floor.Seconds())
	b.ReportMetric(float64(5000)/per.Seconds(), "msgs/s")
	b.ReportMetric(float64(total)/1e6/per.Seconds(), "MB/s")
	b.ReportMetric(floor.Seconds(), "floor-s")
	b.ReportMetric(float64(total)/1e6/floor.Seconds(), "floor-MB/s")
	b.ReportMetric(per.Seconds()/floor.Seconds(), "x-floor")
	b.ReportMetric(float64(peak)/(1<<20), "peakRSS-MiB")
	b.Logf("5000 messages, %.1f MB: raw download floor %v (%.1f MB/s); Mailferry %v (%.0f msgs/s, %.1f MB/s) = %.2fx floor; peak RSS %.1f MiB",
		float64(total)/1e6, floor.Round(time.Millisecond), float64(total)/1e6/floor.Seconds(), per.Round(time.Millisecond),
		5000/per.Seconds(), float64(total)/1e6/per.Seconds(), per.Seconds()/floor.Seconds(), float64(peak)/(1<<20))
}

// BenchmarkFirstLogin20k measures FirstLogin on a 20,000-message INBOX:
// the time until the login is answered (the copy goes on in the
// background and is stopped).
func BenchmarkFirstLogin20k(b *testing.B) {
	srv := oldtest.Start(b, &oldtest.Options{Fsync: "never"})
	srv.SeedMaildir(b, "bob", "INBOX", 20000, func(i int) int { return 1500 + i%10*200 })
	addr, pass := srv.Address(b, "bob")
	ctx := context.Background()
	var worst time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st, _ := setup(b, srv.IMAPAddr)
		e := newEngine(b, st, nil)
		b.StartTimer()
		start := time.Now()
		acct, err := e.FirstLogin(ctx, addr, pass)
		d := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		worst = max(worst, d)
		if acct.Migration != store.MigPending {
			b.Fatalf("state %q", acct.Migration)
		}
		e.Close()
		st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
}
