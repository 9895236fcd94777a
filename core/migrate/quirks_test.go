package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/migrate"
	"mailferry/core/oldserver/oldtest/quirky"
	"mailferry/core/store"
)

// One test per quirk of a real old server (issue 14), each against
// oldtest/quirky's server: every message arrives byte-exact with its UID,
// flags and date, folders are named as the package doc says, and what the
// server cannot serve is recorded without stopping the rest.

const quirkyUser, quirkyPass = "quinn@example.test", "QuinnSecret1"

// headerDate is the Date: header of quirkyMessage n: an hour before its
// INTERNALDATE, so a test tells which one a copy took.
func headerDate(n int) time.Time { return quirky.Date(n).Add(-time.Hour) }

// quirkyMessage is the n-th message of folder: 8-bit headers and body, a
// NUL byte in one, a bare LF in another.
func quirkyMessage(folder string, n int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Zoë <zoe@example.org>\r\nTo: %s\r\nSubject: %s #%d — café\r\n", quirkyUser, folder, n)
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <%d.%x@example.org>\r\n", headerDate(n).Format(time.RFC1123Z), n, folder)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	for i := range 20 + n*7 {
		fmt.Fprintf(&b, "%s line %d: the quick brown fox\r\n", folder, i)
	}
	switch n % 3 {
	case 1:
		b.WriteString("a NUL \x00 byte\r\n")
	case 2:
		b.WriteString("a bare LF\nhere\r\n")
	}
	return []byte(b.String())
}

func quirkyFolder(name string, n int, sub bool, use imap.MailboxAttr) quirky.Folder {
	f := quirky.Folder{Name: name, Subscribed: sub, SpecialUse: use}
	for i := range n {
		f.Messages = append(f.Messages, quirkyMessage(name, i))
	}
	return f
}

// quirkyRun copies the quirky server's user into a fresh store (a first
// login, then the copy to its end) and returns the store and account.
func quirkyRun(t *testing.T, srv *quirky.Server, opts *migrate.Options) (*store.Store, *store.Account, *migrate.Engine) {
	t.Helper()
	st, _ := setup(t, srv.Addr)
	if opts == nil {
		opts = &migrate.Options{ChunkMessages: 4}
	}
	e := newEngine(t, st, opts)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	acct, err := e.FirstLogin(ctx, quirkyUser, quirkyPass)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Wait(ctx, quirkyUser); err != nil {
		t.Fatal(err)
	}
	a, err := st.Account(ctx, quirkyUser)
	if err != nil {
		t.Fatal(err)
	}
	if a.Migration != store.MigDone {
		t.Fatalf("account %q (%s), want done", a.Migration, a.MigrationError)
	}
	return st, acct, e
}

// want says what a copied folder must hold: its local name and which of
// its messages (by index) the old server could not serve.
type want struct {
	local    string
	missing  map[int]bool
	noFlags  bool // the server never said the flags
	fromDate bool // the server never said the date: the Date: header's
}

// checkCopied checks every message of f in the local mailbox w.local:
// the exact bytes under the old UID, flags and date.
func checkCopied(t *testing.T, st *store.Store, acct *store.Account, f quirky.Folder, w want) {
	t.Helper()
	ctx := context.Background()
	mb, err := st.Mailbox(ctx, acct.ID, w.local)
	if err != nil {
		t.Fatalf("folder %q: no local mailbox %q: %v", f.Name+f.Raw, w.local, err)
	}
	msgs, err := st.Messages(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	byUID := map[uint32]*store.Message{}
	for _, m := range msgs {
		byUID[m.UID] = m
	}
	if len(msgs) != len(f.Messages)-len(w.missing) {
		t.Errorf("%q: %d messages, want %d", w.local, len(msgs), len(f.Messages)-len(w.missing))
	}
	for i, raw := range f.Messages {
		m := byUID[uint32(i+1)]
		if w.missing[i] {
			if m != nil {
				t.Errorf("%q UID %d copied although the server could not serve it", w.local, i+1)
			}
			continue
		}
		if m == nil {
			t.Errorf("%q UID %d not copied", w.local, i+1)
			continue
		}
		if m.BlobKey != st.BlobKey(raw) || m.Size != int64(len(raw)) {
			t.Errorf("%q UID %d: bytes differ from the old server's", w.local, i+1)
		}
		var wantFlags []string
		if !w.noFlags {
			for _, fl := range quirky.Flags(i) {
				wantFlags = append(wantFlags, string(fl))
			}
		}
		if normFlags(m.Flags) != normFlags(wantFlags) {
			t.Errorf("%q UID %d: flags %v, want %v", w.local, i+1, m.Flags, wantFlags)
		}
		wantDate := quirky.Date(i)
		if w.fromDate {
			wantDate = headerDate(i)
		}
		if !m.InternalDate.Equal(wantDate) {
			t.Errorf("%q UID %d: date %v, want %v", w.local, i+1, m.InternalDate, wantDate)
		}
	}
}

func noProblems(t *testing.T, st *store.Store, acct *store.Account) {
	t.Helper()
	probs, err := st.CopyProblems(context.Background(), acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != 0 {
		t.Fatalf("problems recorded: %+v", probs)
	}
}

// TestQuirkByeMidFetch: "* BYE" between two FETCH responses of a UID FETCH,
// on three connections in a row: each time the copy goes on from the last
// committed message on a new connection, nothing is recorded as a problem.
func TestQuirkByeMidFetch(t *testing.T) {
	folders := []quirky.Folder{quirkyFolder("INBOX", 15, true, ""), quirkyFolder("Archive", 9, true, "")}
	srv := quirky.Start(t, quirkyUser, quirkyPass, quirky.Quirks{ByeAfter: 3, ByeTimes: 3}, folders)
	st, acct, _ := quirkyRun(t, srv, &migrate.Options{ChunkMessages: 4, Retries: 1})
	if srv.Byes() != 3 {
		t.Fatalf("the server said BYE %d times, want 3", srv.Byes())
	}
	checkCopied(t, st, acct, folders[0], want{local: "INBOX"})
	checkCopied(t, st, acct, folders[1], want{local: "Archive"})
	noProblems(t, st, acct)
}

// TestQuirkUnaskedFlood: an old server that, mid-FETCH, streams unknown
// untagged responses for ever does not keep the copy running: the client
// fails that connection (imapclient.ErrTooMuchUnasked, FORK.md change
// 29), and the copy's retries take over. Flooding the first two
// connections, the third copies everything; flooding every connection,
// the copy gives up after its attempts without progress and says why.
func TestQuirkUnaskedFlood(t *testing.T) {
	folders := []quirky.Folder{quirkyFolder("INBOX", 10, true, "")}
	t.Run("then well", func(t *testing.T) {
		srv := quirky.Start(t, quirkyUser, quirkyPass, quirky.Quirks{FloodAfter: 2, FloodTimes: 2}, folders)
		st, acct, _ := quirkyRun(t, srv, &migrate.Options{ChunkMessages: 4, Retries: 3, RetryBackoff: 10 * time.Millisecond})
		if srv.Floods() != 2 {
			t.Fatalf("%d connections flooded, want 2", srv.Floods())
		}
		checkCopied(t, st, acct, folders[0], want{local: "INBOX"})
		noProblems(t, st, acct)
	})
	t.Run("for ever", func(t *testing.T) {
		srv := quirky.Start(t, quirkyUser, quirkyPass, quirky.Quirks{FloodAfter: 1}, folders)
		st, _ := setup(t, srv.Addr)
		e := newEngine(t, st, &migrate.Options{ChunkMessages: 4, Retries: 2, RetryBackoff: 10 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := e.FirstLogin(ctx, quirkyUser, quirkyPass); err != nil {
			t.Fatal(err)
		}
		err := e.Wait(ctx, quirkyUser)
		if ctx.Err() != nil {
			t.Fatalf("the copy still runs after 2 minutes of a flood (%d connections flooded)", srv.Floods())
		}
		if !errors.Is(err, imapclient.ErrTooMuchUnasked) {
			t.Fatalf("copy under a flood ended with %v, want ErrTooMuchUnasked", err)
		}
		a, aerr := st.Account(ctx, quirkyUser)
		if aerr != nil {
			t.Fatal(aerr)
		}
		if a.Migration == store.MigDone || a.MigrationError == "" {
			t.Fatalf("account %q (%q) after a copy that never got its messages, want not done, with the reason", a.Migration, a.MigrationError)
		}
		if srv.Floods() != 3 {
			t.Errorf("%d connections flooded, want 3 (the first and 2 retries without progress)", srv.Floods())
		}
	})
}

// TestQuirkStrayResponses: "* OK [ALERT]", an unknown untagged response
// with a literal and "* 3 EXPUNGE" between the responses of every FETCH
// (and before LIST and STATUS responses) are read past.
func TestQuirkStrayResponses(t *testing.T) {
	folders := []quirky.Folder{quirkyFolder("INBOX", 10, true, ""), quirkyFolder("Work", 6, true, "")}
	srv := quirky.Start(t, quirkyUser, quirkyPass, quirky.Quirks{Stray: true}, folders)
	st, acct, _ := quirkyRun(t, srv, nil)
	checkCopied(t, st, acct, folders[0], want{local: "INBOX"})
	checkCopied(t, st, acct, folders[1], want{local: "Work"})
	noProblems(t, st, acct)
}

// TestQuirkUnaskedBodies: a server that sends every body twice and bodies
// for UIDs nobody asked for gets exactly its messages copied, and what was
// not asked for is not written to the store's disk (nor kept in memory).
func TestQuirkUnaskedBodies(t *testing.T) {
	folders := []quirky.Folder{quirkyFolder("INBOX", 12, true, ""), quirkyFolder("Work", 5, true, "")}
	packBytes := func(q quirky.Quirks) int64 {
		srv := quirky.Start(t, quirkyUser, quirkyPass, q, folders)
		st, path := setup(t, srv.Addr)
		e := newEngine(t, st, &migrate.Options{ChunkMessages: 4})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		acct, err := e.FirstLogin(ctx, quirkyUser, quirkyPass)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Wait(ctx, quirkyUser); err != nil {
			t.Fatal(err)
		}
		checkCopied(t, st, acct, folders[0], want{local: "INBOX"})
		checkCopied(t, st, acct, folders[1], want{local: "Work"})
		noProblems(t, st, acct)
		var n int64
		filepath.WalkDir(filepath.Dir(path), func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".pack") {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
		return n
	}
	plain, lying := packBytes(quirky.Quirks{}), packBytes(quirky.Quirks{Unasked: 3})
	// The client leaves bodies for UIDs the command did not name to the
	// unilateral handler, which drops them; a body sent twice must not be
	// staged twice: the packs hold each message once, as from an honest
	// server (twice as much without the check).
	if lying > plain+plain/4 {
		t.Fatalf("packs hold %d bytes after a lying server, %d after an honest one: bodies sent twice or unasked were stored", lying, plain)
	}
}

// TestQuirkFetchItems: FETCH responses without INTERNALDATE or FLAGS, with
// them in a response of their own, or with RFC822.SIZE NIL.
func TestQuirkFetchItems(t *testing.T) {
	for _, tc := range []struct {
		name string
		q    quirky.Quirks
		w    want
	}{
		{"no-date", quirky.Quirks{NoDate: true}, want{fromDate: true}},
		{"no-flags", quirky.Quirks{NoFlags: true}, want{noFlags: true}},
		{"split-items", quirky.Quirks{SplitItems: true}, want{}},
		{"nil-size", quirky.Quirks{NilSize: true}, want{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			folders := []quirky.Folder{quirkyFolder("INBOX", 9, true, ""), quirkyFolder("Old", 5, true, "")}
			srv := quirky.Start(t, quirkyUser, quirkyPass, tc.q, folders)
			st, acct, _ := quirkyRun(t, srv, nil)
			for i, local := range []string{"INBOX", "Old"} {
				w := tc.w
				w.local = local
				checkCopied(t, st, acct, folders[i], w)
			}
			noProblems(t, st, acct)
		})
	}
}

// TestQuirkMissingCapabilities: a server without each optional capability
// in turn is copied completely, folders, subscriptions and special use
// included (guessed from the name without SPECIAL-USE).
func TestQuirkMissingCapabilities(t *testing.T) {
	for _, c := range []imap.Cap{imap.CapListStatus, imap.CapSpecialUse, imap.CapUIDPlus, imap.CapNamespace,
		imap.CapLiteralPlus, imap.CapEnable, imap.CapListExtended} {
		t.Run(string(c), func(t *testing.T) {
			folders := []quirky.Folder{quirkyFolder("INBOX", 6, true, ""), quirkyFolder("Sent", 4, true, imap.MailboxAttrSent),
				quirkyFolder("Lists/Go", 3, false, "")}
			srv := quirky.Start(t, quirkyUser, quirkyPass, quirky.Quirks{Without: []imap.Cap{c}}, folders)
			st, acct, _ := quirkyRun(t, srv, nil)
			for _, f := range folders {
				checkCopied(t, st, acct, f, want{local: f.Name})
			}
			ctx := context.Background()
			sent, _ := st.Mailbox(ctx, acct.ID, "Sent")
			if sent.SpecialUse != `\Sent` {
				t.Errorf("Sent: special use %q", sent.SpecialUse)
			}
			lists, _ := st.Mailbox(ctx, acct.ID, "Lists/Go")
			if c != imap.CapListExtended && lists.Subscribed {
				t.Errorf("Lists/Go subscribed on the old server: no")
			}
			noProblems(t, st, acct)
		})
	}
}

// TestQuirkInboxNamespace: a Courier-like server ("INBOX." personal
// namespace, '.' separator) with a '/' inside a folder name and non-ASCII
// names: the prefix is stripped, the '/' stays part of the name, the
// separator is the old server's.
func TestQuirkInboxNamespace(t *testing.T) {
	folders := []quirky.Folder{quirkyFolder("INBOX", 4, true, ""), quirkyFolder("Sent", 3, true, imap.MailboxAttrSent),
		quirkyFolder("Projects/2020", 3, true, ""), quirkyFolder("Données", 1, true, ""),
		quirkyFolder("Données.Été 2020", 2, false, "")}
	srv := quirky.Start(t, quirkyUser, quirkyPass, quirky.Quirks{InboxPrefix: true}, folders)
	st, acct, _ := quirkyRun(t, srv, nil)
	for _, f := range folders {
		checkCopied(t, st, acct, f, want{local: f.Name})
	}
	ctx := context.Background()
	if a, _ := st.Account(ctx, quirkyUser); a.Delim != '.' {
		t.Errorf("account separator %q, want '.'", a.Delim)
	}
	mbs, _ := st.Mailboxes(ctx, acct.ID)
	for _, m := range mbs {
		if strings.HasPrefix(m.Name, "INBOX.") {
			t.Errorf("local mailbox %q keeps the namespace prefix", m.Name)
		}
	}
	if len(mbs) != len(folders) {
		t.Errorf("%d local mailboxes, want %d", len(mbs), len(folders))
	}
	noProblems(t, st, acct)
}

// TestQuirkBrokenUTF7Name: a folder whose name the server lists in broken
// modified UTF-7 ("INBOX.Caf&AOk") and opens only under those bytes is
// copied (before, EXAMINE sent the name encoded again, "INBOX.Caf&-AOk",
// the server answered NONEXISTENT and the folder was left out); its
// neighbours are copied as ever.
func TestQuirkBrokenUTF7Name(t *testing.T) {
	broken := quirkyFolder("Café", 5, true, "")
	broken.Name, broken.Raw = "", "Caf&AOk"
	folders := []quirky.Folder{quirkyFolder("INBOX", 3, true, ""), broken, quirkyFolder("Entwürfe", 2, true, "")}
	for _, without := range [][]imap.Cap{nil, {imap.CapListStatus, imap.CapListExtended}} {
		t.Run(fmt.Sprintf("without %v", without), func(t *testing.T) {
			srv := quirky.Start(t, quirkyUser, quirkyPass, quirky.Quirks{InboxPrefix: true, Without: without}, folders)
			st, acct, _ := quirkyRun(t, srv, nil)
			checkCopied(t, st, acct, folders[0], want{local: "INBOX"})
			checkCopied(t, st, acct, broken, want{local: "Caf&AOk"})
			checkCopied(t, st, acct, folders[2], want{local: "Entwürfe"})
			mb, _ := st.Mailbox(context.Background(), acct.ID, "Caf&AOk")
			if mb.OldName != "INBOX.Caf&AOk" {
				t.Errorf("old name %q", mb.OldName)
			}
			noProblems(t, st, acct)
		})
	}
}

// TestQuirkRefusedFolder: one folder the server lists but will not open
// (STATUS and EXAMINE answered NO) never stops the account: the others
// are copied, the account is done with the folder recorded as a problem
// (old UID 0, the server's words), and once the server serves it a
// catch-up copies it and clears the record. Before, the refused STATUS
// failed the whole listing and the account with it, and a refused EXAMINE
// was only logged.
func TestQuirkRefusedFolder(t *testing.T) {
	bad := quirkyFolder("Damaged", 3, true, "")
	bad.Refused = true
	folders := []quirky.Folder{quirkyFolder("INBOX", 4, true, ""), bad, quirkyFolder("Work", 3, true, "")}
	for _, without := range [][]imap.Cap{nil, {imap.CapListStatus}} {
		t.Run(fmt.Sprintf("without %v", without), func(t *testing.T) {
			srv := quirky.Start(t, quirkyUser, quirkyPass, quirky.Quirks{Without: without}, folders)
			st, acct, e := quirkyRun(t, srv, nil)
			ctx := context.Background()
			checkCopied(t, st, acct, folders[0], want{local: "INBOX"})
			checkCopied(t, st, acct, folders[2], want{local: "Work"})
			if mb, err := st.Mailbox(ctx, acct.ID, "Damaged"); err == nil {
				if s, _ := st.Status(ctx, mb.ID); s.Messages != 0 {
					t.Errorf("Damaged: %d messages copied from a folder the server refuses", s.Messages)
				}
			}
			probs, err := st.CopyProblems(ctx, acct.ID)
			if err != nil || len(probs) != 1 || probs[0].OldUID != 0 || probs[0].Mailbox != "Damaged" ||
				!strings.Contains(probs[0].Words, "Internal error occurred") {
				t.Fatalf("problems %+v, %v; want the folder Damaged in the server's words", probs, err)
			}
			srv.SetRefused("Damaged", false)
			if n := e.CatchUp(ctx); n != 1 {
				t.Fatalf("catch-up scheduled %d accounts", n)
			}
			if err := e.Wait(ctx, quirkyUser); err != nil {
				t.Fatal(err)
			}
			checkCopied(t, st, acct, bad, want{local: "Damaged"})
			noProblems(t, st, acct)
		})
	}
}
