package pgtest

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes cmd end when the test binary does, Stop or not.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
