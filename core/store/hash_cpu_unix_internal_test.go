//go:build unix

package store

import (
	"syscall"
	"time"
)

// cpuClock names what cpuTime measures.
const cpuClock = "process CPU time"

// cpuTime is the CPU time this process has used (user and system): what a
// computation costs, whatever else the machine runs.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return time.Duration(time.Now().UnixNano())
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
