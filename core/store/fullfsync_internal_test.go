package store

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestFullCommitFsyncFailureStops: when SQLite's own fsync of the log
// fails inside a FULL commit (a delivery's, a migration batch's), the
// store stops (ErrStopped), as when a grouped fsync fails (walsync.go).
// Before, only that commit failed: the next FULL commit's fsync succeeded
// (Linux reports a writeback error once per open file) and was answered
// OK, an SMTP 250, although the pages the kernel could not write (earlier
// commits' frames, in the log before it) may be gone: after a power cut
// SQLite's recovery stops at that hole and the delivery told 250 is lost.
//
// The fsync is failed by an LD_PRELOAD shim (testdata/failfsync.c, built
// with the C compiler cgo uses) in a child process running this test.
func TestFullCommitFsyncFailureStops(t *testing.T) {
	sqliteOnly(t)
	if trigger := os.Getenv("MAILFERRY_FAIL_FSYNC"); trigger != "" {
		fullCommitFsyncFails(t, trigger)
		return
	}
	if runtime.GOOS != "linux" {
		t.Skip("the shim is for Linux's C library")
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler to build the fsync shim:", err)
	}
	dir := t.TempDir()
	shim := filepath.Join(dir, "failfsync.so")
	if out, err := exec.Command(cc, "-shared", "-fPIC", "-o", shim, filepath.Join("testdata", "failfsync.c"), "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("building the shim: %v\n%s", err, out)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFullCommitFsyncFailureStops$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "LD_PRELOAD="+shim, "MAILFERRY_FAIL_FSYNC="+filepath.Join(dir, "fail"),
		"MAILFERRY_STORE_ENGINES="+EngineSQLite)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestFullCommitFsyncFailureStops") {
		t.Fatalf("in the child with SQLite's fsync failing: %v\n%s", err, out)
	}
}

// fullCommitFsyncFails is TestFullCommitFsyncFailureStops in the child,
// its fsyncs of the log failing while the file trigger exists.
func fullCommitFsyncFails(t *testing.T, trigger string) {
	s, mb, _ := inboxStore(t, nil, 1)
	ctx := context.Background()
	deliver := func(subject string) error {
		tx, err := s.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.Append(mb.ID, &NewMessage{Body: []byte("Subject: " + subject + "\r\n\r\nx\r\n")}); err != nil {
			return err
		}
		return tx.Commit()
	}
	if err := os.WriteFile(trigger, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := deliver("its fsync fails")
	os.Remove(trigger)
	if err == nil {
		t.Fatal("a FULL commit whose fsync failed was answered OK (is the shim loaded?)")
	}
	t.Logf("the commit whose fsync failed: %v", err)
	if err := deliver("after the failed fsync"); !errors.Is(err, ErrStopped) {
		t.Fatalf("a FULL commit after SQLite's fsync of the log failed: %v; want ErrStopped (the store stopped)", err)
	}
	select {
	case <-s.Stopped():
	default:
		t.Fatal("the store did not stop")
	}
}
