//go:build linux

package store

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestFirstHashFaults: a process's first password hash faults its 19 MiB
// in at most once a page (hashmem_linux.go), not twice as argon2 alone
// does (zero page, then copy on write: about 9,900 minor faults, 0.3 s of
// CPU on a paravirtualized VM). Measured in a fresh child process, whose
// heap no earlier hash warmed.
func TestFirstHashFaults(t *testing.T) {
	engineFree(t)
	if cheapTestHash {
		t.Skip("built with mailferry_testhash: hashes are cheap on purpose; the run without the tag tests this")
	}
	if raceEnabled {
		t.Skip("the race detector's shadow memory faults in with the heap: the count says nothing of argon2's pages")
	}
	if os.Getenv("MAILFERRY_FIRSTHASH_CHILD") == "1" {
		var before, after syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		var err error
		if rerr := newHashing(1).run(context.Background(), func() { _, err = HashPassword("secret") }); rerr != nil || err != nil {
			t.Fatal(rerr, err)
		}
		syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		fmt.Printf("minor faults: %d\n", after.Minflt-before.Minflt)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFirstHashFaults$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MAILFERRY_FIRSTHASH_CHILD=1", "MAILFERRY_STORE_ENGINES="+EngineSQLite)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	_, rest, ok := strings.Cut(string(out), "minor faults: ")
	if !ok {
		t.Fatalf("child said no fault count:\n%s", out)
	}
	faults, err := strconv.Atoi(strings.Fields(rest)[0])
	if err != nil {
		t.Fatalf("child's fault count: %v\n%s", err, out)
	}
	pages := int(argonMemory) * 1024 / os.Getpagesize()
	t.Logf("first hash: %d minor faults for %d pages of argon2 memory", faults, pages)
	if faults > pages*3/2 {
		t.Fatalf("the first hash took %d minor faults for %d pages: its memory was not faulted in ahead of argon2", faults, pages)
	}
}
