package main

import (
	"os"
	"path/filepath"
	"testing"
)

// A process whose cgroup allows it one CPU (cpu.max "100000 100000": a
// container run with --cpus=1) is on one CPU for migrateProcs, which then
// runs two Ps, as on a machine of one core: Go's runtime gives such a
// process 2 Ps (never fewer from a cgroup's limit), and migrateProcs took
// that for two CPUs and ran one P for one account. Two CPUs allowed, or
// none set, leave the runtime's procs; an admin's GOMAXPROCS stands.
func TestMigrateProcsCPUQuota(t *testing.T) {
	write := func(t *testing.T, name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name  string
		files map[string]string // under root
		self  string            // /proc/self/cgroup
		env   string
		want  int // GOMAXPROCS for one account, the runtime giving 2
	}{
		{"v2, one CPU in a container", map[string]string{"cpu.max": "100000 100000\n"}, "0::/\n", "", 2},
		{"v2, half a CPU", map[string]string{"cpu.max": "50000 100000\n"}, "0::/\n", "", 2},
		{"v2, one CPU on a parent", map[string]string{"cpu.max": "max 100000\n", "a/cpu.max": "100000 100000\n", "a/b/cpu.max": "max 100000\n"}, "0::/a/b\n", "", 2},
		{"v2, two CPUs", map[string]string{"cpu.max": "200000 100000\n"}, "0::/\n", "", 1},
		{"v2, no limit", map[string]string{"cpu.max": "max 100000\n"}, "0::/\n", "", 1},
		{"v2, one CPU, GOMAXPROCS set", map[string]string{"cpu.max": "100000 100000\n"}, "0::/\n", "2", 2},
		{"v1, one CPU", map[string]string{"cpu/docker/x/cpu.cfs_quota_us": "100000\n", "cpu/docker/x/cpu.cfs_period_us": "100000\n"}, "4:cpu,cpuacct:/docker/x\n2:memory:/docker/x\n", "", 2},
		{"v1 in a container, one CPU", map[string]string{"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, "4:cpu,cpuacct:/docker/x\n", "", 2},
		{"v1, no limit", map[string]string{"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, "4:cpu,cpuacct:/\n", "", 1},
		{"no cgroup", nil, "", "", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			for name, text := range c.files {
				write(t, filepath.Join(root, name), text)
			}
			procs := 2 // the runtime's, under a limit of 2 CPUs or less
			if got := migrateProcs(1, cpusUnder(procs, c.env, root, c.self), c.env); got != c.want {
				t.Errorf("one account: GOMAXPROCS %d, want %d (cgroup CPUs %v)", got, c.want, cgroupCPUs(root, c.self))
			}
		})
	}
}
