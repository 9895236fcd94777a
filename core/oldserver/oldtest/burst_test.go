package oldtest_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailferry/core/oldserver/oldtest"
)

func burstUsers(n int) map[string]string {
	users := map[string]string{}
	for i := range n {
		users[fmt.Sprintf("u%02d@example.test", i)] = fmt.Sprintf("Burst-Secret-%02d", i)
	}
	return users
}

// BenchmarkLoginBurst50 is the floor of cmd/mailferry's
// BenchmarkFirstLoginBurst: 50 users log in to the Dovecot fixture at the
// same instant, each from an address of its own; p50, p90 and max of the
// time to the LOGIN's OK, medians of 3 (MAILFERRY_BURST_RUNS for more or
// fewer). MAILFERRY_OLDSERVER_SCRIPTS_BEFORE=dir starts a second fixture
// from the start.sh in dir (an older fixture) and bursts both in turn, in
// the same run.
func BenchmarkLoginBurst50(b *testing.B) {
	users := burstUsers(50)
	type fixture struct {
		name string
		srv  *oldtest.Server
		p50  []time.Duration
		p90  []time.Duration
		max  []time.Duration
	}
	fixtures := []*fixture{{name: "this fixture", srv: oldtest.Start(b, &oldtest.Options{Users: users})}}
	if dir := os.Getenv("MAILFERRY_OLDSERVER_SCRIPTS_BEFORE"); dir != "" {
		saved, had := os.LookupEnv(oldtest.ScriptsEnv)
		os.Setenv(oldtest.ScriptsEnv, dir)
		fixtures = append(fixtures, &fixture{name: "before (" + dir + ")", srv: oldtest.Start(b, &oldtest.Options{Users: users})})
		if had {
			os.Setenv(oldtest.ScriptsEnv, saved)
		} else {
			os.Unsetenv(oldtest.ScriptsEnv)
		}
	}
	// let the fixtures' preforked processes come up, as on a server that has
	// been running before the morning
	time.Sleep(2 * time.Second)
	runs := 3
	if v, err := strconv.Atoi(os.Getenv("MAILFERRY_BURST_RUNS")); err == nil && v > 0 {
		runs = v
	}
	for r := range runs {
		for _, f := range fixtures {
			took := oldtest.BurstLogins(b, users, f.srv.IMAPAddr)
			f.p50 = append(f.p50, took[len(took)/2])
			f.p90 = append(f.p90, took[len(took)*9/10])
			f.max = append(f.max, took[len(took)-1])
			b.Logf("run %d, %s: p50 %v p90 %v max %v", r+1, f.name, took[len(took)/2].Round(time.Millisecond),
				took[len(took)*9/10].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
			time.Sleep(time.Second) // the sessions end, the pools refill
		}
	}
	med := func(d []time.Duration) time.Duration {
		d = slices.Clone(d)
		slices.Sort(d)
		return d[len(d)/2].Round(time.Millisecond)
	}
	for _, f := range fixtures {
		fmt.Printf("50 logins at once, %s (medians of %d): p50 %v p90 %v max %v\n", f.name, runs, med(f.p50), med(f.p90), med(f.max))
	}
	b.ReportMetric(med(fixtures[0].p90).Seconds(), "p90-s")
}

// The Dovecot fixture serves logins as a site ready for a morning burst
// does (Dovecot's high-performance login mode): connections share a few
// long-lived imap-login processes instead of one spawned per connection
// (which Dovecot's master forks one after another, so that 50 logins at
// once were answered over seconds), and imap processes wait forked ahead.
func TestFixtureLoginProcessesShared(t *testing.T) {
	srv := oldtest.Start(t, nil)
	const conns = 12
	for i := range conns {
		c, err := net.Dial("tcp", srv.IMAPAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if g, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(g, "* OK") {
			t.Fatalf("connection %d: greeting %q, %v", i, g, err)
		}
	}
	pid, err := os.ReadFile(filepath.Join(srv.StateDir, "run", "master.pid"))
	if err != nil {
		t.Fatal(err)
	}
	kids := map[string]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		f := strings.Fields(s[close+1:])
		if len(f) > 1 && f[1] == strings.TrimSpace(string(pid)) {
			kids[s[open+1:close]]++
		}
	}
	if n := kids["imap-login"]; n == 0 || n >= conns {
		t.Errorf("%d imap-login processes for %d connections waiting to log in (want a few shared ones: high-performance mode); master's children: %v", n, conns, kids)
	}
	if kids["imap"] == 0 {
		t.Errorf("no imap process forked ahead; master's children: %v", kids)
	}
}
