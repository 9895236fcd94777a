package migrate_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"mailferry/core/migrate"
	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// smallDisk mounts a tmpfs of size bytes for the test and returns its
// directory and a function that resizes it. It needs root (mount); the
// test is skipped without.
func smallDisk(t *testing.T, size string) (dir string, resize func(size string)) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a full disk is simulated with a small tmpfs, which needs root (make test runs as root)")
	}
	dir = t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir, func(size string) {
		if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
			t.Fatalf("resize the tmpfs: %v: %s", err, out)
		}
	}
}

// TestDiskFull: the store's disk fills up mid-copy. That is reported as a
// full disk (the status says so and when it is tried again), never
// retried as a connection problem; once space is back the copy resumes by
// itself and every message is exact.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		dir, resize := smallDisk(t, "8m")
		srv := oldtest.StartKind(t, kind, nil)
		seedMany(t, srv, "carol", "INBOX", 400, 30000) // ~12 MB
		addr, pass := srv.Address(t, "carol")
		st := openStore(t, filepath.Join(dir, "mail.db"))
		t.Cleanup(func() { st.Close() })
		ctx := context.Background()
		if err := migrate.SetDomain(ctx, st, oldtest.Domain, settingsFor(t, srv.IMAPAddr), true); err != nil {
			t.Fatal(err)
		}
		e := newEngine(t, st, &migrate.Options{ConnsPerAccount: 1, BatchMessages: 4,
			ResumeBackoff: 200 * time.Millisecond, ResumeBackoffMax: 200 * time.Millisecond})
		ch, cancel := e.Subscribe()
		defer cancel()
		acct, err := e.FirstLogin(ctx, addr, pass)
		if err != nil {
			t.Fatal(err)
		}
		cs := waitState(t, st, acct.ID, migrate.StateDiskFull, 30*time.Second)
		if cs.RetryAt.IsZero() {
			t.Errorf("disk-full status without the time of the next try: %+v", cs)
		}
		time.Sleep(time.Second) // a few tries on the full disk
		resize("64m")
		waitState(t, st, acct.ID, store.MigDone, 30*time.Second)
		if n := compareAll(t, srv, st, "carol"); n != 400 {
			t.Fatalf("compared %d messages, want 400", n)
		}
		for {
			select {
			case ev := <-ch:
				if ev.Kind == migrate.EventError && len(ev.Error) > 0 && containsRetrying(ev.Error) {
					t.Errorf("a full disk was retried as a connection problem: %s", ev.Error)
				}
				continue
			default:
			}
			break
		}
	})
}

func containsRetrying(s string) bool {
	return len(s) >= 10 && s[len(s)-10:] == "(retrying)"
}
