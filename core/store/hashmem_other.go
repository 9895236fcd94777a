//go:build !linux

package store

// warmHashMemory faults in the first hash's memory ahead of it on Linux
// (hashmem_linux.go); elsewhere argon2 faults it in itself.
func warmHashMemory() {}
