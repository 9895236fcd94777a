package migrate_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"mailferry/core/migrate"
	"mailferry/core/oldserver"
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

// TestDiskFullFoundByTheDatabase: the disk fills while the copy waits on
// the old server, so the first write to find it full is the database's
// renewal of the copy lease, not a pack write. That is a full disk too:
// the status says disk-full (not a lease lost to nobody, which left it
// "running" while every rerun stalled the same way), and once there is
// room the copy finishes by itself.
func TestDiskFullFoundByTheDatabase(t *testing.T) {
	t.Parallel()
	dir, _ := smallDisk(t, "16m")
	srv := oldtest.StartKind(t, oldtest.InProcess, nil)
	seedMany(t, srv, "carol", "INBOX", 40, 30000)
	addr, pass := srv.Address(t, "carol")
	// Every connection stalls after its first 2,000 bytes: past the
	// login, before any message.
	px := startFaultProxy(t, srv.IMAPAddr, "stall", 2000, 0)
	st := openStore(t, filepath.Join(dir, "mail.db"))
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if err := migrate.SetDomain(ctx, st, oldtest.Domain, settingsFor(t, px.addr()), true); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, st, &migrate.Options{ConnsPerAccount: 1, BatchMessages: 4, LeaseTTL: 900 * time.Millisecond,
		ResumeBackoff: 200 * time.Millisecond, ResumeBackoffMax: 200 * time.Millisecond,
		Dial: &oldserver.DialOptions{ReadStall: time.Minute}})
	acct, err := e.FirstLogin(ctx, addr, pass)
	if err != nil {
		t.Fatal(err)
	}
	for px.faults.Load() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	// The new account's password hash is stored after the login's answer;
	// its write would find the disk full first otherwise.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		pending, err := st.PendingPasswords(ctx, oldtest.Domain)
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("password hash still pending: %v", pending)
		}
	}
	fill := filepath.Join(dir, "filler")
	f, err := os.Create(fill)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break // the disk is full
		}
	}
	f.Close()
	cs := waitState(t, st, acct.ID, migrate.StateDiskFull, 15*time.Second)
	if cs.RetryAt.IsZero() {
		t.Errorf("disk-full status without the time of the next try: %+v", cs)
	}
	// Room again, and an old server that answers: the copy finishes.
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	if err := migrate.SetDomain(ctx, st, oldtest.Domain, settingsFor(t, srv.IMAPAddr), true); err != nil {
		t.Fatal(err)
	}
	waitState(t, st, acct.ID, store.MigDone, 30*time.Second)
	if n := compareAll(t, srv, st, "carol"); n != 40 {
		t.Fatalf("compared %d messages, want 40", n)
	}
}
