package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// A first login is answered before the new account's password hash is
// stored; meanwhile the password the old server accepted opens the
// account (from the engine's memory), a wrong one does not, and the hash
// is stored soon after.
func TestFirstLoginHashStoredAfter(t *testing.T) {
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		srv := oldtest.StartKind(t, kind, nil)
		h := newHouse(t, srv.IMAPAddr, nil)
		pw := srv.Users["carol@example.test"]
		if got := h.dial(t, "").login("carol@example.test", pw); !strings.Contains(got, "OK") {
			t.Fatalf("first login: %s", got)
		}
		if got := h.dial(t, "").login("carol@example.test", "not-"+pw); !strings.Contains(got, "NO") {
			t.Fatalf("wrong password right after the first login: %s", got)
		}
		if got := h.dial(t, "").login("carol@example.test", pw); !strings.Contains(got, "OK") {
			t.Fatalf("second login: %s", got)
		}
		ctx := context.Background()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			_, err := h.st.Authenticate(ctx, "carol@example.test", pw)
			if err == nil {
				break
			}
			if !errors.Is(err, store.ErrPasswordPending) || time.Now().After(deadline) {
				t.Fatalf("the password hash is not stored: %v", err)
			}
		}
		if _, err := h.st.Authenticate(ctx, "carol@example.test", "not-"+pw); !errors.Is(err, store.ErrBadPassword) {
			t.Fatalf("stored hash takes a wrong password: %v", err)
		}
	})
}

// An account whose hash was never stored (the process ended first): the
// next login asks the old server, with the account's own old login name,
// and its yes stores the hash; a wrong password is refused and stores
// nothing.
func TestPendingHashAfterRestart(t *testing.T) {
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		srv := oldtest.StartKind(t, kind, nil)
		h := newHouse(t, srv.IMAPAddr, nil)
		ctx := context.Background()
		pw := srv.Users["carol@example.test"]
		// As FirstLogin leaves it, with no engine holding the password.
		if _, err := h.st.CreateAccount(ctx, "carol@example.test", pw, &store.AccountOptions{
			Migration: store.MigPending, OldLogin: "carol@example.test", PasswordOrigin: store.PasswordOld, HashLater: true,
		}); err != nil {
			t.Fatal(err)
		}
		if got := h.dial(t, "").login("carol@example.test", "not-"+pw); !strings.Contains(got, "NO") {
			t.Fatalf("wrong password: %s", got)
		}
		if _, err := h.st.Authenticate(ctx, "carol@example.test", pw); !errors.Is(err, store.ErrPasswordPending) {
			t.Fatalf("after a wrong password: %v, want the hash still pending", err)
		}
		if got := h.dial(t, "").login("carol@example.test", pw); !strings.Contains(got, "OK") {
			t.Fatalf("right password: %s", got)
		}
		if _, err := h.st.Authenticate(ctx, "carol@example.test", pw); err != nil {
			t.Fatalf("after the old server's yes: %v, want the hash stored", err)
		}
		if got := accounts(t, h.st); len(got) != 1 {
			t.Fatalf("accounts %v", got)
		}
	})
}

// A pending account made for one old login name is not opened by another
// user's password: the old server is asked with the account's own name.
func TestPendingHashBoundToOldLogin(t *testing.T) {
	srv := oldtest.StartKind(t, oldtest.InProcess, nil)
	h := newHouse(t, srv.IMAPAddr, nil)
	ctx := context.Background()
	if _, err := h.st.CreateAccount(ctx, "carol@example.test", "x", &store.AccountOptions{
		Migration: store.MigPending, OldLogin: "carol@example.test", PasswordOrigin: store.PasswordOld, HashLater: true,
	}); err != nil {
		t.Fatal(err)
	}
	if got := h.dial(t, "").login("carol@example.test", srv.Users["bob@example.test"]); !strings.Contains(got, "NO") {
		t.Fatalf("bob's password for carol's pending account: %s", got)
	}
}
