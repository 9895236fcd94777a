package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mailferry/core/auth"
	"mailferry/core/migrate"
	"mailferry/core/oldserver"
	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// proxy forwards TCP connections to target. The first cuts connections are
// cut once cutAfter bytes went from the server to the client; rate, if not
// 0, limits server-to-client bytes per second of each connection.
type proxy struct {
	n        atomic.Int32 // connections accepted
	skip     int32        // connections never cut
	ln       net.Listener
	target   string
	cutAfter int64
	cuts     atomic.Int32
	cutDone  atomic.Int32
	rate     int
	hold     chan struct{} // if not nil, connections after the first wait until it is closed
	wg       sync.WaitGroup
}

func startProxy(t testing.TB, target string, skip int32, cutAfter int64, cuts int, rate int) *proxy {
	t.Helper()
	p := &proxy{target: target, skip: skip, cutAfter: cutAfter, rate: rate}
	p.cuts.Store(int32(cuts))
	p.start(t)
	return p
}

// startHoldProxy forwards the first connection at once and holds every later
// one (accepted, nothing forwarded) until release is called.
func startHoldProxy(t testing.TB, target string) (p *proxy, release func()) {
	t.Helper()
	p = &proxy{target: target, hold: make(chan struct{})}
	p.start(t)
	var once sync.Once
	release = func() { once.Do(func() { close(p.hold) }) }
	t.Cleanup(release) // before the proxy's own cleanup waits for its connections
	return p, release
}

func (p *proxy) start(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve(c net.Conn) {
	defer c.Close()
	// Of the connections after the first skip, the first cuts that move
	// cutAfter bytes are cut there (one that never does is not counted).
	i := p.n.Add(1)
	eligible := i > p.skip
	if p.hold != nil && i > 1 {
		<-p.hold
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	go func() {
		io.Copy(s, c)
		s.Close()
	}()
	buf := make([]byte, 16<<10)
	var n int64
	for {
		k, err := s.Read(buf)
		if k > 0 {
			if eligible && n+int64(k) >= p.cutAfter && p.cuts.Add(-1) >= 0 {
				c.Write(buf[:p.cutAfter-n])
				p.cutDone.Add(1)
				return
			}
			if _, err := c.Write(buf[:k]); err != nil {
				return
			}
			n += int64(k)
			if p.rate > 0 {
				time.Sleep(time.Duration(int64(k) * int64(time.Second) / int64(p.rate)))
			}
		}
		if err != nil {
			return
		}
	}
}

func TestFirstLoginRefused(t *testing.T) {
	t.Parallel()
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		srv := oldtest.SharedKind(t, kind, nil)
		addr, _ := srv.Address(t, "alice")
		ctx := context.Background()
		st, _ := setup(t, srv.IMAPAddr)
		e := newEngine(t, st, nil)

		if _, err := e.FirstLogin(ctx, addr, "wrong password"); !errors.Is(err, migrate.ErrBadPassword) {
			t.Fatalf("wrong password: err %v, want ErrBadPassword", err)
		}
		if _, err := e.FirstLogin(ctx, addr, ""); !errors.Is(err, migrate.ErrBadPassword) {
			t.Fatalf("empty password: err %v, want ErrBadPassword", err)
		}
		if _, err := e.FirstLogin(ctx, "nobody@unknown.example", "x"); !errors.Is(err, migrate.ErrNotMigrating) {
			t.Fatalf("unknown domain: err %v, want ErrNotMigrating", err)
		}
		if _, err := e.FirstLogin(ctx, "not an address", "x"); err == nil {
			t.Fatal("bad address accepted")
		}
		accts, err := st.Accounts(ctx, "")
		if err != nil || len(accts) != 0 {
			t.Fatalf("accounts after refused logins: %v %v", accts, err)
		}
		if err := migrate.SetDomain(ctx, st, oldtest.Domain, nil, false); err != nil {
			t.Fatal(err)
		}
		_, pass := srv.Address(t, "alice")
		if _, err := e.FirstLogin(ctx, addr, pass); !errors.Is(err, migrate.ErrNotMigrating) {
			t.Fatalf("domain not migrating: err %v, want ErrNotMigrating", err)
		}
		accts, _ = st.Accounts(ctx, "")
		if len(accts) != 0 {
			t.Fatalf("account created for a domain not migrating")
		}
		s, on, err := migrate.DomainSettings(ctx, st, oldtest.Domain)
		if err != nil || on || s == nil || s.IMAPPort == 0 {
			t.Fatalf("DomainSettings = %+v, %v, %v", s, on, err)
		}
	})
}

func TestSetDomainInvalid(t *testing.T) {
	ctx := context.Background()
	st, _ := setup(t, "127.0.0.1:1")
	bad := settingsFor(t, "127.0.0.1:1")
	bad.IMAPPort = 0
	if err := migrate.SetDomain(ctx, st, "other.example", bad, true); err == nil {
		t.Fatal("invalid settings accepted")
	}
	if _, err := st.Domain(ctx, "other.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("invalid settings created the domain: %v", err)
	}
	if err := migrate.SetDomain(ctx, st, "new.example", nil, true); err == nil {
		t.Fatal("migration turned on without settings")
	}
}

func seedMany(t testing.TB, srv *oldtest.Server, user, mailbox string, n, size int) {
	t.Helper()
	srv.CreateMailbox(t, user, mailbox, true)
	for i := 0; i < n; i++ {
		date := time.Date(2021, 1, 1, 0, 0, 0, 0, time.FixedZone("", 3600)).Add(time.Duration(i) * time.Hour)
		var flags []string
		if i%3 == 0 {
			flags = []string{`\Seen`}
		}
		srv.Append(t, user, mailbox, flags, date, rawMessage(fmt.Sprintf("%s %s %d", user, mailbox, i), size+i%7*100))
	}
}

func inboxCount(t testing.TB, st *store.Store, addr string) int {
	ctx := context.Background()
	a, err := st.Account(ctx, addr)
	if err != nil {
		return 0
	}
	m, err := st.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		return 0
	}
	s, err := st.Status(ctx, m.ID)
	if err != nil {
		return 0
	}
	return int(s.Messages)
}

// resumeAfterStop reopens the store at path with a new engine (as after a
// restart), logs acct in again with pass and waits for its copy to end.
func resumeAfterStop(t *testing.T, path string, acct *store.Account, pass string) (*store.Store, *migrate.Engine) {
	t.Helper()
	st := openStore(t, path)
	t.Cleanup(func() { st.Close() })
	e := newEngine(t, st, nil)
	e.LoggedIn(acct, pass)
	if err := e.Wait(context.Background(), acct.Address); err != nil {
		t.Fatal(err)
	}
	return st, e
}

// TestResume stops the engine in the middle of a copy, reopens the store
// and a new engine, and checks the copy completes without duplicates or
// gaps once the user logs in again.
func TestResume(t *testing.T) {
	t.Parallel()
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		srv := oldtest.StartKind(t, kind, &oldtest.Options{Separator: '.'})
		seedMany(t, srv, "bob", "INBOX", 400, 6000)
		seedMany(t, srv, "bob", "Archive", 100, 3000)
		addr, pass := srv.Address(t, "bob")
		px := startProxy(t, srv.IMAPAddr, 0, 0, 0, 1<<20) // 1 MiB/s: about 3 s of copying
		st, path := setup(t, px.addr())
		ctx := context.Background()
		e := newEngine(t, st, &migrate.Options{BatchMessages: 10})
		acct, err := e.FirstLogin(ctx, addr, pass)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for inboxCount(t, st, addr) < 50 {
			if time.Now().After(deadline) {
				t.Fatal("copy did not start")
			}
			time.Sleep(5 * time.Millisecond)
		}
		e.Close() // as a crash: the job stops between two commits
		got := inboxCount(t, st, addr)
		if got >= 400 {
			t.Fatalf("copy finished before the stop (%d messages); test proves nothing", got)
		}
		a, _ := st.Account(ctx, addr)
		if a.Migration == store.MigDone {
			t.Fatalf("account done after a stop mid-copy")
		}
		st.Close()

		st2, e2 := resumeAfterStop(t, path, acct, pass)
		a, _ = st2.Account(ctx, addr)
		if a.Migration != store.MigDone {
			t.Fatalf("after resume: state %q (%s)", a.Migration, a.MigrationError)
		}
		if n := compareAll(t, srv, st2, "bob"); n != 500 {
			t.Fatalf("compared %d messages, want 500", n)
		}
		r, err := e2.Verify(ctx, addr, migrate.Credentials{Password: pass})
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK || r.Present != 500 || r.Extra != 0 {
			t.Fatalf("verify after resume: ok=%v present=%d missing=%d extra=%d different=%d", r.OK, r.Present, r.Missing, r.Extra, r.Different)
		}
	})
}

// TestCutConnection cuts the old-server connection in the middle of FETCH
// responses, three times; the copy retries and completes.
func TestCutConnection(t *testing.T) {
	t.Parallel()
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		srv := oldtest.StartKind(t, kind, nil)
		seedMany(t, srv, "carol", "INBOX", 120, 20000)
		addr, pass := srv.Address(t, "carol")
		// The first three connections that move 300 kB (FirstLogin's, which the
		// copy goes on with, among them) are cut there, in the middle of a message.
		px := startProxy(t, srv.IMAPAddr, 0, 300_000, 3, 0)
		st, _ := setup(t, px.addr())
		ctx := context.Background()
		e := newEngine(t, st, nil)
		ch, cancel := e.Subscribe()
		defer cancel()
		if _, err := e.FirstLogin(ctx, addr, pass); err != nil {
			t.Fatal(err)
		}
		if err := e.Wait(ctx, addr); err != nil {
			t.Fatal(err)
		}
		if px.cutDone.Load() != 3 {
			t.Errorf("proxy cut %d connections, want 3", px.cutDone.Load())
		}
		if n := compareAll(t, srv, st, "carol"); n != 120 {
			t.Fatalf("compared %d messages, want 120", n)
		}
		var retries, done int
		for {
			select {
			case ev := <-ch:
				if ev.Kind == migrate.EventError && strings.Contains(ev.Error, "retrying") {
					retries++
				}
				if ev.Kind == migrate.EventState && ev.Account.State == store.MigDone {
					done++
				}
				continue
			default:
			}
			break
		}
		if retries == 0 || done != 1 {
			t.Errorf("events: %d retries, %d done", retries, done)
		}
	})
}

// TestCatchUp: mail arriving on the old server after the copy is pulled on
// the next login; a UID taken locally meanwhile gets a fresh one.
func TestCatchUp(t *testing.T) {
	t.Parallel()
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		srv := oldtest.StartKind(t, kind, nil)
		seedMany(t, srv, "alice", "INBOX", 5, 1000)
		addr, pass := srv.Address(t, "alice")
		st, _ := setup(t, srv.IMAPAddr)
		ctx := context.Background()
		e := newEngine(t, st, nil)
		acct, err := e.FirstLogin(ctx, addr, pass)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Wait(ctx, addr); err != nil {
			t.Fatal(err)
		}
		inbox, _ := st.Mailbox(ctx, acct.ID, "INBOX")
		// Local delivery takes the old UIDNEXT...
		local, err := st.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: rawMessage("local", 700)})
		if err != nil {
			t.Fatal(err)
		}
		// ...which the next old-server message also gets.
		newRaw := rawMessage("late old mail", 900)
		oldUID := srv.Append(t, "alice", "INBOX", []string{"$Late"}, time.Date(2022, 5, 6, 7, 8, 9, 0, time.FixedZone("", -4*3600)), newRaw)
		if oldUID != local.UID {
			t.Fatalf("test setup: old UID %d, local UID %d: no collision", oldUID, local.UID)
		}
		srv.Append(t, "alice", "INBOX", nil, time.Time{}, rawMessage("later old mail", 800))
		srv.CreateMailbox(t, "alice", "Later", true)
		srv.Append(t, "alice", "Later", nil, time.Time{}, rawMessage("in a new folder", 600))

		a, _ := st.Account(ctx, addr)
		e.LoggedIn(a, pass)
		if err := e.Wait(ctx, addr); err != nil {
			t.Fatal(err)
		}
		msgs, _ := st.Messages(ctx, inbox.ID)
		if len(msgs) != 8 {
			t.Fatalf("INBOX has %d messages, want 8", len(msgs))
		}
		var sawLocal, sawRenumbered bool
		for _, m := range msgs {
			if m.UID == local.UID {
				sawLocal = m.BlobKey == local.BlobKey
			}
			if m.BlobKey == st.BlobKey(newRaw) {
				sawRenumbered = m.UID > local.UID && m.HasFlag("$Late")
			}
		}
		if !sawLocal || !sawRenumbered {
			t.Errorf("local message kept: %v; colliding old message renumbered: %v", sawLocal, sawRenumbered)
		}
		later, err := st.Mailbox(ctx, acct.ID, "Later")
		if err != nil {
			t.Fatal(err)
		}
		if s, _ := st.Status(ctx, later.ID); s.Messages != 1 {
			t.Errorf("new folder has %d messages", s.Messages)
		}
		// A second run finds nothing new and copies nothing twice.
		if n := e.CatchUp(ctx); n != 1 {
			t.Errorf("CatchUp scheduled %d accounts, want 1", n)
		}
		if err := e.Wait(ctx, addr); err != nil {
			t.Fatal(err)
		}
		if msgs2, _ := st.Messages(ctx, inbox.ID); len(msgs2) != 8 {
			t.Errorf("after a second catch-up INBOX has %d messages", len(msgs2))
		}
	})
}

// TestMasterBulk copies users with the master user and no passwords; the
// user's first login then takes the old server's password.
func TestMasterBulk(t *testing.T) {
	t.Parallel()
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		srv := oldtest.StartKind(t, kind, nil)
		seedMany(t, srv, "bob", "INBOX", 3, 500)
		seedMany(t, srv, "carol", "Sent", 2, 500)
		st, _ := setup(t, srv.IMAPAddr)
		ctx := context.Background()
		e := newEngine(t, st, nil)
		users, err := migrate.ReadUsersCSV(strings.NewReader("user,password\nbob\ncarol@example.test\n# comment\n\nnobody@other.example\n"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range users {
			users[i].MasterUser, users[i].MasterPassword = srv.MasterUser, srv.MasterPassword
		}
		var events atomic.Int32
		res, err := e.MigrateUsers(ctx, oldtest.Domain, users, func(migrate.Event) { events.Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 3 || !res[0].OK || !res[1].OK || res[2].OK {
			t.Fatalf("results %+v", res)
		}
		if events.Load() == 0 {
			t.Error("no progress events")
		}
		compareAll(t, srv, st, "bob")
		compareAll(t, srv, st, "carol")
		bob, bobPass := srv.Address(t, "bob")
		if _, err := st.Authenticate(ctx, bob, bobPass); !errors.Is(err, store.ErrBadPassword) {
			t.Fatalf("bulk account has a known password: %v", err)
		}
		pol, err := auth.New(auth.Options{Store: st, Migrator: e, Delay: -1})
		if err != nil {
			t.Fatal(err)
		}
		login := func(pw string) error {
			_, err := pol.Login(ctx, auth.Request{Service: "test", Remote: netip.MustParseAddr("127.0.0.1"), Username: bob, Password: pw})
			return err
		}
		if err := login("wrong"); err == nil {
			t.Fatal("Login with a wrong password succeeded")
		}
		if err := login(bobPass); err != nil {
			t.Fatalf("first login after bulk: %v", err)
		}
		if _, err := st.Authenticate(ctx, bob, bobPass); err != nil {
			t.Fatalf("password not taken from the old server: %v", err)
		}
		// A wrong master password creates nothing.
		bad := []migrate.Credentials{{Address: "alice", MasterUser: srv.MasterUser, MasterPassword: "nope"}}
		res, err = e.MigrateUsers(ctx, oldtest.Domain, bad, nil)
		if err != nil || res[0].OK || !strings.Contains(res[0].Error, "refused") {
			t.Fatalf("bad master: %+v %v", res, err)
		}
		// The failure in an admin's words (issue 16).
		if p := res[0].Problem; p == nil || p.Kind != oldserver.ProblemPassword || p.Advice == "" {
			t.Errorf("bad master: problem %+v", p)
		}
		if _, err := st.Account(ctx, "alice@example.test"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("account created with a wrong master password: %v", err)
		}
	})
}

func TestReadUsersCSV(t *testing.T) {
	tests := []struct {
		in      string
		want    []string // address:password
		wantErr bool
	}{
		{"alice,pw1\nbob@example.test, spaced \n", []string{"alice:pw1", "bob@example.test: spaced "}, false},
		{"User,Password\nalice\n", []string{"alice:"}, false},
		{"# only a comment\n\n", nil, false},
		{"\"quoted\",\"p,w\"\n", []string{"quoted:p,w"}, false},
		{"a,b,c\n", nil, true},
		{"bad user,pw\n", nil, true},
		{"alice\nALICE\n", nil, true},
		{"a@b@c\n", nil, true},
		{"\"unterminated\n", nil, true},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			got, err := migrate.ReadUsersCSV(strings.NewReader(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tc.wantErr)
			}
			var s []string
			for _, c := range got {
				s = append(s, c.Address+":"+c.Password)
			}
			if fmt.Sprint(s) != fmt.Sprint(tc.want) {
				t.Fatalf("got %q, want %q", s, tc.want)
			}
		})
	}
}

func FuzzReadUsersCSV(f *testing.F) {
	f.Add("alice,pw\nbob\n")
	f.Add("user,password\n\"a\",\"b\"\n")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := migrate.ReadUsersCSV(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, c := range got {
			if c.Address == "" || strings.ContainsAny(c.Address, " \t\r\n,") {
				t.Fatalf("bad address %q accepted", c.Address)
			}
		}
	})
}

// TestFirstLoginConnections: the copy goes on with the connection the first
// login opened, and lists the other mailboxes on a second one while INBOX
// is copied, so that a first login and its whole copy (two connections per
// account) log in to the old server twice.
func TestFirstLoginConnections(t *testing.T) {
	t.Parallel()
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		srv := oldtest.StartKind(t, kind, nil)
		seedMany(t, srv, "bob", "INBOX", 30, 2000)
		srv.CreateMailbox(t, "bob", "Archive", true)
		seedMany(t, srv, "bob", "Archive", 20, 2000)
		addr, pass := srv.Address(t, "bob")
		px := startProxy(t, srv.IMAPAddr, 0, 0, 0, 0)
		st, _ := setup(t, px.addr())
		e := newEngine(t, st, &migrate.Options{ConnsPerAccount: 2})
		ctx := context.Background()
		if _, err := e.FirstLogin(ctx, addr, pass); err != nil {
			t.Fatal(err)
		}
		if err := e.Wait(ctx, addr); err != nil {
			t.Fatal(err)
		}
		if n := compareAll(t, srv, st, "bob"); n != 50 {
			t.Fatalf("compared %d messages, want 50", n)
		}
		if n := px.n.Load(); n != 2 {
			t.Errorf("%d connections to the old server, want 2", n)
		}
	})
}

// TestResumeBeforeListing stops a first copy before the other mailboxes
// were listed (the listing's connection is held back), with INBOX partly
// copied or complete, then resumes it: the copy completes, and INBOX, made
// subscribed at the first login, takes the old server's subscription all
// the same.
func TestResumeBeforeListing(t *testing.T) {
	t.Parallel()
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		for _, tc := range []struct {
			name            string
			inbox, archive  int
			size            int
			opts            *migrate.Options
			stop            func(st *store.Store, acct *store.Account) bool
			inboxIncomplete bool
		}{
			{name: "INBOX partly copied", inbox: 300, archive: 20, size: 3000, opts: &migrate.Options{BatchMessages: 10},
				stop: func(st *store.Store, acct *store.Account) bool {
					return inboxCount(t, st, acct.Address) > 0
				}, inboxIncomplete: true},
			{name: "INBOX done", inbox: 5, archive: 3, size: 1000,
				stop: func(st *store.Store, acct *store.Account) bool {
					m, err := st.Mailbox(context.Background(), acct.ID, "INBOX")
					return err == nil && m.Migration == store.MigDone
				}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				srv := oldtest.StartKind(t, kind, nil)
				seedMany(t, srv, "carol", "INBOX", tc.inbox, tc.size)
				srv.CreateMailbox(t, "carol", "Archive", true)
				seedMany(t, srv, "carol", "Archive", tc.archive, tc.size)
				addr, pass := srv.Address(t, "carol")
				c := srv.Dial(t, "carol")
				if err := c.Unsubscribe("INBOX").Wait(); err != nil {
					t.Fatal(err)
				}
				c.Logout().Wait()
				if subscribedOld(t, srv, "carol", "INBOX") {
					t.Fatal("the old INBOX is still subscribed: the test proves nothing")
				}
				px, release := startHoldProxy(t, srv.IMAPAddr)
				st, path := setup(t, px.addr())
				ctx := context.Background()
				e := newEngine(t, st, tc.opts)
				acct, err := e.FirstLogin(ctx, addr, pass)
				if err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(30 * time.Second)
				for !tc.stop(st, acct) {
					if time.Now().After(deadline) {
						t.Fatal("INBOX not copied far enough")
					}
					time.Sleep(2 * time.Millisecond)
				}
				e.Close()
				release()
				if n := inboxCount(t, st, addr); tc.inboxIncomplete && n >= tc.inbox {
					t.Fatalf("INBOX complete (%d) before the stop: the test proves nothing", n)
				}
				if _, err := st.Mailbox(ctx, acct.ID, "Archive"); err == nil {
					t.Fatal("Archive exists: the listing ran before the stop, the test proves nothing")
				}
				st.Close()

				st2, _ := resumeAfterStop(t, path, acct, pass)
				if n := compareAll(t, srv, st2, "carol"); n != tc.inbox+tc.archive {
					t.Fatalf("compared %d messages, want %d", n, tc.inbox+tc.archive)
				}
			})
		}
	})
}

// subscribedOld says whether the old server lists name as subscribed.
func subscribedOld(t *testing.T, srv *oldtest.Server, user, name string) bool {
	for _, l := range srv.Mailboxes(t, user) {
		if l.Mailbox == name {
			for _, a := range l.Attrs {
				if strings.EqualFold(string(a), `\Subscribed`) {
					return true
				}
			}
		}
	}
	return false
}
