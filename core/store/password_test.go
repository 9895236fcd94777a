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
// account was deleted meanwhile and another one made (which took the
// deleted one's ID on SQLite before account_id_top, and is checked by
// address since), the new account does not take the old one's password.
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

// A hash stored late for an account deleted meanwhile does not go to the
// account made again under the same address (a user deleted by the admin
// and migrated again, whose old-server password changed between): the new
// account does not open with the old password. FinishPassword checks the
// address, so only a new id tells the two apart (SQLite gave the highest
// id again before account_id_top).
func TestFinishPasswordOfAnAccountMadeAgain(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	if _, err := s.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	mk := func(pw string) *store.Account {
		a, err := s.CreateAccount(ctx, "alice@example.test", pw, &store.AccountOptions{Migration: store.MigPending,
			OldLogin: "alice", PasswordOrigin: store.PasswordOld, HashLater: true})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	before := mk("Alice-Old-1")
	if err := s.DeleteAccount(ctx, before.Address); err != nil {
		t.Fatal(err)
	}
	again := mk("Alice-New-2")
	if again.ID == before.ID {
		t.Errorf("the account made again got the deleted one's id %d", before.ID)
	}
	if err := s.FinishPassword(ctx, before, "Alice-Old-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FinishPassword of the deleted account: %v, want ErrNotFound", err)
	}
	if err := s.FinishPassword(ctx, again, "Alice-New-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, again.Address, "Alice-Old-1"); err == nil {
		t.Fatal("the account made again opens with the deleted account's password")
	}
	if _, err := s.Authenticate(ctx, again.Address, "Alice-New-2"); err != nil {
		t.Fatalf("its own password: %v", err)
	}
}
