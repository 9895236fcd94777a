package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fullPack fails every write with ENOSPC while full is set, as a full disk.
type fullPack struct {
	*os.File
	full *atomic.Bool
}

func (f *fullPack) WriteAt(b []byte, off int64) (int, error) {
	if f.full.Load() {
		return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.WriteAt(b, off)
}

// TestDiskFullReserve: a pack write that fails for a full disk is an error
// IsDiskFull knows, stores nothing, and gives the reserve's room back;
// once writes succeed again the reserve is made again.
func TestDiskFullReserve(t *testing.T) {
	ctx := context.Background()
	s, _, inbox, _ := faultyStore(t, 1<<20)
	var full atomic.Bool
	s.packs.wrap = func(f *os.File) packFile { return &fullPack{File: f, full: &full} }
	res := filepath.Join(s.packs.dir, reserveName)
	if fi, err := os.Stat(res); err != nil || fi.Size() != reserveSize {
		t.Fatalf("reserve at open: %v, %v", fi, err)
	}
	full.Store(true)
	err := appendOne(ctx, s, inbox, fbody(1, 5000), true)
	if !IsDiskFull(err) || !errors.Is(err, ErrNotDurable) {
		t.Fatalf("append on a full disk: %v, want a disk-full error", err)
	}
	if _, err := os.Stat(res); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the reserve is still there after a full disk: %v", err)
	}
	mustNotStored(t, s, fbody(1, 5000))
	full.Store(false)
	if err := appendOne(ctx, s, inbox, fbody(2, 5000), true); err != nil {
		t.Fatal(err)
	}
	mustServe(t, s, fbody(2, 5000))
	if fi, err := os.Stat(res); err != nil || fi.Size() != reserveSize || fi.Mode().Perm() != 0o600 {
		t.Fatalf("reserve after space came back: %v, %v", fi, err)
	}
	if IsDiskFull(errors.New("connection reset")) || IsDiskFull(nil) || IsDiskFull(ErrNotDurable) {
		t.Fatal("IsDiskFull of other errors")
	}
}

// TestCopyWaits: waits are recorded, replaced, listed with leases, cut to
// MaxWaitReason, and a WaitNone row reads back without its room.
func TestCopyWaits(t *testing.T) {
	ctx := context.Background()
	s, _, _, _ := faultyStore(t, 1<<20)
	a, err := s.Account(ctx, "a@example.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetCopyWait(ctx, CopyWait{AccountID: a.ID}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a wait without a kind: %v", err)
	}
	if err := s.SetCopyWait(ctx, CopyWait{AccountID: 9999, Kind: WaitRetry}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a wait of no account: %v", err)
	}
	if err := s.SetCopyWait(ctx, CopyWait{AccountID: a.ID, Kind: WaitNone, Holder: "h"}); err != nil {
		t.Fatal(err)
	}
	ws, _ := s.CopyWaits(ctx)
	if w := ws[a.ID]; w.Kind != WaitNone || w.Reason != "" {
		t.Fatalf("none wait: %+v", w)
	}
	long := string(make([]byte, 2*MaxWaitReason))
	until := time.Now().Add(time.Minute).Truncate(time.Millisecond)
	if err := s.SetCopyWait(ctx, CopyWait{AccountID: a.ID, Kind: WaitDiskFull, Reason: long, Until: until, Holder: "h"}); err != nil {
		t.Fatal(err)
	}
	ws, _ = s.CopyWaits(ctx)
	if w := ws[a.ID]; w.Kind != WaitDiskFull || len(w.Reason) != MaxWaitReason || !w.Until.Equal(until) || w.Holder != "h" {
		t.Fatalf("disk-full wait: %+v", w)
	}
	if err := s.TakeLease(ctx, a.ID, "h", time.Minute); err != nil {
		t.Fatal(err)
	}
	ls, _ := s.Leases(ctx)
	if l := ls[a.ID]; l.Holder != "h" || time.Until(l.Expires) <= 0 {
		t.Fatalf("lease: %+v", l)
	}
	if err := s.TakeLeaseFrom(ctx, a.ID, "other", "not-h", time.Minute); !errors.Is(err, ErrLeased) {
		t.Fatalf("taking a live holder's lease: %v", err)
	}
	if err := s.TakeLeaseFrom(ctx, a.ID, "other", "h", time.Minute); err != nil {
		t.Fatalf("taking a dead holder's lease: %v", err)
	}
	if err := s.ClearCopyWait(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if ws, _ = s.CopyWaits(ctx); len(ws) != 0 {
		t.Fatalf("waits after clear: %v", ws)
	}
}

// TestReserveRetryBounded: while the disk stays too full for the reserve,
// it is tried again at most once per reserveRetry, not after every pack
// write (each try writes until the disk is full and fsyncs).
func TestReserveRetryBounded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "packs")
	clock := time.Unix(1e9, 0)
	r := newReserve(dir) // no directory yet: the reserve cannot be made, as on a full disk
	r.now = func() time.Time { return clock }
	if !r.gone {
		t.Fatal("reserve made in a missing directory")
	}
	r.restore() // a try, which fails
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for range 100 { // pack writes right after
		r.restore()
	}
	if _, err := os.Stat(r.path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("reserve tried again within %v of a failed try: %v", reserveRetry, err)
	}
	clock = clock.Add(reserveRetry)
	r.restore()
	if fi, err := os.Stat(r.path); err != nil || fi.Size() != reserveSize || r.gone {
		t.Fatalf("reserve %v after %v: %v, %v", r.gone, reserveRetry, fi, err)
	}
}
