package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mailferry/core/store"
)

func TestCopyLease(t *testing.T) {
	ctx := context.Background()
	a, b := openTwo(t)
	acct := account(t, a, "alice@example.test")
	const ttl = time.Minute
	if err := a.TakeLease(ctx, acct.ID, "serve", ttl); err != nil {
		t.Fatal(err)
	}
	err := b.TakeLease(ctx, acct.ID, "migrate", ttl)
	if !errors.Is(err, store.ErrLeased) || !strings.Contains(err.Error(), "being copied by another process") {
		t.Fatalf("second holder: %v, want ErrLeased", err)
	}
	if err := a.TakeLease(ctx, acct.ID, "serve", ttl); err != nil {
		t.Fatalf("renewal by the holder: %v", err)
	}
	if err := b.ReleaseLease(ctx, acct.ID, "migrate"); err != nil {
		t.Fatal(err)
	}
	if err := b.TakeLease(ctx, acct.ID, "migrate", ttl); !errors.Is(err, store.ErrLeased) {
		t.Fatalf("a release by another holder must not free the lease: %v", err)
	}
	if err := a.ReleaseLease(ctx, acct.ID, "serve"); err != nil {
		t.Fatal(err)
	}
	if err := b.TakeLease(ctx, acct.ID, "migrate", 50*time.Millisecond); err != nil {
		t.Fatalf("after release: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := a.TakeLease(ctx, acct.ID, "serve", ttl); err != nil {
		t.Fatalf("after the lease expired: %v", err)
	}
	if err := a.TakeLease(ctx, 1<<40, "serve", ttl); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown account: %v", err)
	}
	if err := a.DeleteAccount(ctx, acct.Address); err != nil {
		t.Fatalf("deleting a leased account: %v", err)
	}
}

// The POP3 maildrop lock: one holder across stores on one database; a
// renewal never takes a lock its holder lost (lapsed and taken, or gone
// with its account), and an account made again under the same ID is not
// held by the old account's holder.
func TestMaildropLock(t *testing.T) {
	ctx := context.Background()
	a, b := openTwo(t)
	acct := account(t, a, "alice@example.test")
	const ttl = time.Minute
	if err := a.LockMaildrop(ctx, acct.ID, "pop3 s1", ttl); err != nil {
		t.Fatal(err)
	}
	if err := b.LockMaildrop(ctx, acct.ID, "pop3 s2", ttl); !errors.Is(err, store.ErrMaildropLocked) {
		t.Fatalf("second session on another node: %v, want ErrMaildropLocked", err)
	}
	if err := b.RenewMaildrop(ctx, acct.ID, "pop3 s2", ttl); !errors.Is(err, store.ErrMaildropLocked) {
		t.Fatalf("renewal by a session that never held it: %v, want ErrMaildropLocked", err)
	}
	if err := a.RenewMaildrop(ctx, acct.ID, "pop3 s1", 50*time.Millisecond); err != nil {
		t.Fatalf("renewal by the holder: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := b.LockMaildrop(ctx, acct.ID, "pop3 s2", ttl); err != nil {
		t.Fatalf("after the lock lapsed: %v", err)
	}
	if err := a.RenewMaildrop(ctx, acct.ID, "pop3 s1", ttl); !errors.Is(err, store.ErrMaildropLocked) {
		t.Fatalf("renewal of a lock that lapsed and was taken: %v, want ErrMaildropLocked", err)
	}
	if err := a.UnlockMaildrop(ctx, acct.ID, "pop3 s1"); err != nil {
		t.Fatal(err)
	}
	if err := a.LockMaildrop(ctx, acct.ID, "pop3 s1", ttl); !errors.Is(err, store.ErrMaildropLocked) {
		t.Fatalf("an unlock by a former holder must not free the lock: %v", err)
	}
	if err := a.DeleteAccount(ctx, acct.Address); err != nil {
		t.Fatalf("deleting a locked account: %v", err)
	}
	again := account(t, a, "alice@example.test")
	if err := b.RenewMaildrop(ctx, again.ID, "pop3 s2", ttl); !errors.Is(err, store.ErrMaildropLocked) {
		t.Fatalf("renewal after the account was deleted and made again: %v, want ErrMaildropLocked", err)
	}
	if err := a.LockMaildrop(ctx, again.ID, "pop3 s3", ttl); err != nil {
		t.Fatalf("the account made again: %v", err)
	}
}

// A copy run begins and ends in one commit each (StartCopy, EndCopy: the
// lease, the copy wait and the account's state), all or nothing: a run
// refused its lease leaves no trace, and an account is never left done
// with its lease held, or running without one.
func TestStartEndCopyOneCommitEach(t *testing.T) {
	ctx := context.Background()
	a, b := openTwo(t)
	acct := account(t, a, "alice@example.test")
	const ttl = time.Minute
	if err := a.SetAccountMigration(ctx, acct.ID, store.MigPending, ""); err != nil {
		t.Fatal(err)
	}
	state := func(s *store.Store) string {
		t.Helper()
		got, err := s.AccountByID(ctx, acct.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Migration
	}
	before := a.Commits()
	if err := a.StartCopy(ctx, acct.ID, "serve", ttl, store.MigRunning); err != nil {
		t.Fatal(err)
	}
	if n := a.Commits() - before; n != 1 {
		t.Fatalf("StartCopy took %d commits, want 1", n)
	}
	if s := state(a); s != store.MigRunning {
		t.Fatalf("state after StartCopy: %q", s)
	}
	ws, err := a.CopyWaits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w, ok := ws[acct.ID]; !ok || w.Kind != store.WaitNone || w.Holder != "serve" {
		t.Fatalf("copy wait after StartCopy: %+v (%v)", w, ok)
	}
	// Another holder is refused, and changes nothing: not the state, not
	// the wait, not the lease.
	if err := b.SetCopyWait(ctx, store.CopyWait{AccountID: acct.ID, Kind: store.WaitRetry, Reason: "x", Holder: "serve"}); err != nil {
		t.Fatal(err)
	}
	if err := b.StartCopy(ctx, acct.ID, "migrate", ttl, store.MigPending); !errors.Is(err, store.ErrLeased) {
		t.Fatalf("second holder: %v, want ErrLeased", err)
	}
	if s := state(b); s != store.MigRunning {
		t.Fatalf("a refused StartCopy changed the state to %q", s)
	}
	if ws, _ := b.CopyWaits(ctx); ws[acct.ID].Kind != store.WaitRetry || ws[acct.ID].Holder != "serve" {
		t.Fatalf("a refused StartCopy changed the wait: %+v", ws[acct.ID])
	}
	// Ended by the holder: done and the lease free in one commit.
	before = a.Commits()
	if err := a.EndCopy(ctx, acct.ID, "serve", store.MigDone, ""); err != nil {
		t.Fatal(err)
	}
	if n := a.Commits() - before; n != 1 {
		t.Fatalf("EndCopy took %d commits, want 1", n)
	}
	if s := state(b); s != store.MigDone {
		t.Fatalf("state after EndCopy: %q", s)
	}
	if ls, _ := b.Leases(ctx); len(ls) != 0 {
		t.Fatalf("leases after EndCopy: %+v", ls)
	}
	// A catch-up ("" state) leaves the state as it is; the mailboxes it
	// marks copied are marked in its end's commit, one deleted meanwhile
	// passed over, another account's never touched.
	box, err := b.CreateMailbox(ctx, acct.ID, "Empty", &store.MailboxOptions{Migration: store.MigPending})
	if err != nil {
		t.Fatal(err)
	}
	bob := account(t, a, "bob@example.test")
	other, err := b.CreateMailbox(ctx, bob.ID, "Empty", &store.MailboxOptions{Migration: store.MigPending})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.StartCopy(ctx, acct.ID, "migrate", ttl, ""); err != nil {
		t.Fatal(err)
	}
	before = b.Commits()
	if err := b.EndCopy(ctx, acct.ID, "migrate", "", "ignored",
		store.MailboxDone{ID: box.ID, UID: 7}, store.MailboxDone{ID: 1 << 40, UID: 3}, store.MailboxDone{ID: other.ID, UID: 9}); err != nil {
		t.Fatal(err)
	}
	if n := b.Commits() - before; n != 1 {
		t.Fatalf("EndCopy with mailboxes took %d commits, want 1", n)
	}
	if s := state(a); s != store.MigDone {
		t.Fatalf("state after a catch-up run: %q", s)
	}
	if m, err := a.MailboxByID(ctx, box.ID); err != nil || m.Migration != store.MigDone || m.MigratedUID != 7 {
		t.Fatalf("mailbox marked at the end: %+v, %v", m, err)
	}
	if m, err := a.MailboxByID(ctx, other.ID); err != nil || m.Migration != store.MigPending || m.MigratedUID != 0 {
		t.Fatalf("another account's mailbox: %+v, %v", m, err)
	}
	// An account that is gone: refused whole, no lease row made.
	if err := a.StartCopy(ctx, 1<<40, "serve", ttl, store.MigRunning); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown account: %v", err)
	}
	if err := a.EndCopy(ctx, 1<<40, "serve", store.MigDone, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown account, EndCopy: %v", err)
	}
	if ls, _ := a.Leases(ctx); len(ls) != 0 {
		t.Fatalf("leases: %+v", ls)
	}
}
