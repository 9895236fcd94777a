//go:build !linux

package s3test

import "syscall"

// sysProcAttr: outside Linux, Stop in TestMain is what stops weed.
func sysProcAttr() *syscall.SysProcAttr { return nil }
