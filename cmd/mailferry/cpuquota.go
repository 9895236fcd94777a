package main

import (
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// migrateCPUs is the procs migrateProcs goes by: the runtime's GOMAXPROCS,
// or 1 when this process's cgroup allows it one CPU or less (a container
// run with --cpus=1, a systemd CPUQuota=100%): Go's runtime then still
// runs 2 Ps (it never sets fewer than 2 from a cgroup's limit), which
// migrateProcs took for two CPUs (one P for one account), while the one
// CPU is the case where it wants a second P (singleCPUProcs). An admin's
// GOMAXPROCS (env) stands.
func migrateCPUs(env string) int {
	return cpusUnder(runtime.GOMAXPROCS(0), env, "/sys/fs/cgroup", readCgroups())
}

// readCgroups returns /proc/self/cgroup's text ("" when it cannot be
// read).
func readCgroups() string {
	self, _ := os.ReadFile("/proc/self/cgroup")
	return string(self)
}

// cpusUnder is migrateCPUs for the runtime's procs, the cgroup file
// system at root and the process's cgroups as /proc/self/cgroup lists
// them (self).
func cpusUnder(procs int, env, root, self string) int {
	if env != "" {
		return procs
	}
	if q := cgroupCPUs(root, self); q > 0 && q <= 1 {
		return 1
	}
	return procs
}

// cgroupCPUs returns the CPU bandwidth the cgroups of a process allow, in
// CPUs (quota over period): cgroup v2's cpu.max, the smallest along the
// process's cgroup up to root, or v1's cpu.cfs_quota_us over
// cpu.cfs_period_us, in the cpu controller's own group or, in a container,
// at its root. 0 when there is none or it cannot be read.
func cgroupCPUs(root, self string) float64 {
	limit := 0.0
	take := func(quota, period float64) {
		if quota > 0 && period > 0 && (limit == 0 || quota/period < limit) {
			limit = quota / period
		}
	}
	for line := range strings.Lines(self) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			// v2: "max 100000" or "<quota> <period>", at each level.
			for dir := path.Clean("/" + parts[2]); ; dir = path.Dir(dir) {
				if b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(dir), "cpu.max")); err == nil {
					if f := strings.Fields(string(b)); len(f) == 2 {
						q, qerr := strconv.ParseFloat(f[0], 64)
						p, perr := strconv.ParseFloat(f[1], 64)
						if qerr == nil && perr == nil {
							take(q, p)
						}
					}
				}
				if dir == "/" {
					break
				}
			}
			continue
		}
		if !strings.Contains(","+parts[1]+",", ",cpu,") {
			continue
		}
		// v1: the cpu controller's hierarchy, mounted as "cpu,cpuacct"
		// (a link "cpu" beside it), the group below it or, in a
		// container, its root.
		for _, dir := range []string{filepath.Join(root, "cpu", filepath.FromSlash(parts[2])), filepath.Join(root, "cpu")} {
			qb, qerr := os.ReadFile(filepath.Join(dir, "cpu.cfs_quota_us"))
			pb, perr := os.ReadFile(filepath.Join(dir, "cpu.cfs_period_us"))
			if qerr != nil || perr != nil {
				continue
			}
			q, qerr := strconv.ParseFloat(strings.TrimSpace(string(qb)), 64)
			p, perr := strconv.ParseFloat(strings.TrimSpace(string(pb)), 64)
			if qerr == nil && perr == nil {
				take(q, p) // -1: none
				break
			}
		}
	}
	return limit
}
