package migrate_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/demo"
	"mailferry/core/migrate"
	"mailferry/core/oldserver"
	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// startDemoOld starts core/demo's server (plaintext) with opts and the
// fixture's domain, and returns it.
func startDemoOld(t testing.TB, opts demo.Options) *demo.Server {
	t.Helper()
	opts.DisableTLS = true
	opts.Domain = "example.test"
	opts.Logger = quietLogger()
	srv, err := demo.Start(context.Background(), &opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func demoPassword(t testing.TB, srv *demo.Server, addr string) string {
	t.Helper()
	for _, u := range srv.Users() {
		if u.Address == addr {
			return u.Password
		}
	}
	t.Fatalf("no demo user %s", addr)
	return ""
}

// demoClient logs in to srv as addr (by its login name) on a connection of
// its own, closed at the end of the test.
func demoClient(t testing.TB, srv *demo.Server, login, password string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(srv.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(login, password).Wait(); err != nil {
		t.Fatalf("login %s: %v", login, err)
	}
	return c
}

// seedDemo appends n messages of about size bytes to each of folders
// (created if not INBOX) on c.
func seedDemo(t testing.TB, c *imapclient.Client, folders []string, n, size int) {
	t.Helper()
	for _, f := range folders {
		if f != "INBOX" {
			if err := c.Create(f, nil).Wait(); err != nil {
				t.Fatal(err)
			}
		}
		for i := range n {
			raw := rawMessage(fmt.Sprintf("%s %d", f, i), size)
			app := c.Append(f, int64(len(raw)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}})
			app.Write(raw)
			app.Close()
			if _, err := app.Wait(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// demoSetup opens a store with example.test migrating to srv under s's
// login rules.
func demoSetup(t testing.TB, srv *demo.Server, form oldserver.LoginForm, defaultDomain string) *store.Store {
	t.Helper()
	st, _ := setup(t, srv.IMAPAddr())
	s := settingsFor(t, srv.IMAPAddr())
	s.LoginForm, s.DefaultDomain = form, defaultDomain
	if err := migrate.SetDomain(context.Background(), st, "example.test", s, true); err != nil {
		t.Fatal(err)
	}
	return st
}

// countMessages is the number of messages of addr's account in the store.
func countMessages(t testing.TB, st *store.Store, addr string) int {
	t.Helper()
	ctx := context.Background()
	a, err := st.Account(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	boxes, err := st.Mailboxes(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range boxes {
		s, err := st.Status(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		n += int(s.Messages)
	}
	return n
}

// firstLoginTime is how long FirstLogin of addr takes.
func firstLoginTime(t testing.TB, e *migrate.Engine, addr, password string) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := e.FirstLogin(context.Background(), addr, password); err != nil {
		t.Fatalf("first login of %s: %v", addr, err)
	}
	return time.Since(start)
}

// A server that wants bare names and delays each refusal: the first user's
// first login pays one refusal (the full address is tried first) and
// teaches the engine the form; the next users' first logins go straight to
// the bare name — also in a new engine, since it is kept in the store. The
// server's count of refused logins tells (times on a loaded test machine
// do not); BenchmarkFirstLoginBareNames prints the times.
func TestFirstLoginLearnsBareNames(t *testing.T) {
	t.Parallel()
	const delay = time.Second
	srv := startDemoOld(t, demo.Options{BareLoginOnly: true, LoginFailDelay: delay})
	st := demoSetup(t, srv, oldserver.LoginAuto, "example.test")
	e := newEngine(t, st, nil)
	d := firstLoginTime(t, e, "bob@example.test", demoPassword(t, srv, "bob@example.test"))
	if n := srv.FailedLogins(); n != 1 || d < delay {
		t.Fatalf("the first first login: %d refusals in %v; want the full address refused once first, after %v", n, d, delay)
	}
	l, err := migrate.Learnt(context.Background(), st, "example.test")
	if err != nil || l == nil || l.LoginForm != oldserver.LoginLocal || l.RefusalDelay < delay {
		t.Fatalf("learnt: %+v, %v", l, err)
	}
	d = firstLoginTime(t, e, "carol@example.test", demoPassword(t, srv, "carol@example.test"))
	if n := srv.FailedLogins(); n != 1 {
		t.Fatalf("a first login after one user logged in was refused %d times (in %v): it should go straight to the bare name", n-1, d)
	}
	e2 := newEngine(t, st, nil)
	d = firstLoginTime(t, e2, "alice@example.test", demoPassword(t, srv, "alice@example.test"))
	if n := srv.FailedLogins(); n != 1 {
		t.Fatalf("a first login in a new engine was refused %d times (in %v)", n-1, d)
	}
	if a, err := st.Account(context.Background(), "alice@example.test"); err != nil || a.OldLogin != "alice" {
		t.Fatalf("account bound to old login %q, %v; want the bare name", a.OldLogin, err)
	}
}

// A probe that learnt the bare-name form, recorded (as the assistant does),
// makes the very first user's first login go straight to the bare name.
func TestProbeTeachesFirstLogin(t *testing.T) {
	t.Parallel()
	srv := startDemoOld(t, demo.Options{BareLoginOnly: true, LoginFailDelay: time.Second})
	st := demoSetup(t, srv, oldserver.LoginAuto, "example.test")
	s, _, err := migrate.DomainSettings(context.Background(), st, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	res, _ := oldserver.Probe(context.Background(), *s, "bob@example.test", demoPassword(t, srv, "bob@example.test"))
	if res == nil || res.IMAP.Learnt == nil {
		t.Fatalf("probe: %+v", res)
	}
	if err := migrate.Learn(context.Background(), st, "example.test", res.IMAP.Learnt); err != nil {
		t.Fatal(err)
	}
	before := srv.FailedLogins()
	e := newEngine(t, st, nil)
	d := firstLoginTime(t, e, "carol@example.test", demoPassword(t, srv, "carol@example.test"))
	if n := srv.FailedLogins() - before; n != 0 {
		t.Fatalf("a first login after the probe was refused %d times (in %v): it should go straight to the bare name", n, d)
	}
}

// An old server capped at 2 connections from this address while the
// user's own client holds one: the copy's extra connections are turned
// away (a BYE greeting, or a close before the greeting), and it completes
// on the connection it has, without stalling; the cap is learnt.
func TestCopyUnderConnectionCap(t *testing.T) {
	t.Parallel()
	for _, drop := range []bool{false, true} {
		t.Run(fmt.Sprintf("drop=%v", drop), func(t *testing.T) {
			t.Parallel()
			srv := startDemoOld(t, demo.Options{MaxConnsPerIP: 2, CapDrop: drop})
			addr := "bob@example.test"
			pass := demoPassword(t, srv, addr)
			seeder := demoClient(t, srv, addr, pass)
			folders := []string{"INBOX", "A", "B", "C", "D"}
			seedDemo(t, seeder, folders, 40, 3000)
			seeder.Logout().Wait()
			seeder.Close()
			demoClient(t, srv, addr, pass) // the user's own client, held open

			st := demoSetup(t, srv, oldserver.LoginFull, "")
			e := newEngine(t, st, &migrate.Options{ConnsPerAccount: 4})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			start := time.Now()
			if _, err := e.FirstLogin(ctx, addr, pass); err != nil {
				t.Fatal(err)
			}
			if err := e.Wait(ctx, addr); err != nil {
				t.Fatalf("copy under a cap of 2 with one held by the user: %v", err)
			}
			took := time.Since(start)
			if n := countMessages(t, st, addr); n != 40*len(folders) {
				t.Fatalf("%d messages copied, want %d", n, 40*len(folders))
			}
			if a, _ := st.Account(ctx, addr); a.Migration != store.MigDone {
				t.Fatalf("account state %q", a.Migration)
			}
			if took > 20*time.Second {
				t.Errorf("the copy took %v: it stalled", took)
			}
			l, err := migrate.Learnt(ctx, st, "example.test")
			if err != nil || l == nil || l.ConnCap != 1 {
				t.Fatalf("learnt: %+v, %v; want a cap of 1 (the one the user's client left)", l, err)
			}
			if !drop && l.ConnCapWords != demo.TooManyConnections {
				t.Errorf("learnt words %q", l.ConnCapWords)
			}
		})
	}
}

// A cap the old server forced down climbs back once the server allows
// more: bob's copy is turned away above 1 connection (the user's client
// holds the other); the server's limit is then raised and carol's copy,
// after the quiet period, opens more than one connection again, never more
// than the admin's max_connections. Before, the lowered cap stayed at 1.
func TestLoweredCapClimbsBack(t *testing.T) {
	t.Parallel()
	srv := startDemoOld(t, demo.Options{MaxConnsPerIP: 2})
	folders := []string{"INBOX", "A", "B", "C", "D", "E"}
	for _, addr := range []string{"bob@example.test", "carol@example.test"} {
		seeder := demoClient(t, srv, addr, demoPassword(t, srv, addr))
		seedDemo(t, seeder, folders, 30, 2000)
		seeder.Logout().Wait()
		seeder.Close()
	}
	held := demoClient(t, srv, "bob@example.test", demoPassword(t, srv, "bob@example.test"))

	st := demoSetup(t, srv, oldserver.LoginFull, "")
	s := settingsFor(t, srv.IMAPAddr())
	s.MaxConnections = 3
	if err := migrate.SetDomain(context.Background(), st, "example.test", s, true); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, st, &migrate.Options{ConnsPerAccount: 6, CapProbeAfter: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	copyAll := func(addr string) {
		t.Helper()
		if _, err := e.FirstLogin(ctx, addr, demoPassword(t, srv, addr)); err != nil {
			t.Fatal(err)
		}
		if err := e.Wait(ctx, addr); err != nil {
			t.Fatal(err)
		}
		if n := countMessages(t, st, addr); n != 30*len(folders) {
			t.Fatalf("%s: %d messages copied, want %d", addr, n, 30*len(folders))
		}
	}
	copyAll("bob@example.test")
	if l, err := migrate.Learnt(ctx, st, "example.test"); err != nil || l == nil || l.ConnCap != 1 {
		t.Fatalf("learnt %+v, %v; want a cap of 1", l, err)
	}
	held.Close()
	srv.SetMaxConnsPerIP(10)
	srv.PeakConnsPerIP()
	time.Sleep(50 * time.Millisecond) // the quiet period
	copyAll("carol@example.test")
	peak := srv.PeakConnsPerIP()
	if peak < 2 {
		t.Fatalf("carol's copy held at most %d connection(s) at once: the cap never climbed back", peak)
	}
	if peak > 3 {
		t.Fatalf("%d connections at once, above max_connections 3", peak)
	}
	t.Logf("after the server allowed more: %d connections at once", peak)
}

// Many accounts at once share the per-old-server cap the admin set: with
// max_connections 3 and a server that turns away a 4th connection, four
// accounts copied at once (4 connections each allowed) all complete, and
// the server never has to turn one away.
func TestAccountsShareTheServerCap(t *testing.T) {
	t.Parallel()
	srv := startDemoOld(t, demo.Options{MaxConnsPerIP: 3})
	users := []string{"alice@example.test", "bob@example.test", "carol@example.test", "catchall@example.test"}
	for _, u := range users {
		c := demoClient(t, srv, u, demoPassword(t, srv, u))
		seedDemo(t, c, []string{"INBOX", "A", "B"}, 15, 2000)
		c.Logout().Wait()
		c.Close()
	}
	st, _ := setup(t, srv.IMAPAddr())
	s := settingsFor(t, srv.IMAPAddr())
	s.MaxConnections = 3
	if err := migrate.SetDomain(context.Background(), st, "example.test", s, true); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, st, &migrate.Options{ConnsPerAccount: 4, Accounts: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	errs := make(chan error, len(users))
	for _, u := range users {
		go func() {
			errs <- e.MigrateAccount(ctx, u, migrate.Credentials{Password: demoPassword(t, srv, u)})
		}()
	}
	for range users {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range users {
		if n := countMessages(t, st, u); n != 45 {
			t.Errorf("%s: %d messages, want 45", u, n)
		}
	}
	if l, _ := migrate.Learnt(ctx, st, "example.test"); l != nil && l.ConnCap != 0 {
		t.Errorf("the server turned a connection away although the admin's cap is its own: %+v", l)
	}
}

// The same against Dovecot with mail_max_userip_connections = 2 while the
// user's own client holds one: Dovecot refuses the extra login with
// "NO [LIMIT] Maximum number of connections from user+IP exceeded", and
// the copy completes on the connection it has.
func TestCopyUnderDovecotUserIPLimit(t *testing.T) {
	t.Parallel()
	srv := oldtest.Start(t, &oldtest.Options{MaxUserIPConnections: 2, Fsync: "never"})
	for _, f := range []string{"INBOX", "A", "B", "C"} {
		if f != "INBOX" {
			srv.CreateMailbox(t, "bob", f, true)
		}
		seedMany(t, srv, "bob", f, 25, 2000)
	}
	srv.CloseSessions()
	addr, pass := srv.Address(t, "bob")
	held := srv.Dial(t, "bob") // the user's own client
	st, _ := setup(t, srv.IMAPAddr)
	e := newEngine(t, st, &migrate.Options{ConnsPerAccount: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := e.FirstLogin(ctx, addr, pass); err != nil {
		t.Fatal(err)
	}
	if err := e.Wait(ctx, addr); err != nil {
		t.Fatalf("copy under Dovecot's limit: %v", err)
	}
	held.Close()
	e.Close() // its connections logged out: the fixture may read
	if n := compareAll(t, srv, st, "bob"); n < 100 {
		t.Fatalf("compared %d messages, want at least 100", n)
	}
	// A cap on one user's sessions lowers no cap of the whole server.
	l, err := migrate.Learnt(ctx, st, oldtest.Domain)
	if err != nil || l == nil || l.ConnCap != 0 || !strings.Contains(l.UserCapWords, "mail_max_userip_connections") {
		t.Fatalf("learnt: %+v, %v", l, err)
	}
}

// What was learnt is only a hint: unreadable facts in the store, or facts
// of another server, change nothing (the forms the settings allow are
// tried as without them), and a learnt bare-name form never sends a bare
// name for a domain that is not the old server's default domain.
func TestLearntFactsAreOnlyHints(t *testing.T) {
	t.Parallel()
	srv := startDemoOld(t, demo.Options{LocalPartLogin: true})
	ctx := context.Background()
	st := demoSetup(t, srv, oldserver.LoginAuto, "")
	for i, js := range []string{`{not json`, `{"server":"192.0.2.1:143","login_form":"local"}`,
		`{"server":"` + srv.IMAPAddr() + `","login_form":"local","conn_cap":-5}`} {
		if err := st.SetOldServerLearnt(ctx, "example.test", js); err != nil {
			t.Fatal(err)
		}
		e := newEngine(t, st, nil)
		addr := []string{"alice@example.test", "bob@example.test", "carol@example.test"}[i]
		acct, err := e.FirstLogin(ctx, addr, demoPassword(t, srv, addr))
		if err != nil {
			t.Fatalf("facts %s: first login: %v", js, err)
		}
		if acct.OldLogin != addr {
			t.Fatalf("facts %s: account bound to %q: a bare name was sent without the default domain", js, acct.OldLogin)
		}
		if err := e.Wait(ctx, addr); err != nil {
			t.Fatalf("facts %s: copy: %v", js, err)
		}
	}
}
