package core_test

import (
	"encoding/json"
	"strings"
	"testing"

	"mailferry/core"
)

// The one status model shows each message the old server could not serve:
// the account is "done with N problems", each with its mailbox, old UID and
// the server's words, in Status and its JSON (`status --json`).
func TestStatusShowsCopyProblems(t *testing.T) {
	co := startCore(t)
	ctx := t.Context()
	if _, err := co.AddDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	a, err := co.AddAccount(ctx, "moved@example.test", "Secret-1")
	if err != nil {
		t.Fatal(err)
	}
	st := core.StoreOf(co)
	if err := st.SetAccountMigration(ctx, a.ID, core.MigDone, ""); err != nil {
		t.Fatal(err)
	}
	mb, err := st.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for _, uid := range []uint32{4, 9} {
		if err := st.RecordCopyProblem(ctx, mb.ID, "INBOX", uid, "NO [SERVERBUG] Message file is damaged"); err != nil {
			t.Fatal(err)
		}
	}
	s, err := co.Status(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var u *core.UserStatus
	for _, x := range s.Users() {
		if x.Address == "moved@example.test" {
			u = &x
		}
	}
	if u == nil || len(u.Problems) != 2 || u.Problems[0].OldUID != 4 || u.StateText() != "done with 2 problems" {
		t.Fatalf("status %+v", u)
	}
	b, err := json.Marshal(s)
	if err != nil || !strings.Contains(string(b), `"old_uid":9`) || !strings.Contains(string(b), "Message file is damaged") {
		t.Fatalf("status JSON %s %v", b, err)
	}
}
