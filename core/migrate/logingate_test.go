package migrate_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mailferry/core/migrate"
	"mailferry/core/oldserver"
	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// loginHoldProxy forwards connections to target; while holding, a new
// connection is accepted but not forwarded (the old server's greeting
// does not come: a first login waits as behind a slow old server) until
// release.
type loginHoldProxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	holding bool
	held    chan struct{}   // closed by release
	each    []chan struct{} // of each connection held, in order: releaseFirst
	waits   atomic.Int32    // connections that were held
	conns   atomic.Int32    // connections accepted
	fetched []*atomic.Int64 // UID FETCH commands sent on each connection, in order
	wg      sync.WaitGroup
}

func startLoginHoldProxy(t *testing.T, target string) *loginHoldProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &loginHoldProxy{ln: ln, target: target, held: make(chan struct{})}
	t.Cleanup(func() { p.release(); ln.Close(); p.wg.Wait() })
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.conns.Add(1)
			fetched := &fetchCounter{n: new(atomic.Int64)}
			p.mu.Lock()
			var held, own chan struct{}
			if p.holding {
				held, own = p.held, make(chan struct{})
				p.each = append(p.each, own)
			}
			p.fetched = append(p.fetched, fetched.n)
			p.mu.Unlock()
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer c.Close()
				if held != nil {
					p.waits.Add(1)
					select {
					case <-held:
					case <-own:
					}
				}
				u, err := net.Dial("tcp", p.target)
				if err != nil {
					return
				}
				defer u.Close()
				done := make(chan struct{}, 2)
				go func() {
					io.Copy(u, io.TeeReader(c, fetched))
					u.(*net.TCPConn).CloseWrite()
					done <- struct{}{}
				}()
				go func() { io.Copy(c, u); done <- struct{}{} }()
				<-done
				<-done
			}()
		}
	}()
	return p
}

func (p *loginHoldProxy) addr() string { return p.ln.Addr().String() }

// fetches is how many UID FETCH commands each connection sent so far, in
// the order they were accepted.
func (p *loginHoldProxy) fetches() []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := make([]int64, len(p.fetched))
	for i, f := range p.fetched {
		n[i] = f.Load()
	}
	return n
}

// fetchCounter counts the UID FETCH commands in what a client sends (its
// command lines; the copy sends no literals).
type fetchCounter struct {
	n    *atomic.Int64
	line []byte // the line so far
}

func (f *fetchCounter) Write(b []byte) (int, error) {
	for _, c := range b {
		if c != '\n' {
			if len(f.line) < 64 { // the tag and the command name are enough
				f.line = append(f.line, c)
			}
			continue
		}
		if _, rest, ok := strings.Cut(string(f.line), " "); ok && strings.HasPrefix(strings.ToUpper(rest), "UID FETCH ") {
			f.n.Add(1)
		}
		f.line = f.line[:0]
	}
	return len(b), nil
}

// hold makes new connections wait until release.
func (p *loginHoldProxy) hold() {
	p.mu.Lock()
	p.holding = true
	p.mu.Unlock()
}

// pass lets new connections through; those held wait on.
func (p *loginHoldProxy) pass() {
	p.mu.Lock()
	p.holding = false
	p.mu.Unlock()
}

// release lets new connections and those held through.
func (p *loginHoldProxy) release() {
	p.mu.Lock()
	p.holding = false
	close(p.held)
	p.held, p.each = make(chan struct{}), nil
	p.mu.Unlock()
}

// releaseFirst lets the first connection still held through.
func (p *loginHoldProxy) releaseFirst() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.each) > 0 {
		close(p.each[0])
		p.each = p.each[1:]
	}
}

// While a first login waits for the old server's answer, copies already
// running fetch nothing more but one (the pass: logingate.go), so that
// the morning's burst of logins is answered at the old server's pace, not
// behind copies loading the same old server and cores; once it is
// answered, they go on and finish, every message exact. Without the gate,
// bob's, carol's and catchall's copies all go on through alice's login.
func TestFirstLoginsBeforeCopies(t *testing.T) {
	t.Parallel()
	const n = 3000
	srv, px, st := bobCarolAlice(t, n)
	bob, bobPass := srv.Address(t, "bob")
	carol, carolPass := srv.Address(t, "carol")
	alice, alicePass := srv.Address(t, "alice")
	other, otherPass := srv.Address(t, "catchall")
	for i := range n {
		srv.Append(t, "catchall", "INBOX", nil, time.Now(), fmt.Appendf(nil, "Subject: %d\r\n\r\nbody %d of catchall\r\n", i, i))
	}
	// Small chunks and batches: each copy takes many FETCHes and commits.
	// Every copy streams at once (no turns, Options.Streams): the gate
	// alone holds them.
	e := newEngine(t, st, &migrate.Options{ConnsPerAccount: 1, ChunkMessages: 1, BatchMessages: 1, LoginHold: time.Minute, Streams: -1})
	ctx := context.Background()
	for _, u := range [][2]string{{carol, carolPass}, {other, otherPass}} {
		if _, err := e.FirstLogin(ctx, u[0], u[1]); err != nil {
			t.Fatal(err)
		}
	}
	copiedBob, login := loginBesideCopy(t, e, px, bob, bobPass, alice, alicePass, *slowBobLogin)
	copied := func() [3]int64 {
		c := [3]int64{copiedBob()}
		for _, a := range e.Progress() {
			switch a.Address {
			case carol:
				c[1] = a.MessagesDone
			case other:
				c[2] = a.MessagesDone
			}
		}
		return c
	}
	// Her hold begins at once, or once the copies went on as long as
	// bob's login held them if hers came sooner (logingate.go): bob's
	// copy can copy its first message sooner than his login took, and
	// then her login held nothing (CI: three copies went on).
	_, domain, _ := strings.Cut(alice, "@")
	for deadline := time.Now().Add(30 * time.Second); !migrate.HoldsCopies(e, domain); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("alice's first login, waiting for the old server for 30 s, never held the copies")
		}
	}
	// The FETCHes each copy's connection sends from then on: a held copy
	// sends none but the one it may have asked for just before the hold
	// began (ChunkMessages 1: one message's). Messages it fetched before
	// still get committed (up to its committer's queue, behind the pass
	// holder's commits): a count of messages copied counted them, once
	// it had seemed to settle (-race at load 20: carol's copy, held, went
	// from 12 to 16 messages while catchall's, the pass's, went from 14
	// to 52).
	f0, c0 := px.fetches(), copied()
	// Until the copies going on have moved by 40 messages: not so long
	// that one finishes (carol copied 1,900 messages in 500 ms without
	// the race detector), long enough to show a copy held (under the race
	// detector at load 30 a copy holding the pass moved by 4 messages in
	// 150 ms).
	var c1 [3]int64
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		c1 = copied()
		moved := int64(0)
		for i := range c1 {
			moved += c1[i] - c0[i]
		}
		if moved >= 40 || time.Now().After(deadline) {
			break
		}
	}
	f1 := px.fetches()
	for i := range c0 {
		if c0[i] >= n || c1[i] >= n {
			t.Fatalf("a copy (bob, carol, catchall: %v of %d messages) finished while alice's first login waited: the copies were not held, or the test needs them longer", c1, n)
		}
	}
	went := 0
	for i := range f1 {
		before := int64(0)
		if i < len(f0) {
			before = f0[i]
		}
		if f1[i] > before+1 {
			went++
		}
	}
	if went > 1 {
		t.Errorf("%d connections sent FETCHes (%v to %v each; bob, carol, catchall copied %v to %v messages) while alice's first login held the copies; want one copy at most", went, f0, f1, c0, c1)
	}
	px.release()
	if err := <-login; err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{bob, carol, alice, other} {
		if err := e.Wait(ctx, a); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
	}
	for u, want := range map[string]int{"bob": n, "carol": n, "alice": 1, "catchall": n} {
		if got := compareAll(t, srv, st, u); got != want {
			t.Errorf("%s: compared %d messages, want %d", u, got, want)
		}
	}
}

// The hold is bounded: a login that never gets an answer holds copies
// for Options.LoginHold, not for ever.
func TestLoginHoldBounded(t *testing.T) {
	t.Parallel()
	srv := oldtest.StartKind(t, oldtest.InProcess, nil)
	bob, bobPass := srv.Address(t, "bob")
	alice, alicePass := srv.Address(t, "alice")
	srv.Append(t, "bob", "INBOX", nil, time.Now(), []byte("Subject: b\r\n\r\nbody of bob\r\n"))
	px := startLoginHoldProxy(t, srv.IMAPAddr)
	st, _ := setup(t, px.addr())
	e := newEngine(t, st, &migrate.Options{ConnsPerAccount: 1, LoginHold: 300 * time.Millisecond})
	ctx := context.Background()
	// bob's account, copied once; its catch-up below needs no login.
	if _, err := e.FirstLogin(ctx, bob, bobPass); err != nil {
		t.Fatal(err)
	}
	if err := e.Wait(ctx, bob); err != nil {
		t.Fatal(err)
	}
	srv.Append(t, "bob", "INBOX", nil, time.Now(), []byte("Subject: b2\r\n\r\nmore for bob\r\n"))
	px.hold()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go e.FirstLogin(lctx, alice, alicePass) // never answered while held
	for px.waits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// A catch-up needs a connection too: let it through, alice's stays held.
	px.pass()
	t0 := time.Now()
	e.CatchUp(ctx)
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := e.Wait(wctx, bob); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took > 20*time.Second {
		t.Fatalf("bob's catch-up took %v behind a login that never ends", took)
	}
	if got := compareAll(t, srv, st, "bob"); got != 2 {
		t.Errorf("bob: compared %d messages, want 2", got)
	}
}

// The gate is per old server: while a first login of one domain waits
// for its old server, the copy of another domain's account from another
// old server goes on (wrong passwords tried at one migrating domain slow
// no other domain). Without it, bob@other.test's copy stops during
// alice@example.test's login.
func TestFirstLoginsHoldOnlyTheirOldServer(t *testing.T) {
	t.Parallel()
	srvA := oldtest.StartKind(t, oldtest.InProcess, nil)
	srvB := oldtest.StartKind(t, oldtest.InProcess, nil)
	alice, alicePass := srvA.Address(t, "alice")
	_, bobPass := srvB.Address(t, "bob")
	const n = 3000
	fillBobAlice(t, srvB, srvA, n)
	px := startLoginHoldProxy(t, srvA.IMAPAddr)
	st, _ := setup(t, px.addr()) // example.test: srvA, behind the proxy
	other := settingsFor(t, srvB.IMAPAddr)
	other.LoginForm = oldserver.LoginLocal // bob@other.test is "bob" at srvB
	ctx := context.Background()
	if err := migrate.SetDomain(ctx, st, "other.test", other, true); err != nil {
		t.Fatal(err)
	}
	const bob = "bob@other.test"
	e := newEngine(t, st, &migrate.Options{ConnsPerAccount: 1, ChunkMessages: 1, BatchMessages: 1, LoginHold: time.Minute})
	copied, login := loginBesideCopy(t, e, px, bob, bobPass, alice, alicePass, 0)
	before := copied()
	var during int64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if during = copied(); during > before+10 || during == n {
			break
		}
	}
	if before < n && during <= before+10 {
		t.Errorf("bob's copy from another old server went from %d to only %d messages in 5 s while alice's first login waited for hers", before, during)
	}
	px.release()
	if err := <-login; err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{bob, alice} {
		if err := e.Wait(ctx, a); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
	}
	acct, err := st.Account(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := st.Mailbox(ctx, acct.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := st.Status(ctx, inbox.ID); err != nil || s.Messages != n {
		t.Errorf("bob@other.test's INBOX: %d messages (%v), want %d", s.Messages, err, n)
	}
}

// loginBesideCopy starts bob's first login (answered after slow if not
// 0: held at px that long) and, once his copy has copied a message,
// alice's first login through px, held: it returns when her login waits
// for her old server, with bob's count of messages copied and the channel
// her login's end comes on.
func loginBesideCopy(t *testing.T, e *migrate.Engine, px *loginHoldProxy, bob, bobPass, alice, alicePass string, slow time.Duration) (copied func() int64, login <-chan error) {
	t.Helper()
	ctx := context.Background()
	if slow > 0 {
		ch := heldLogin(e, px, bob, bobPass)
		time.Sleep(slow)
		px.release()
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	} else if _, err := e.FirstLogin(ctx, bob, bobPass); err != nil {
		t.Fatal(err)
	}
	copied = func() int64 {
		for _, a := range e.Progress() {
			if a.Address == bob {
				return a.MessagesDone
			}
		}
		return 0
	}
	for deadline := time.Now().Add(30 * time.Second); copied() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("bob's copy did not start")
		}
	}
	return copied, heldLogin(e, px, alice, alicePass)
}

// heldLogin starts user's first login with px holding new connections
// and returns once px holds its connection, with the channel its end
// comes on.
func heldLogin(e *migrate.Engine, px *loginHoldProxy, user, pass string) <-chan error {
	w := px.waits.Load()
	px.hold()
	done := make(chan error, 1)
	go func() {
		_, err := e.FirstLogin(context.Background(), user, pass)
		done <- err
	}()
	for px.waits.Load() == w {
		time.Sleep(time.Millisecond)
	}
	return done
}

// bobCarolAlice is an old server where bob and carol have n messages
// each and alice one, the proxy in front of it and a store migrating
// from the proxy.
func bobCarolAlice(t *testing.T, n int) (*oldtest.Server, *loginHoldProxy, *store.Store) {
	t.Helper()
	srv := oldtest.StartKind(t, oldtest.InProcess, nil)
	fillBobAlice(t, srv, srv, n)
	for i := range n {
		srv.Append(t, "carol", "INBOX", nil, time.Now(), fmt.Appendf(nil, "Subject: %d\r\n\r\nbody %d of carol\r\n", i, i))
	}
	px := startLoginHoldProxy(t, srv.IMAPAddr)
	st, _ := setup(t, px.addr())
	return srv, px, st
}

// fillBobAlice gives bob n messages at bobs and alice one at alices.
func fillBobAlice(t *testing.T, bobs, alices *oldtest.Server, n int) {
	t.Helper()
	for i := range n {
		bobs.Append(t, "bob", "INBOX", nil, time.Now(), fmt.Appendf(nil, "Subject: %d\r\n\r\nbody %d of bob\r\n", i, i))
	}
	alices.Append(t, "alice", "INBOX", nil, time.Now(), []byte("Subject: a\r\n\r\nbody of alice\r\n"))
}

// A user who logs in during a burst of first logins sees mail arriving:
// one copy goes on through the logins' hold (the pass), the first logged
// in's, and the next in the order of the logins after it, while another
// user's first login still waits for the old server. Without the pass no
// copy starts before alice's login ends (held here for LoginHold, a
// minute); without the turns, carol's or catchall's copy could take the
// pass before bob's.
func TestFirstLoginCopiedThroughABurst(t *testing.T) {
	t.Parallel()
	const n = 200
	srv, px, st := bobCarolAlice(t, n)
	bob, bobPass := srv.Address(t, "bob")
	carol, carolPass := srv.Address(t, "carol")
	alice, alicePass := srv.Address(t, "alice")
	other, otherPass := srv.Address(t, "catchall")
	for i := range n {
		srv.Append(t, "catchall", "INBOX", nil, time.Now(), fmt.Appendf(nil, "Subject: %d\r\n\r\nbody %d of catchall\r\n", i, i))
	}
	e := newEngine(t, st, &migrate.Options{ConnsPerAccount: 2, ChunkMessages: 10, BatchMessages: 10, LoginHold: time.Minute})
	events, stop := e.Subscribe()
	defer stop()
	var order []string // "bob running", "bob done", ... as the events came
	var omu sync.Mutex
	go func() {
		for ev := range events {
			if ev.Kind == migrate.EventState && (ev.Account.State == "running" || ev.Account.State == "done") {
				omu.Lock()
				order = append(order, ev.Account.Address+" "+ev.Account.State)
				omu.Unlock()
			}
		}
	}()
	ctx := context.Background()
	px.hold()
	login := make(chan error, 1)
	go func() {
		_, err := e.FirstLogin(ctx, alice, alicePass)
		login <- err
	}()
	for px.waits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	px.pass() // alice's connection stays held; the others go through
	for _, u := range [][2]string{{bob, bobPass}, {carol, carolPass}, {other, otherPass}} {
		if _, err := e.FirstLogin(ctx, u[0], u[1]); err != nil {
			t.Fatal(err)
		}
		// Bob's job asks for the pass before carol logs in: the pass
		// goes to the first job asking while none earlier waits (under
		// the race detector at load 30 carol's job once asked first);
		// carol's and catchall's then wait for it in their turns.
		for deadline := time.Now().Add(30 * time.Second); u[0] == bob; time.Sleep(time.Millisecond) {
			omu.Lock()
			n := len(order)
			omu.Unlock()
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("bob's copy not running after 30 s while alice's first login waits for the old server")
			}
		}
	}
	// Copied (their password hashes, which e.Wait waits for too, stay
	// behind the logins).
	copiesDoneDuring(t, e, 30*time.Second, login, "alice", bob, carol, other)
	px.release()
	if err := <-login; err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{alice, bob, carol, other} {
		if err := e.Wait(ctx, a); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
	}
	for u, want := range map[string]int{"bob": n, "carol": n, "alice": 1, "catchall": n} {
		if got := compareAll(t, srv, st, u); got != want {
			t.Errorf("%s: compared %d messages, want %d", u, got, want)
		}
	}
	omu.Lock()
	defer omu.Unlock()
	bobDone, carolDone := slices.Index(order, bob+" done"), slices.Index(order, carol+" done")
	carolRunning, otherRunning := slices.Index(order, carol+" running"), slices.Index(order, other+" running")
	if bobDone < 0 || carolDone < 0 || carolRunning < bobDone || otherRunning < carolDone {
		t.Errorf("copies through alice's login: %q; want each done before the next logged in is running (bob, carol, catchall)", order)
	}
}

// The pass goes to a job that can copy: one holding a place under the old
// server's cap. Logins take places as they ask and jobs their turns as
// the logins are answered, so the job of the first login answered may
// have no place (those went to logins asking before it, still in
// flight). Had it taken the pass, it would have waited through the hold
// for a place, which the held jobs' kept connections keep until the hold
// ends, and no copy would have gone on through the hold: here alice's
// login, answered first, found the cap of two taken by bob's and carol's,
// and bob's copy (his login answered next) waited for carol's login to
// end (a minute; its kept connection's 20 s here) without the place
// before the gate.
func TestPassToAJobWithAPlace(t *testing.T) {
	t.Parallel()
	const n = 50
	srv := oldtest.StartKind(t, oldtest.InProcess, nil)
	cred := map[string][2]string{}
	for _, u := range []string{"bob", "carol", "alice"} {
		a, p := srv.Address(t, u)
		cred[u] = [2]string{a, p}
		for i := range n {
			srv.Append(t, u, "INBOX", nil, time.Now(), fmt.Appendf(nil, "Subject: %d\r\n\r\nbody %d of %s\r\n", i, i, u))
		}
	}
	px, st := holdProxyCapped(t, srv, 2)
	ctx := context.Background()
	e := newEngine(t, st, &migrate.Options{ConnsPerAccount: 1, LoginHold: time.Minute})
	login := func(u string) chan error {
		ch := make(chan error, 1)
		go func() {
			_, err := e.FirstLogin(ctx, cred[u][0], cred[u][1])
			ch <- err
		}()
		return ch
	}
	px.hold()
	bob := login("bob") // takes a place as it asks, held at the old server
	for px.waits.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	carol := login("carol") // the second place, held too
	for px.waits.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	px.pass()
	if err := <-login("alice"); err != nil { // no place free: answered first
		t.Fatal(err)
	}
	px.releaseFirst() // bob's login is answered; carol's still waits
	if err := <-bob; err != nil {
		t.Fatal(err)
	}
	// Within 15 s: a kept connection not taken within 20 s is closed,
	// its place freed, and the job that holds the pass copies then.
	copiesDoneDuring(t, e, 15*time.Second, carol, "carol", cred["bob"][0])
	px.release()
	if err := <-carol; err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"bob", "carol", "alice"} {
		if err := e.Wait(ctx, cred[u][0]); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if got := compareAll(t, srv, st, u); got != n {
			t.Errorf("%s: compared %d messages, want %d", u, got, n)
		}
	}
}

// copiesDoneDuring fails t unless the copies of addresses are done within
// d while who's first login (its result comes on login) still waits for
// the old server.
func copiesDoneDuring(t *testing.T, e *migrate.Engine, d time.Duration, login <-chan error, who string, addresses ...string) {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(5 * time.Millisecond) {
		done := 0
		for _, a := range e.Progress() {
			if slices.Contains(addresses, a.Address) && a.State == "done" {
				done++
			}
		}
		if done == len(addresses) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("copies of %v not done after %v while %s's first login waits for the old server: %+v", addresses, d, who, e.Progress())
		}
	}
	select {
	case err := <-login:
		t.Fatalf("%s's login ended (%v) while the old server held it", who, err)
	default:
	}
}

// slowBobLogin holds bob's login in TestFirstLoginsBeforeCopies at the
// proxy (-slowbob 10s): alice's login then comes before the copies went
// on as long as bob's held them, the interleaving that failed in CI once
// in a while; without her hold beginning once they have
// (TestLoginGateHoldsOnceCopiesWentOn), the test fails every time (her
// login never holds the copies). Not by default: the copies go on
// meanwhile, and on a quiet machine one would finish.
var slowBobLogin = flag.Duration("slowbob", 0, "TestFirstLoginsBeforeCopies: hold bob's first login this long at the old server")
