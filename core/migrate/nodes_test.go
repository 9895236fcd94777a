package migrate_test

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"mailferry/core/migrate"
	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// copiedAtMail1 is carol's account copied by an engine of node "mail1",
// which stopped after, its copy state then set to state (reason).
func copiedAtMail1(t *testing.T, state, reason string) (*oldtest.Server, *store.Store, *store.Account, string) {
	t.Helper()
	ctx := context.Background()
	srv := oldtest.StartKind(t, oldtest.InProcess, nil)
	srv.Append(t, "carol", "INBOX", nil, time.Now(), []byte("Subject: one\r\n\r\nhi\r\n"))
	addr, pass := srv.Address(t, "carol")
	st, _ := setup(t, srv.IMAPAddr)
	e1 := newEngine(t, st, &migrate.Options{Node: "mail1"})
	acct, err := e1.FirstLogin(ctx, addr, pass)
	if err != nil {
		t.Fatal(err)
	}
	if err := e1.Wait(ctx, addr); err != nil {
		t.Fatal(err)
	}
	e1.Close()
	if err := st.SetAccountMigration(ctx, acct.ID, state, reason); err != nil {
		t.Fatal(err)
	}
	return srv, st, acct, addr
}

// TestResumeAfterOtherNodeDied: a copy another node planned to retry (its
// wait names that node) is resumed by this node once the retry is a lease
// past due: that node died (a live one would have run it and recorded a
// new wait). Before then it is left to that node, and so is a copy whose
// lease another node holds, however its process ID looks here.
func TestResumeAfterOtherNodeDied(t *testing.T) {
	ctx := context.Background()
	srv, st, acct, addr := copiedAtMail1(t, store.MigFailed, "old server busy")
	const ttl = 3 * time.Second
	e2 := newEngine(t, st, &migrate.Options{Node: "mail2", LeaseTTL: ttl, CatchUpInterval: -1})
	if err := e2.SetMasterCredentials(oldtest.Domain, srv.MasterUser, srv.MasterPassword); err != nil {
		t.Fatal(err)
	}
	// Another node's lease, with a process ID that is not alive here.
	if err := st.TakeLease(ctx, acct.ID, "mail1 pid 999999999 #x", time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := e2.Resume(ctx); n != 0 {
		t.Fatalf("resumed %d copies another node holds the lease of", n)
	}
	if err := st.ReleaseLease(ctx, acct.ID, "mail1 pid 999999999 #x"); err != nil {
		t.Fatal(err)
	}
	wait := store.CopyWait{AccountID: acct.ID, Kind: store.WaitRetry, Reason: "old server busy",
		Until: time.Now().Add(-ttl / 2), Holder: "mail1 pid 1 #x"}
	if err := st.SetCopyWait(ctx, wait); err != nil {
		t.Fatal(err)
	}
	if n := e2.Resume(ctx); n != 0 {
		t.Fatalf("resumed %d copies whose retry another node may still run", n)
	}
	wait.Until = time.Now().Add(-ttl - time.Second)
	if err := st.SetCopyWait(ctx, wait); err != nil {
		t.Fatal(err)
	}
	if n := e2.Resume(ctx); n != 1 {
		t.Fatalf("resumed %d copies, want the one whose node died", n)
	}
	if err := e2.Wait(ctx, addr); err != nil {
		t.Fatal(err)
	}
	waitState(t, st, acct.ID, store.MigDone, 30*time.Second)
}

// TestSameNodeNameOtherMachine: two machines given one node_name by
// mistake (cloned VMs, containers with one host name and data path). A
// lease held by the other machine's engine names a process ID that is
// not alive here; it must be left to expire, not taken "from a dead
// process" while the other machine still copies (both would copy the
// account, and take it from each other every round).
func TestSameNodeNameOtherMachine(t *testing.T) {
	ctx := context.Background()
	srv, st, acct, _ := copiedAtMail1(t, store.MigRunning, "")
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip("no true(1) to make a dead process ID")
	}
	// As the other machine's engine names itself (newHolder there).
	other := fmt.Sprintf("mail1 pid %d on %s #x", dead.Process.Pid, "0a0a0a0a-other-machine/4026531836")
	if err := st.TakeLease(ctx, acct.ID, other, time.Minute); err != nil {
		t.Fatal(err)
	}
	e2 := newEngine(t, st, &migrate.Options{Node: "mail1", CatchUpInterval: -1})
	if err := e2.SetMasterCredentials(oldtest.Domain, srv.MasterUser, srv.MasterPassword); err != nil {
		t.Fatal(err)
	}
	if n := e2.Resume(ctx); n != 0 {
		t.Fatalf("resumed %d copies another machine of the same node name holds the lease of", n)
	}
	if cs := copyState(t, st, acct.ID); cs.State != store.MigRunning {
		t.Fatalf("status of a copy the other machine holds: %+v, want running", cs)
	}
	if ls, err := st.Leases(ctx); err != nil || ls[acct.ID].Holder != other {
		t.Fatalf("lease holder now %+v (%v), want the other machine's", ls[acct.ID], err)
	}
}
