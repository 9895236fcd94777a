package oldtest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100
// on every Linux the fixture runs on).
const clockTick = 10 * time.Millisecond

// procStat reads /proc/PID/stat: the parent's PID and the CPU time of the
// process itself (utime + stime) and of the children it has reaped
// (cutime + cstime), in clock ticks. ok is false once the process is gone.
func procStat(pid string) (ppid string, ticks int64, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return "", 0, false
	}
	// pid (comm) state ppid ... utime stime cutime cstime: the command
	// name may hold spaces and parentheses, so fields count from the last
	// ')'.
	s := string(b)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 15 {
		return "", 0, false
	}
	for _, v := range f[11:15] {
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return f[1], ticks, true
}

// ProcessCPU is the CPU time (user + system) the process pid has used so
// far, with that of the children it has reaped; 0 once it is gone. Its
// resolution is the clock tick (10 ms): measure work that takes a good
// many ticks.
func ProcessCPU(pid int) time.Duration {
	_, ticks, _ := procStat(strconv.Itoa(pid))
	return time.Duration(ticks) * clockTick
}

// CPU is the CPU time (user + system) the fixture's Dovecot has used so
// far, all its processes together: the master, its children alive (imap,
// imap-login, auth, ...) and those it has reaped (an imap process ends
// with its session, and its time then moves to the master's count of
// reaped children). A benchmark takes the difference of two calls around
// the work it measures, as it would of a one-process server's getrusage.
// 0 for the in-process server (it runs in the test's own process).
func (s *Server) CPU() time.Duration {
	if s.StateDir == "" {
		return 0
	}
	pid, err := os.ReadFile(filepath.Join(s.StateDir, "run", "master.pid"))
	if err != nil {
		return 0
	}
	master := strings.TrimSpace(string(pid))
	// The master first: a child that ends after this read and is gone by
	// the walk below is lost (a few ms at most), never counted twice.
	_, ticks, _ := procStat(master)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name() == master || e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if ppid, t, ok := procStat(e.Name()); ok && ppid == master {
			ticks += t
		}
	}
	return time.Duration(ticks) * clockTick
}
