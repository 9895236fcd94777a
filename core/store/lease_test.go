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
