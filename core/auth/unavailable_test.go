package auth_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"mailferry/core/oldserver"
	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// TestOldServerDownExistingAccounts: with the old server down, users whose
// accounts exist are never told their right password is wrong. An account
// a master-user bulk copy made (its password random, nobody logged in yet)
// needs the old server to check the password: that is NO [UNAVAILABLE]. An
// account made at a first login, whose copy was interrupted, logs in with
// its own password without the old server.
func TestOldServerDownExistingAccounts(t *testing.T) {
	srv := oldtest.StartKind(t, oldtest.InProcess, nil)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close()
	h := newHouse(t, srv.IMAPAddr, &houseOpts{settings: func(s *oldserver.Settings) { s.IMAPPort = deadPort }})
	ctx := context.Background()
	bob, carol := "bob@example.test", "carol@example.test"
	if _, err := h.st.CreateAccount(ctx, bob, "random-Nobody-knows-1", &store.AccountOptions{
		Migration: store.MigRunning, PasswordOrigin: store.PasswordRandom, OldLogin: bob}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.st.CreateAccount(ctx, carol, srv.Users[carol], &store.AccountOptions{
		Migration: store.MigRunning, PasswordOrigin: store.PasswordOld, OldLogin: carol}); err != nil {
		t.Fatal(err)
	}
	c := h.dial(t, "")
	if got := c.login(bob, srv.Users[bob]); !strings.Contains(got, "NO [UNAVAILABLE]") {
		t.Fatalf("bulk-made account, right password, old server down: %s", got)
	}
	if got := c.login(carol, srv.Users[carol]); !strings.Contains(got, "OK") {
		t.Fatalf("account made at a first login, right password, old server down: %s", got)
	}
}
