package store

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// TestMaildropRenewalNoFsync: a POP3 session's lock renewal (every third
// of the TTL, each session) commits with no fsync of the log, neither
// SQLite's own (a FULL commit) nor one it waits for or asks of walSync:
// nothing is promised on it (RenewMaildrop). It is committed all the same
// (the next session's check reads it), and taking the lock is still a
// FULL commit.
func TestMaildropRenewalNoFsync(t *testing.T) {
	sqliteOnly(t)
	s, mb, _ := inboxStore(t, nil, 1)
	ctx := context.Background()
	const holder, ttl = "pop3 s1", time.Hour
	if err := s.LockMaildrop(ctx, mb.AccountID, holder, time.Minute); err != nil {
		t.Fatal(err)
	}
	var fulls, syncs atomic.Int64
	s.wal.fullCommitted = func() { fulls.Add(1) }
	s.wal.syncFile = func(f *os.File) error { syncs.Add(1); return f.Sync() }
	for range 5 {
		if err := s.RenewMaildrop(ctx, mb.AccountID, holder, ttl); err != nil {
			t.Fatal(err)
		}
	}
	// An fsync walSync was asked for "soon" would come within its bound.
	time.Sleep(2 * flagSyncBound)
	if f, n := fulls.Load(), syncs.Load(); f != 0 || n != 0 {
		t.Errorf("5 renewals made %d FULL commits and %d fsyncs of the log, want none", f, n)
	}
	var expires int64
	if err := s.r.QueryRow(`SELECT expires FROM maildrop_locks WHERE account_id = ?`, mb.AccountID).Scan(&expires); err != nil {
		t.Fatal(err)
	}
	if left := time.Until(time.UnixMilli(expires)); left < ttl/2 {
		t.Errorf("the renewed lock expires in %v, want about %v", left, ttl)
	}
	if err := s.LockMaildrop(ctx, mb.AccountID, "pop3 s2", ttl); err == nil {
		t.Error("another session took the renewed lock")
	}
	if err := s.UnlockMaildrop(ctx, mb.AccountID, holder); err != nil {
		t.Fatal(err)
	}
	if err := s.LockMaildrop(ctx, mb.AccountID, "pop3 s2", ttl); err != nil {
		t.Fatal(err)
	}
	if f := fulls.Load(); f < 1 {
		t.Errorf("taking the lock made %d FULL commits, want one (is the count hooked?)", f)
	}
}
