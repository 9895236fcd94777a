package store

import (
	"os"
	"syscall"
)

// openDirect opens pack name for direct writes (O_DIRECT), or returns nil
// where the file system has none (tmpfs before Linux 6.6, some FUSE).
func openDirect(name string) *os.File {
	f, err := os.OpenFile(name, os.O_WRONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	return f
}
