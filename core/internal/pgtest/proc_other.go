//go:build !linux

package pgtest

import "os/exec"

// dieWithParent: only Linux has a parent-death signal; elsewhere the
// cluster stops at Stop.
func dieWithParent(cmd *exec.Cmd) {}

// removeOrphans: without a parent-death signal an orphan's postgres may
// still run; its directory is left.
func removeOrphans() {}
