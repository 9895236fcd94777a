package migrate_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// Cyrus's traditional layout (altnamespace: no): every folder under INBOX
// with '.' as separator, NAMESPACE (("INBOX." ".")), special-use attributes
// in lower case, a NUL-byte message served as a literal8. The copy drops
// the "INBOX." prefix and keeps everything else exactly.
func TestMigrateCyrusInboxNamespace(t *testing.T) {
	t.Parallel()
	srv := oldtest.StartKind(t, oldtest.Cyrus, &oldtest.Options{Separator: '.', InboxNamespace: true})
	date := time.Date(2018, 7, 8, 9, 10, 11, 0, time.UTC)
	srv.Append(t, "alice", "INBOX", []string{`\Seen`}, date, rawMessage("in inbox", 700))
	srv.Append(t, "alice", "INBOX.Archive", []string{`\Flagged`, "Work"}, date, rawMessage("archived", 900))
	srv.Append(t, "alice", "INBOX.Archive", []string{`$Label1`}, date, []byte("Subject: nul\r\n\r\na\x00b\r\n"))
	srv.Append(t, "alice", "INBOX.Données.Été 2020", nil, date, rawMessage("été", 500))
	srv.Append(t, "alice", "INBOX.Work.Projects.Deep", []string{`\Answered`}, date, rawMessage("deep", 400))
	srv.Append(t, "alice", "INBOX.Sent", []string{`\Seen`}, date, rawMessage("sent", 300))
	addr, pass := srv.Address(t, "alice")
	st, _ := setup(t, srv.IMAPAddr)
	e := newEngine(t, st, nil)
	ctx := context.Background()
	acct, err := e.FirstLogin(ctx, addr, pass)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Wait(ctx, addr); err != nil {
		t.Fatal(err)
	}
	if a, _ := st.Account(ctx, addr); a.Migration != store.MigDone {
		t.Fatalf("account %q (%s)", a.Migration, a.MigrationError)
	}
	if n := compareAll(t, srv, st, "alice"); n != 6 {
		t.Errorf("compared %d messages, want 6", n)
	}
	mbs, _ := st.Mailboxes(ctx, acct.ID)
	var names []string
	for _, m := range mbs {
		names = append(names, m.Name)
		if strings.HasPrefix(m.Name, "INBOX.") {
			t.Errorf("local mailbox %q keeps the old namespace prefix", m.Name)
		}
		if m.Name == "Sent" && m.SpecialUse != `\Sent` {
			t.Errorf("Sent special use %q", m.SpecialUse)
		}
	}
	if !strings.Contains(strings.Join(names, "|"), "Données.Été 2020") {
		t.Errorf("local mailboxes %q", names)
	}
}
