package main

import (
	"io"
	"mailferry/core"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// `mailferry migrate` runs one P per account copied at once (at most the
// runtime's own number): one account's copy on two Ps spent 12-17% more
// CPU waking threads for its hand-offs (migrateProcs). On one CPU (a
// process pinned with taskset) it runs two: with one, a goroutine blocked
// in the kernel (a pack write, SQLite's fsync) held the only P while the
// network reader waited. An admin's GOMAXPROCS stands.
func TestMigrateProcs(t *testing.T) {
	for _, c := range []struct {
		users, procs int
		env          string
		want         int
	}{
		{1, 2, "", 1}, {1, 16, "", 1}, {2, 16, "", 2}, {3, 2, "", 2}, {50, 8, "", 8},
		{1, 1, "", 2}, {5, 1, "", 2}, {0, 1, "", 2}, {0, 4, "", 1},
		{1, 4, "4", 4}, {1, 3, "8", 3}, // the runtime applied the admin's value already
	} {
		if got := migrateProcs(c.users, c.procs, c.env); got != c.want {
			t.Errorf("migrateProcs(%d users, %d procs, GOMAXPROCS=%q) = %d, want %d", c.users, c.procs, c.env, got, c.want)
		}
	}
}

// The command applies it before it opens the store: a migrate of one user
// whose store cannot be opened (no such configuration file) has left one
// P; of two users, two; under the admin's GOMAXPROCS, that.
func TestMigrateSetsProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	dir := t.TempDir()
	run := func(users string) {
		t.Helper()
		f := filepath.Join(dir, "users.csv")
		if err := os.WriteFile(f, []byte(users), 0o600); err != nil {
			t.Fatal(err)
		}
		runtime.GOMAXPROCS(4)
		err := runMigrate([]string{"--config", filepath.Join(dir, "none.json"), "--domain", "example.test", "--users", f}, nil, io.Discard, io.Discard)
		if err == nil {
			t.Fatal("migrate with no configuration file: no error")
		}
	}
	t.Setenv("GOMAXPROCS", "")
	want := 1
	if cpusUnder(4, "", "/sys/fs/cgroup", readCgroups()) == 1 {
		want = singleCPUProcs // this machine's cgroup allows one CPU
	}
	run("a@example.test,pw\n")
	if got := runtime.GOMAXPROCS(0); got != want {
		t.Errorf("one user: GOMAXPROCS %d, want %d", got, want)
	}
	run("a@example.test,pw\nb@example.test,pw\n")
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Errorf("two users: GOMAXPROCS %d, want 2", got)
	}
	t.Setenv("GOMAXPROCS", "4")
	run("a@example.test,pw\n")
	if got := runtime.GOMAXPROCS(0); got != 4 {
		t.Errorf("one user, GOMAXPROCS=4 set: GOMAXPROCS %d, want 4", got)
	}
}

// `mailferry migrate` bounds its SQLite writer's page cache
// (migrateWriterCacheKiB), which grew with the database through a copy;
// every other command keeps the store's own.
func TestMigrateConfig(t *testing.T) {
	var cfg core.Config
	migrateConfig(&cfg)
	if cfg.WriterCacheKiB != migrateWriterCacheKiB || migrateWriterCacheKiB <= 0 || migrateWriterCacheKiB > 4000 {
		t.Fatalf("migrate's writer cache %d KiB, want %d (a few MB at most)", cfg.WriterCacheKiB, migrateWriterCacheKiB)
	}
}
