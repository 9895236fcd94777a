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
	if err := s.FinishPassword(ctx, a, "Old-Secret-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, a.Address, "Old-Secret-1"); err != nil {
		t.Fatalf("after FinishPassword: %v", err)
	}
	if _, err := s.Authenticate(ctx, a.Address, "wrong"); !errors.Is(err, store.ErrBadPassword) {
		t.Fatalf("wrong password after FinishPassword: %v", err)
	}
	// A second FinishPassword (another password) changes nothing.
	if err := s.FinishPassword(ctx, a, "Other-Secret-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, a.Address, "Other-Secret-2"); !errors.Is(err, store.ErrBadPassword) {
		t.Fatalf("FinishPassword replaced a stored hash: %v", err)
	}

	b := mk("bob@example.test")
	if err := s.SetPassword(ctx, b.Address, "Admin-Chose-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishPassword(ctx, b, "Old-Secret-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, b.Address, "Old-Secret-1"); !errors.Is(err, store.ErrBadPassword) {
		t.Fatalf("the old password replaced the admin's: %v", err)
	}
	if _, err := s.Authenticate(ctx, b.Address, "Admin-Chose-1"); err != nil {
		t.Fatalf("admin's password: %v", err)
	}
	if err := s.FinishPassword(ctx, &store.Account{ID: 9999, Address: "nobody@example.test"}, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("FinishPassword of a missing account: %v", err)
	}
	if _, err := s.CheckPassword(ctx, "nobody@example.test", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CheckPassword of a missing account: %v", err)
	}
}

// A hash stored late goes to the account it was computed for: when that
// account was deleted meanwhile and another one made with the same ID
// (SQLite gives the highest ID again), the new account does not take the
// old one's password.
func TestFinishPasswordOfADeletedAccount(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	if _, err := s.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	mk := func(addr, pw string) *store.Account {
		a, err := s.CreateAccount(ctx, addr, pw, &store.AccountOptions{Migration: store.MigPending,
			OldLogin: addr, PasswordOrigin: store.PasswordOld, HashLater: true})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	alice := mk("alice@example.test", "Alice-Old-1")
	if err := s.DeleteAccount(ctx, alice.Address); err != nil {
		t.Fatal(err)
	}
	bob := mk("bob@example.test", "Bob-Old-1")
	if bob.ID != alice.ID {
		t.Skipf("the store gave bob ID %d, not alice's %d: nothing to check", bob.ID, alice.ID)
	}
	if err := s.FinishPassword(ctx, alice, "Alice-Old-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FinishPassword of the deleted alice: %v, want ErrNotFound", err)
	}
	if _, err := s.Authenticate(ctx, bob.Address, "Alice-Old-1"); err == nil {
		t.Fatal("bob's account opens with alice's password")
	}
	if err := s.FinishPassword(ctx, bob, "Bob-Old-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, bob.Address, "Bob-Old-1"); err != nil {
		t.Fatalf("bob's own password: %v", err)
	}
}
