//go:build windows

package store

import (
	"os"

	"golang.org/x/sys/windows"
)

// lockRange is the byte range locked: far past any data, because Windows
// locks are mandatory and must not stop others reading the file.
func lockRange() *windows.Overlapped {
	return &windows.Overlapped{Offset: 0xFFFFFFFE, OffsetHigh: 0x7FFFFFFF}
}

// lockFile takes an exclusive lock on f, waiting for it if wait, else
// failing at once when another holds it. Closing f releases it.
func lockFile(f *os.File, wait bool) error {
	var flags uint32 = windows.LOCKFILE_EXCLUSIVE_LOCK
	if !wait {
		flags |= windows.LOCKFILE_FAIL_IMMEDIATELY
	}
	return windows.LockFileEx(windows.Handle(f.Fd()), flags, 0, 1, 0, lockRange())
}

func unlockFile(f *os.File) error {
	return windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, lockRange())
}

// tryLock takes a lock on f without waiting: exclusive, or shared with
// other shared holders. It fails at once when a conflicting lock is held.
func tryLock(f *os.File, exclusive bool) error {
	var flags uint32 = windows.LOCKFILE_FAIL_IMMEDIATELY
	if exclusive {
		flags |= windows.LOCKFILE_EXCLUSIVE_LOCK
	}
	return windows.LockFileEx(windows.Handle(f.Fd()), flags, 0, 1, 0, lockRange())
}
