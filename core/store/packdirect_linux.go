package store

import (
	"os"
	"syscall"
	"unsafe"
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

// mapBuffer maps n bytes of anonymous memory (page-aligned, zeroed), or
// returns nil where the system refuses.
func mapBuffer(n int) []byte {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%directAlign != 0 {
		if err == nil {
			syscall.Munmap(b)
		}
		return nil
	}
	return b
}

// unmapBuffer gives back a buffer of mapBuffer.
func unmapBuffer(b []byte) { syscall.Munmap(b[:cap(b)]) }
