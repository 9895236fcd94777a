package store_test

import (
	"context"
	"errors"
	"testing"

	"mailferry/core/store"
)

// An account made with HashLater opens with no password until
// FinishPassword stores the hash; FinishPassword never replaces a password
// the admin set meanwhile.
func TestHashLater(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	if _, err := s.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	mk := func(addr string) *store.Account {
		a, err := s.CreateAccount(ctx, addr, "Old-Secret-1", &store.AccountOptions{Migration: store.MigPending,
			OldLogin: addr, PasswordOrigin: store.PasswordOld, HashLater: true})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := mk("alice@example.test")
	for _, pw := range []string{"Old-Secret-1", "", "wrong"} {
		if _, err := s.Authenticate(ctx, a.Address, pw); !errors.Is(err, store.ErrPasswordPending) {
			t.Fatalf("pending account, password %q: %v", pw, err)
		}
		if _, err := s.CheckPassword(ctx, a.Address, pw); !errors.Is(err, store.ErrPasswordPending) {
			t.Fatalf("CheckPassword, pending account, password %q: %v", pw, err)
		}
	}
	if err := s.FinishPassword(ctx, a.ID, "Old-Secret-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, a.Address, "Old-Secret-1"); err != nil {
		t.Fatalf("after FinishPassword: %v", err)
	}
	if _, err := s.Authenticate(ctx, a.Address, "wrong"); !errors.Is(err, store.ErrBadPassword) {
		t.Fatalf("wrong password after FinishPassword: %v", err)
	}
	// A second FinishPassword (another password) changes nothing.
	if err := s.FinishPassword(ctx, a.ID, "Other-Secret-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, a.Address, "Other-Secret-2"); !errors.Is(err, store.ErrBadPassword) {
		t.Fatalf("FinishPassword replaced a stored hash: %v", err)
	}

	b := mk("bob@example.test")
	if err := s.SetPassword(ctx, b.Address, "Admin-Chose-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishPassword(ctx, b.ID, "Old-Secret-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, b.Address, "Old-Secret-1"); !errors.Is(err, store.ErrBadPassword) {
		t.Fatalf("the old password replaced the admin's: %v", err)
	}
	if _, err := s.Authenticate(ctx, b.Address, "Admin-Chose-1"); err != nil {
		t.Fatalf("admin's password: %v", err)
	}
	if err := s.FinishPassword(ctx, 9999, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("FinishPassword of a missing account: %v", err)
	}
	if _, err := s.CheckPassword(ctx, "nobody@example.test", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CheckPassword of a missing account: %v", err)
	}
}
