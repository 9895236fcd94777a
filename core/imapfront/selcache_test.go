package imapfront_test

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"mailferry/core/imapfront"
	"mailferry/core/store"
)

var recentRe = regexp.MustCompile(`\\Recent ?`)

// examined is what a session is shown of INBOX: EXAMINE's answer (but
// RECENT, which is per session) and every message's sequence number, UID
// and flags.
func examined(c *conn) string { return examinedBox(c, "INBOX") }

// examinedBox is examined for mailbox name.
func examinedBox(c *conn, name string) string {
	c.t.Helper()
	var out []string
	for _, l := range strings.Split(c.ok("EXAMINE %s (CONDSTORE)", name)+c.ok("FETCH 1:* (UID FLAGS)"), "\r\n") {
		if strings.Contains(l, "RECENT") || strings.Contains(l, "[CLOSED]") {
			continue
		}
		out = append(out, recentRe.ReplaceAllString(l, ""))
	}
	return strings.Join(out, "\n")
}

// TestSelectFollowsOtherWriters: a SELECT reads only what changed in the
// mailbox since the last SELECT of the process (selectCache), and still
// shows exactly what a server reading the whole mailbox shows, whatever
// another process on the same store (a `mailferry migrate` beside serve)
// appended, flagged or expunged in between. When the changes do not add
// up (an expunge not recorded, as by a Mailferry before schema 7) or the
// mailbox's UIDVALIDITY is not the state's, it reads the whole mailbox.
func TestSelectFollowsOtherWriters(t *testing.T) {
	a := newEnv(t, nil)
	ctx := context.Background()
	inbox := a.inbox()
	fill(t, a.st, inbox, 300)
	other := newEnv(t, &envOpts{peer: a}) // another process on the store
	c := a.login()
	c.ok("SELECT INBOX")
	if n := imapfront.SelectFullReads(a.srv); n != 1 {
		t.Fatalf("first SELECT: %d whole reads, want 1", n)
	}
	same := func(step string) {
		t.Helper()
		// A new process reads the whole mailbox; it is started first, as
		// opening a store raises the UIDNEXT and HIGHESTMODSEQ of its
		// mailboxes (store/marks.go).
		fresh := newEnv(t, &envOpts{peer: a}).login()
		got := examined(c)
		want := examined(fresh)
		if got != want {
			t.Fatalf("%s: SELECT shows\n%s\nwant\n%s", step, got, want)
		}
	}
	uids := func(us ...uint32) []uint32 { return us }

	other.put(inbox, "Subject: one\r\n\r\nx\r\n")
	other.put(inbox, "Subject: two\r\n\r\nx\r\n", "$New")
	other.put(inbox, "Subject: three\r\n\r\nx\r\n", `\Seen`)
	same("after 3 appends")

	if _, err := other.st.StoreFlags(ctx, inbox.ID, uids(1, 4, 7, 10), store.FlagsAdd, []string{`\Seen`, "$Kw2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.st.StoreFlags(ctx, inbox.ID, uids(2, 3), store.FlagsRemove, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	same("after flag changes (first unseen moved, a new keyword)")

	expunge := func(us ...uint32) {
		t.Helper()
		if _, err := other.st.StoreFlags(ctx, inbox.ID, us, store.FlagsAdd, []string{`\Deleted`}); err != nil {
			t.Fatal(err)
		}
		if _, err := other.st.Expunge(ctx, inbox.ID, us); err != nil {
			t.Fatal(err)
		}
	}
	expunge(1, 150, 299, 302)
	same("after expunges")
	same("unchanged")
	if n := imapfront.SelectFullReads(a.srv); n != 1 {
		t.Fatalf("SELECTs after changes read the whole mailbox %d times, want once (the first SELECT)", n)
	}

	// An expunge the store has no record of.
	expunge(20)
	db, err := sql.Open("sqlite3", a.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM expunged WHERE mailbox_id = ? AND uid = 20`, inbox.ID); err != nil {
		t.Fatal(err)
	}
	other.put(inbox, "Subject: four\r\n\r\nx\r\n")
	same("after an expunge not recorded")
	if n := imapfront.SelectFullReads(a.srv); n != 2 {
		t.Fatalf("after an expunge not recorded: %d whole reads, want 2", n)
	}

	// The mailbox id given to another mailbox (its UIDVALIDITY differs).
	if !imapfront.SetSelectCacheValidity(a.srv, inbox.ID, 1) {
		t.Fatal("INBOX not in the select cache")
	}
	same("after a UIDVALIDITY change")
	if n := imapfront.SelectFullReads(a.srv); n != 3 {
		t.Fatalf("after a UIDVALIDITY change: %d whole reads, want 3", n)
	}
}

// TestSelectCacheBudget: the select cache holds at most its budget of
// messages, dropping the mailbox used least recently, and never a mailbox
// larger than the budget.
func TestSelectCacheBudget(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	imapfront.SetSelectCacheBudget(e.srv, 150)
	var ids []int64
	for i, n := range []int{100, 100, 200} {
		mb, err := e.st.CreateMailbox(ctx, e.acct.ID, fmt.Sprintf("box%d", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		fill(t, e.st, mb, n)
		ids = append(ids, mb.ID)
	}
	c := e.login()
	holds := func(want ...int64) {
		t.Helper()
		got := imapfront.SelectCacheHolds(e.srv)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("cache holds mailboxes %v, want %v", got, want)
		}
	}
	c.ok("SELECT box0")
	holds(ids[0])
	c.ok("SELECT box1")
	holds(ids[1])
	c.ok("SELECT box2") // larger than the budget
	holds(ids[1])
	if un := c.ok("SELECT box2"); !strings.Contains(un, "* 200 EXISTS") {
		t.Fatalf("SELECT box2: %q", un)
	}
}

// TestSelectCacheDropsDeleted: a mailbox deleted (IMAP DELETE) leaves the
// select cache; a SELECT of it fails as before.
func TestSelectCacheDropsDeleted(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	mb, err := e.st.CreateMailbox(ctx, e.acct.ID, "gone", nil)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, e.st, mb, 10)
	c := e.login()
	c.ok("SELECT gone")
	if got := imapfront.SelectCacheHolds(e.srv); len(got) != 1 || got[0] != mb.ID {
		t.Fatalf("cache holds %v, want [%d]", got, mb.ID)
	}
	e.login().ok("DELETE gone")
	if _, tagged := c.do("SELECT gone"); !strings.Contains(tagged, " NO") {
		t.Fatalf("SELECT of a deleted mailbox: %s", tagged)
	}
	if got := imapfront.SelectCacheHolds(e.srv); len(got) != 0 {
		t.Fatalf("cache holds %v after the mailbox was deleted", got)
	}
}

// TestSelectCacheMailboxIDReused: another process (a `mailferry migrate`
// beside serve, an admin) deletes a mailbox and makes one again with the
// same UIDVALIDITY (a migration adopts the old server's), and SQLite gives
// the new row the id just freed (INTEGER PRIMARY KEY reuses the highest).
// The new mailbox's HIGHESTMODSEQ starts again from 1, below the state the
// process kept: a SELECT must read the new mailbox, not show the old one's
// messages and flags.
func TestSelectCacheMailboxIDReused(t *testing.T) {
	a := newEnv(t, nil)
	ctx := context.Background()
	other := newEnv(t, &envOpts{peer: a}) // another process on the store
	mb, err := other.st.CreateMailbox(ctx, a.acct.ID, "Migrated", &store.MailboxOptions{UIDValidity: 777})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		other.put(mb, "Subject: old\r\n\r\nx\r\n", `\Seen`, "$OldSecret")
	}
	c := a.login()
	examinedBox(c, "Migrated")
	if err := other.st.DeleteMailbox(ctx, a.acct.ID, "Migrated"); err != nil {
		t.Fatal(err)
	}
	again, err := other.st.CreateMailbox(ctx, a.acct.ID, "Migrated", &store.MailboxOptions{UIDValidity: 777})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("old mailbox id %d, new %d", mb.ID, again.ID)
	fill(t, other.st, again, 3) // one batch: HIGHESTMODSEQ 2, below the old 4
	fresh := newEnv(t, &envOpts{peer: a}).login()
	got, want := examinedBox(c, "Migrated"), examinedBox(fresh, "Migrated")
	if got != want {
		t.Fatalf("SELECT after the mailbox was made again at the same id shows\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(got, "$OldSecret") {
		t.Fatalf("the old mailbox's keyword is still shown:\n%s", got)
	}
}

// TestSelectCacheBudgetEmptyMailboxes: empty mailboxes count against the
// select cache's budget too. A user can CREATE and SELECT as many as they
// like; counted as nothing, each stayed in the cache for the process's
// life.
func TestSelectCacheBudgetEmptyMailboxes(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	imapfront.SetSelectCacheBudget(e.srv, 80)
	c := e.login()
	for i := range 30 {
		name := fmt.Sprintf("empty%d", i)
		if _, err := e.st.CreateMailbox(ctx, e.acct.ID, name, nil); err != nil {
			t.Fatal(err)
		}
		c.ok("SELECT %s", name)
	}
	if got := imapfront.SelectCacheHolds(e.srv); len(got) > 10 {
		t.Fatalf("a cache of budget 80 holds %d empty mailboxes", len(got))
	}
}
