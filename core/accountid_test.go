package core_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core"
	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// TestDeletedAccountLeavesNothingToTheNext: an account deleted while serve
// runs leaves nothing to the next account made. alice logs in (her first
// login: serve keeps her old-server password in memory, by account id),
// the admin deletes her, and a bulk run made bob (his copy to do through
// the domain's master user). Serve's copy of bob logs in with the master
// user and copies his mail; before account_id_top SQLite gave bob alice's
// id, and serve logged in to the old server as bob with alice's password
// (refused: bob's copy failed, and the old server was told alice's
// password in bob's name).
func TestDeletedAccountLeavesNothingToTheNext(t *testing.T) {
	ctx := context.Background()
	old := oldtest.StartKind(t, oldtest.InProcess, nil)
	for i := range 3 {
		old.Append(t, "bob", "INBOX", nil, time.Now(), []byte("Subject: bob "+strconv.Itoa(i)+"\r\n\r\nhello\r\n"))
	}
	co := openMigrating(t, old, "127.0.0.1:0")
	if err := co.Start(); err != nil {
		co.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { co.Close() })

	alice, alicePass := old.Address(t, "alice")
	c, err := imapclient.DialInsecure(co.Addr("imap"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(alice, alicePass).Wait(); err != nil {
		t.Fatalf("alice's first login: %v", err)
	}
	c.Logout().Wait()
	c.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := co.WaitCopy(wctx, alice); err != nil {
		t.Fatalf("alice's copy: %v", err)
	}
	st := core.StoreOf(co)
	a, err := st.Account(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if err := co.DeleteAccount(ctx, alice); err != nil {
		t.Fatal(err)
	}

	// What a bulk run (another process) killed before it copied bob leaves.
	bob, _ := old.Address(t, "bob")
	b, err := st.CreateAccount(ctx, bob, "random-Nobody-knows-1", &store.AccountOptions{
		Migration: store.MigRunning, PasswordOrigin: store.PasswordRandom, OldLogin: bob,
		Inbox: &store.MailboxOptions{Migration: store.MigPending, OldName: "INBOX", Subscribed: true}})
	if err != nil {
		t.Fatal(err)
	}
	if b.ID == a.ID {
		t.Errorf("bob took the deleted alice's account id %d", a.ID)
	}
	if err := co.RetryCopy(wctx, bob); err != nil {
		t.Fatal(err)
	}
	if err := co.WaitCopy(wctx, bob); err != nil {
		t.Fatalf("bob's copy: %v (serve logged in as bob with what it kept of alice?)", err)
	}
	inbox, err := st.Mailbox(ctx, b.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if msgs, err := st.Messages(ctx, inbox.ID); err != nil || len(msgs) != 3 {
		t.Fatalf("bob has %d messages (%v), want his 3", len(msgs), err)
	}
}
