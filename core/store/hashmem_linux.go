package store

import (
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A process's first argon2id hash (password.go) allocates argonMemory KiB
// of fresh heap. argon2 reads each block before it writes it, so every
// 4 KiB page faults twice: once for the shared zero page, once more to
// copy it on write (with a TLB shootdown). On a paravirtualized VM that
// was about 10,000 faults and 0.3 s of CPU, where the hash itself takes
// 30 ms: a fifth of the CPU of `mailferry migrate` of 241 MB (perf).
//
// warmHashMemory, run once before that first hash, faults the memory in
// itself: a buffer of the hash's size, marked for transparent huge pages
// where the kernel allows them (THP "madvise" or "always"; a 2 MiB page
// is one fault), written once a page, then freed and collected, so that
// argon2's allocation takes the same, resident, pages. Where huge pages
// are off it still halves the faults (one write fault a page). Nothing is
// held afterwards: the Go runtime owns the memory as free heap, and gives
// it back to the OS as it would any other.
var hashMemoryOnce sync.Once

func warmHashMemory() {
	hashMemoryOnce.Do(func() {
		const huge = 2 << 20
		buf := make([]byte, argonMemory*1024+huge)
		start := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
		from := (start + huge - 1) &^ (huge - 1)
		if n := (start + uintptr(len(buf)) - from) &^ (huge - 1); n > 0 {
			// Advice only: a kernel without THP refuses it, and the
			// pages below are faulted in 4 KiB at a time all the same.
			_ = unix.Madvise(buf[from-start:from-start+n], unix.MADV_HUGEPAGE)
		}
		for i := 0; i < len(buf); i += 4096 {
			buf[i] = 1
		}
		runtime.KeepAlive(buf)
		buf = nil
		runtime.GC() // the buffer's span is free heap again, for argon2
	})
}
