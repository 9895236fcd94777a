//go:build unix

package store

import (
	"os"
	"syscall"
)

// fileInode returns the inode of the file at path, 0 if not known.
func fileInode(path string) uint64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(sys.Ino)
	}
	return 0
}
