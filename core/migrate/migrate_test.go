package migrate_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"mailferry/core/internal/pgtest"
	"mailferry/core/migrate"
	"mailferry/core/oldserver"
	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := oldtest.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	pgtest.Stop()
	os.Exit(code)
}

// settingsFor returns plaintext settings for a fixture's IMAP address
// (or another address, such as a proxy's).
func settingsFor(t testing.TB, addr string) *oldserver.Settings {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return &oldserver.Settings{Host: oldserver.MustParseHost(host), IMAPPort: p, IMAPTLS: oldserver.TLSNone,
		SMTPPort: 25, SMTPTLS: oldserver.TLSNone, LoginForm: oldserver.LoginFull}
}

func openStore(t testing.TB, path string) *store.Store {
	t.Helper()
	st, err := store.Open(path, &store.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// setup opens a store with the fixture's domain migrating to addr.
func setup(t testing.TB, addr string) (*store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mail.db")
	st := openStore(t, path)
	t.Cleanup(func() { st.Close() })
	if err := migrate.SetDomain(context.Background(), st, oldtest.Domain, settingsFor(t, addr), true); err != nil {
		t.Fatal(err)
	}
	return st, path
}

func newEngine(t testing.TB, st *store.Store, opts *migrate.Options) *migrate.Engine {
	t.Helper()
	o := migrate.Options{}
	if opts != nil {
		o = *opts
	}
	o.Store = st
	o.Logger = quietLogger()
	if o.CatchUpDebounce == 0 {
		o.CatchUpDebounce = -1
	}
	if o.RetryBackoff == 0 {
		o.RetryBackoff = 10 * time.Millisecond
	}
	e, err := migrate.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func rawMessage(subject string, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Sender <sender@example.org>\r\nTo: alice@example.test\r\nSubject: %s\r\n", subject)
	b.WriteString("Date: Mon, 02 Jan 2006 15:04:05 +0000\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.org>\r\n")
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.WriteString("Grüße, ça va ? 日本語 " + subject + "\r\n")
	line := 0
	for b.Len() < size {
		fmt.Fprintf(&b, "line %06d of %s: the quick brown fox jumps over the lazy dog\r\n", line, subject)
		line++
	}
	return []byte(b.String())
}

// oldStatus returns the old server's UIDVALIDITY and UIDNEXT of a mailbox.
func oldStatus(t testing.TB, srv *oldtest.Server, user, mailbox string) (uint32, uint32) {
	t.Helper()
	c := srv.Dial(t, user)
	st, err := c.Status(mailbox, &imap.StatusOptions{UIDValidity: true, UIDNext: true}).Wait()
	if err != nil {
		t.Fatalf("STATUS %q: %v", mailbox, err)
	}
	c.Logout().Wait()
	return st.UIDValidity, uint32(st.UIDNext)
}

func normFlags(f []string) string {
	c := append([]string(nil), f...)
	sort.Strings(c)
	return strings.Join(c, " ")
}

// compareAll checks every old mailbox of user against the store, message by
// message (UID, sha256 of BODY[], flags with case, INTERNALDATE and zone),
// and UIDVALIDITY, subscription and special use of every mailbox.
func compareAll(t *testing.T, srv *oldtest.Server, st *store.Store, user string) (total int) {
	t.Helper()
	ctx := context.Background()
	addr, _ := srv.Address(t, user)
	acct, err := st.Account(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if acct.Delim != srv.Separator {
		t.Errorf("account delim %q, old separator %q", acct.Delim, srv.Separator)
	}
	for _, l := range srv.Mailboxes(t, user) {
		name := l.Mailbox
		// the old personal namespace's prefix ("INBOX.") is not kept
		lm, err := st.Mailbox(ctx, acct.ID, strings.TrimPrefix(name, srv.Prefix))
		if err != nil {
			t.Errorf("mailbox %q: %v", name, err)
			continue
		}
		attrs := map[string]bool{}
		for _, a := range l.Attrs {
			attrs[strings.ToLower(string(a))] = true
		}
		if attrs[`\subscribed`] != lm.Subscribed {
			t.Errorf("mailbox %q: subscribed %v, old %v", name, lm.Subscribed, attrs[`\subscribed`])
		}
		for _, su := range []string{`\Sent`, `\Drafts`, `\Trash`, `\Junk`, `\Archive`} {
			if attrs[strings.ToLower(su)] != strings.Contains(lm.SpecialUse, su) {
				t.Errorf("mailbox %q: special use %q, old attrs %v", name, lm.SpecialUse, l.Attrs)
			}
		}
		if attrs[`\noselect`] || attrs[`\nonexistent`] {
			continue
		}
		uv, _ := oldStatus(t, srv, user, name)
		if lm.UIDValidity != uv {
			t.Errorf("mailbox %q: UIDVALIDITY %d, old %d", name, lm.UIDValidity, uv)
		}
		old := srv.Messages(t, user, name)
		local, err := st.Messages(ctx, lm.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(local) != len(old) {
			t.Errorf("mailbox %q: %d messages, old %d", name, len(local), len(old))
			continue
		}
		for i, o := range old {
			m := local[i]
			if m.UID != o.UID {
				t.Errorf("mailbox %q #%d: UID %d, old %d", name, i, m.UID, o.UID)
			}
			if m.BlobKey != st.BlobKey(o.Raw) || m.Size != int64(len(o.Raw)) {
				t.Errorf("mailbox %q UID %d: bytes differ", name, o.UID)
			}
			var of []string
			for _, f := range o.Flags {
				if f != `\Recent` {
					of = append(of, f)
				}
			}
			if normFlags(m.Flags) != normFlags(of) {
				t.Errorf("mailbox %q UID %d: flags %q, old %q", name, o.UID, m.Flags, of)
			}
			_, lo := m.InternalDate.Zone()
			_, oo := o.InternalDate.Zone()
			if !m.InternalDate.Equal(o.InternalDate) || lo != oo {
				t.Errorf("mailbox %q UID %d: date %v, old %v", name, o.UID, m.InternalDate, o.InternalDate)
			}
			// A migrated message's save date (RFC 8514 SAVEDATE) is its
			// internal date, not the day of the migration (commit.go).
			if !m.SaveDate.Equal(o.InternalDate) {
				t.Errorf("mailbox %q UID %d: save date %v, want its internal date %v", name, o.UID, m.SaveDate, o.InternalDate)
			}
			blob, err := st.Blob(ctx, m.BlobKey)
			if err != nil || string(blob) != string(o.Raw) {
				t.Errorf("mailbox %q UID %d: stored bytes differ (%v)", name, o.UID, err)
			}
		}
		total += len(old)
	}
	return total
}

type seedMsg struct {
	mailbox string
	flags   []string
	date    time.Time
	raw     []byte
}

// seedRich fills user's mailbox with folders of every kind.
func seedRich(t *testing.T, srv *oldtest.Server, user string) []seedMsg {
	sep := string(srv.Separator)
	zones := []*time.Location{time.UTC, time.FixedZone("", 5*3600+1800), time.FixedZone("", -8*3600), time.FixedZone("", 13*3600+2700)}
	flagSets := [][]string{
		nil,
		{`\Seen`},
		{`\Seen`, `\Answered`},
		{`\Flagged`, `\Draft`},
		{`\Deleted`, `\Seen`},
		{`$Forwarded`, `Work`, `CamelCaseKeyword`},
		{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`, `$Label1`, `$Junk`},
	}
	folders := []string{"INBOX", "INBOX", "INBOX", "Données" + sep + "Été 2020", "日本語", "Sent", "Archive", "Work" + sep + "Projects" + sep + "Deep"}
	// Create the folders first: the fixture's Append cannot create a
	// mailbox after a refused APPEND with a synchronizing literal (> 4 KiB).
	for _, f := range folders[3:] {
		srv.CreateMailbox(t, user, f, true)
	}
	var out []seedMsg
	for i := 0; i < 40; i++ {
		m := seedMsg{
			mailbox: folders[i%len(folders)],
			flags:   flagSets[i%len(flagSets)],
			date:    time.Date(2015+i%8, time.Month(1+i%12), 1+i%27, i%24, i%60, i%60, 0, zones[i%len(zones)]),
			raw:     rawMessage(fmt.Sprintf("message %d", i), 300+i*997),
		}
		srv.Append(t, user, m.mailbox, m.flags, m.date, m.raw)
		out = append(out, m)
	}
	// What real old servers hold and serve oddly: NUL bytes (Cyrus serves
	// them as a literal8), bare LF (Cyrus keeps them; Dovecot serves CRLF),
	// raw 8-bit headers. Each is compared with what the old server serves.
	for i, raw := range [][]byte{
		[]byte("From: a@example.org\r\nSubject: nul\r\n\r\nhello\x00world\r\n"),
		[]byte("From: a@example.org\nSubject: bare LF\n\nline 1\nline 2\n"),
		[]byte("From: J\xc3\xbcrgen <j@example.org>\r\nSubject: Gr\xc3\xbc\xc3\x9fe \xe6\x97\xa5\xe6\x9c\xac\r\n\r\n8-bit headers\r\n"),
	} {
		m := seedMsg{mailbox: "INBOX", flags: flagSets[6-i], date: time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC), raw: raw}
		srv.Append(t, user, m.mailbox, m.flags, m.date, m.raw)
		out = append(out, m)
	}
	srv.CreateMailbox(t, user, "Empty", true)
	srv.CreateMailbox(t, user, "Hidden", false)
	srv.Append(t, user, "Hidden", nil, time.Date(2020, 2, 29, 23, 59, 59, 0, time.FixedZone("", -3*3600)), rawMessage("hidden", 500))
	srv.CreateMailbox(t, user, "Hidden", false) // unsubscribe again (Append subscribes)
	return out
}

func TestMigrateFolders(t *testing.T) {
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		for _, sep := range []rune{'/', '.'} {
			t.Run(fmt.Sprintf("sep=%c", sep), func(t *testing.T) {
				t.Parallel()
				srv := oldtest.StartKind(t, kind, &oldtest.Options{Separator: sep})
				seedRich(t, srv, "alice")
				addr, pass := srv.Address(t, "alice")
				oldInbox := srv.Messages(t, "alice", "INBOX")
				st, _ := setup(t, srv.IMAPAddr)
				e := newEngine(t, st, &migrate.Options{BatchMessages: 3, ChunkMessages: 4})
				ctx := context.Background()

				// Watch the store: no other mailbox may get a message before
				// INBOX is complete.
				w := st.Watch(0)
				defer w.Close()
				var order sync.WaitGroup
				var orderErr error
				stopWatch := make(chan struct{})
				order.Add(1)
				go func() {
					defer order.Done()
					for {
						select {
						case <-stopWatch:
							return
						case _, ok := <-w.C:
							if !ok {
								return
							}
						}
						a, err := st.Account(ctx, addr)
						if err != nil {
							continue
						}
						mbs, _ := st.Mailboxes(ctx, a.ID)
						inbox, others := 0, 0
						for _, m := range mbs {
							s, _ := st.Status(ctx, m.ID)
							if m.Name == "INBOX" {
								inbox = int(s.Messages)
							} else {
								others += int(s.Messages)
							}
						}
						if others > 0 && inbox < len(oldInbox) && orderErr == nil {
							orderErr = fmt.Errorf("other mailboxes have %d messages while INBOX has %d of %d", others, inbox, len(oldInbox))
						}
					}
				}()

				acct, err := e.FirstLogin(ctx, addr, pass)
				if err != nil {
					t.Fatal(err)
				}
				if acct.Migration != store.MigPending {
					t.Errorf("new account migration state %q", acct.Migration)
				}
				uv, un := oldStatus(t, srv, "alice", "INBOX")
				inbox, err := st.Mailbox(ctx, acct.ID, "INBOX")
				if err != nil {
					t.Fatal(err)
				}
				if inbox.UIDValidity != uv || inbox.UIDNext < un {
					t.Errorf("INBOX UIDVALIDITY/UIDNEXT %d/%d, old %d/%d", inbox.UIDValidity, inbox.UIDNext, uv, un)
				}
				if err := e.Wait(ctx, addr); err != nil {
					t.Fatal(err)
				}
				close(stopWatch)
				order.Wait()
				if orderErr != nil {
					t.Error(orderErr)
				}
				a, _ := st.Account(ctx, addr)
				if a.Migration != store.MigDone {
					t.Errorf("account state %q (%s)", a.Migration, a.MigrationError)
				}
				if _, err := st.Authenticate(ctx, addr, pass); err != nil {
					t.Errorf("password not kept: %v", err)
				}
				n := compareAll(t, srv, st, "alice")
				if n != 44 {
					t.Errorf("compared %d messages, want 44", n)
				}
				// \Seen untouched on the old server.
				after := srv.Messages(t, "alice", "INBOX")
				for i := range after {
					if normFlags(after[i].Flags) != normFlags(oldInbox[i].Flags) {
						t.Errorf("old INBOX UID %d flags changed: %q -> %q", after[i].UID, oldInbox[i].Flags, after[i].Flags)
					}
				}
				r, err := e.Verify(ctx, addr, migrate.Credentials{Password: pass})
				if err != nil {
					t.Fatal(err)
				}
				if !r.OK || r.Messages != 44 || r.Present != 44 || r.Missing != 0 || r.Extra != 0 || r.Different != 0 {
					t.Errorf("verify: %+v", r)
				}
				var p migrate.AccountProgress
				for _, x := range e.Progress() {
					if x.Address == addr {
						p = x
					}
				}
				if p.State != store.MigDone || p.MessagesDone != 44 || p.MessagesTotal != 44 || p.FoldersDone != p.FoldersTotal || p.FoldersTotal < 9 ||
					p.BytesDone == 0 || p.BytesDone != p.BytesTotal {
					t.Errorf("progress %+v", p)
				}
			})
		}
	})
}
