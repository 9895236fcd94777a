package pgtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// dieWithParent makes cmd end when the test binary does, Stop or not.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// removeOrphans removes the directories of clusters whose test binary
// exited without Stop (their postgres ended with it).
func removeOrphans() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "mailferry-pgtest-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(string(b))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "data", "postmaster.pid")); err == nil {
			continue // its postgres may still be stopping
		}
		os.RemoveAll(d)
	}
}
