//go:build unix

package migrate

import (
	"errors"
	"syscall"
)

// processAlive reports whether a process of this machine with that ID
// exists (signal 0 checks without sending anything).
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
