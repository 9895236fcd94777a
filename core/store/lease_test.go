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
