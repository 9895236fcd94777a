package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mailferry/core/migrate"
	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// gateProxy holds every connection (accepted, nothing forwarded) until
// want of them are open at once or wait passed, then forwards them all to
// target: reached tells which came first.
type gateProxy struct {
	ln      net.Listener
	target  string
	want    int32
	open    atomic.Int32
	gate    chan struct{}
	once    sync.Once
	reached atomic.Bool
	atGate  atomic.Int32 // connections open when the gate opened
	wg      sync.WaitGroup
}

func startGateProxy(t *testing.T, target string, want int, wait time.Duration) *gateProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &gateProxy{ln: ln, target: target, want: int32(want), gate: make(chan struct{})}
	timer := time.AfterFunc(wait, func() { p.once.Do(func() { p.atGate.Store(p.open.Load()); close(p.gate) }) })
	t.Cleanup(func() { timer.Stop(); p.once.Do(func() { close(p.gate) }); ln.Close(); p.wg.Wait() })
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if p.open.Add(1) >= p.want {
				p.once.Do(func() { p.reached.Store(true); p.atGate.Store(p.open.Load()); close(p.gate) })
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer c.Close()
				<-p.gate
				u, err := net.Dial("tcp", p.target)
				if err != nil {
					return
				}
				defer u.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				go func() { io.Copy(c, u); done <- struct{}{} }()
				<-done
				<-done
			}()
		}
	}()
	return p
}

func (p *gateProxy) addr() string { return p.ln.Addr().String() }

// manyAccounts starts an in-process old server with n users (u0, u1, ...)
// of msgs messages each in INBOX: the users' addresses and passwords,
// and their credentials for MigrateUsers.
func manyAccounts(t *testing.T, n, msgs int) (*oldtest.Server, map[string]string, []migrate.Credentials) {
	t.Helper()
	users := map[string]string{}
	for i := range n {
		users[fmt.Sprintf("u%d@%s", i, oldtest.Domain)] = fmt.Sprintf("Secret-u%d-123", i)
	}
	srv := oldtest.StartKind(t, oldtest.InProcess, &oldtest.Options{Users: users})
	var creds []migrate.Credentials
	for a, p := range users {
		for j := range msgs {
			srv.Append(t, a, "INBOX", nil, time.Now(), fmt.Appendf(nil, "Subject: %d\r\n\r\nbody %d of %s\r\n", j, j, a))
		}
		creds = append(creds, migrate.Credentials{Address: a, Password: p})
	}
	return srv, users, creds
}

// Accounts are copied as many at once as the old server takes
// connections (its cap, 10 by default), not a fixed 4: a bulk run of 8
// users opens 8 connections at once (each user's login check, kept for
// its copy). With 4 at once, 4 wait for the others' whole copies, and the
// old server's other 6 places stay unused.
func TestAccountsUpToTheCap(t *testing.T) {
	t.Parallel()
	const n = 8
	srv, users, creds := manyAccounts(t, n, 3)
	px := startGateProxy(t, srv.IMAPAddr, n, 5*time.Second)
	st, _ := setup(t, px.addr())
	e := newEngine(t, st, &migrate.Options{ConnsPerAccount: 1})
	ctx := context.Background()
	res, err := e.MigrateUsers(ctx, oldtest.Domain, creds, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.OK {
			t.Fatalf("%s: %s", r.Address, r.Error)
		}
	}
	if !px.reached.Load() {
		t.Errorf("%d connections at once after %v, want %d (one per account)", px.atGate.Load(), 5*time.Second, n)
	}
	for a, p := range users {
		if n := compareAll(t, srv, st, a); n != 3 {
			t.Errorf("%s: compared %d messages, want 3", a, n)
		}
		// The hash is stored by the time MigrateUsers returns.
		if _, err := st.Authenticate(ctx, a, p); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
}

// A bulk copy with the user's password does not wait for its argon2id
// hash (130 ms of CPU here, per account): the copy is done while the
// hash waits its turn, the password is answered from memory meanwhile
// (CheckPending), and MigrateUsers returns once the hash is stored.
func TestBulkHashOffTheCopy(t *testing.T) {
	t.Parallel()
	srv := oldtest.StartKind(t, oldtest.InProcess, nil)
	addr, pass := srv.Address(t, "carol")
	srv.Append(t, "carol", "INBOX", nil, time.Now(), []byte("Subject: x\r\n\r\nbody\r\n"))
	st, _ := setup(t, srv.IMAPAddr)
	e := newEngine(t, st, &migrate.Options{ConnsPerAccount: 1})
	release := migrate.HoldBackgroundHashes(e)
	ctx := context.Background()
	copied := make(chan struct{})
	ch, stop := e.Subscribe()
	defer stop()
	go func() {
		for ev := range ch {
			if ev.Account.State == store.MigDone {
				close(copied)
				return
			}
		}
	}()
	done := make(chan error, 1)
	go func() {
		_, err := e.MigrateUsers(ctx, oldtest.Domain, []migrate.Credentials{{Address: addr, Password: pass}}, nil)
		done <- err
	}()
	select {
	case <-copied:
	case <-time.After(30 * time.Second):
		t.Fatal("the copy did not finish while the hash waited")
	}
	if n := compareAll(t, srv, st, "carol"); n != 1 {
		t.Fatalf("compared %d messages, want 1", n)
	}
	acct, err := st.Account(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Authenticate(ctx, addr, pass); !errors.Is(err, store.ErrPasswordPending) {
		t.Fatalf("Authenticate while the hash waits: %v, want ErrPasswordPending", err)
	}
	if known, ok := e.CheckPending(acct, pass); !known || !ok {
		t.Fatalf("CheckPending: known %v ok %v", known, ok)
	}
	if known, ok := e.CheckPending(acct, pass+"x"); !known || ok {
		t.Fatalf("CheckPending of a wrong password: known %v ok %v", known, ok)
	}
	select {
	case err := <-done:
		t.Fatalf("MigrateUsers returned (%v) before the hash was stored", err)
	case <-time.After(200 * time.Millisecond):
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := st.Authenticate(ctx, addr, pass); err != nil {
		t.Fatalf("Authenticate after MigrateUsers: %v", err)
	}
}

// A first login that found no free place under the old server's cap
// keeps its connection while its copy waits for one: the copy starts on
// it, the old server is not asked for a second login of the user. With a
// cap of 1 and three first logins (carol's held at the old server's door
// while alice and bob log in, so that no copy starts before all three are
// answered): three connections in all, not five.
func TestKeptConnWaitsForPlace(t *testing.T) {
	t.Parallel()
	srv := oldtest.StartKind(t, oldtest.InProcess, nil)
	users := []string{"alice", "bob", "carol"}
	pass := map[string]string{}
	for i, u := range users {
		a, p := srv.Address(t, u)
		pass[a] = p
		users[i] = a
		for j := range 20 {
			srv.Append(t, u, "INBOX", nil, time.Now(), fmt.Appendf(nil, "Subject: %d\r\n\r\nbody %d of %s\r\n", j, j, u))
		}
	}
	px, st := holdProxyCapped(t, srv, 1)
	ctx := context.Background()
	e := newEngine(t, st, &migrate.Options{LoginHold: time.Minute})
	px.hold()
	carol := make(chan error, 1)
	go func() {
		_, err := e.FirstLogin(ctx, users[2], pass[users[2]])
		carol <- err
	}()
	for px.waits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	px.pass()
	for _, a := range users[:2] {
		if _, err := e.FirstLogin(ctx, a, pass[a]); err != nil {
			t.Fatal(err)
		}
	}
	px.release()
	if err := <-carol; err != nil {
		t.Fatal(err)
	}
	for _, a := range users {
		if err := e.Wait(ctx, a); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		if got := compareAll(t, srv, st, u); got != 20 {
			t.Errorf("%s: compared %d messages, want 20", u, got)
		}
	}
	if n := px.conns.Load(); n != 3 {
		t.Errorf("%d connections to the old server for three first logins and their copies, want 3", n)
	}
}

// holdProxyCapped puts a loginHoldProxy before srv and a store whose
// domain migrates from it with a connection cap of places.
func holdProxyCapped(t *testing.T, srv *oldtest.Server, places int) (*loginHoldProxy, *store.Store) {
	t.Helper()
	px := startLoginHoldProxy(t, srv.IMAPAddr)
	st, _ := setup(t, px.addr())
	s := settingsFor(t, px.addr())
	s.MaxConnections = places
	if err := migrate.SetDomain(context.Background(), st, oldtest.Domain, s, true); err != nil {
		t.Fatal(err)
	}
	return px, st
}

// A first login's account is made with its first login noted, in one
// commit: the login's store.NoteLogin then writes nothing (each commit is
// an fsync on the one writer, which a burst of 50 first logins queues on).
func TestFirstLoginNotedWithAccount(t *testing.T) {
	t.Parallel()
	srv := oldtest.StartKind(t, oldtest.InProcess, nil)
	addr, pass := srv.Address(t, "carol")
	st, _ := setup(t, srv.IMAPAddr)
	e := newEngine(t, st, nil)
	ctx := context.Background()
	acct, err := e.FirstLogin(ctx, addr, pass)
	if err != nil {
		t.Fatal(err)
	}
	if acct.FirstLogin.IsZero() {
		t.Error("FirstLogin returned an account without its first login")
	}
	stored, err := st.Account(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if stored.FirstLogin.IsZero() || !stored.FirstLogin.Equal(acct.FirstLogin) {
		t.Errorf("stored first login %v, returned %v", stored.FirstLogin, acct.FirstLogin)
	}
	if err := e.Wait(ctx, addr); err != nil {
		t.Fatal(err)
	}
}

// Once a bulk run's copies are done and no other copy runs, the password
// hashes it left go at once (up to the CPUs, in the store's hashing
// slots), not one at a time: `mailferry migrate` of 50 accounts waited
// seconds for them after its last copy. Here the one-at-a-time turn never
// comes, and the run still returns with every hash stored, each
// verifying.
func TestBulkHashesAtOnceAfterTheCopies(t *testing.T) {
	t.Parallel()
	srv := oldtest.StartKind(t, oldtest.InProcess, nil)
	st, _ := setup(t, srv.IMAPAddr)
	e := newEngine(t, st, &migrate.Options{ConnsPerAccount: 1})
	release := migrate.HoldOneHashAtATime(e)
	defer release()
	var creds []migrate.Credentials
	for _, u := range []string{"alice", "bob", "carol"} {
		addr, pass := srv.Address(t, u)
		creds = append(creds, migrate.Credentials{Address: addr, Password: pass})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := e.MigrateUsers(ctx, oldtest.Domain, creds, nil)
	if err != nil {
		t.Fatalf("MigrateUsers: %v (its hashes waited for the one-at-a-time turn)", err)
	}
	for i, r := range res {
		if !r.OK {
			t.Fatalf("%s: %s", r.Address, r.Error)
		}
		if _, err := st.Authenticate(ctx, creds[i].Address, creds[i].Password); err != nil {
			t.Errorf("%s: the stored hash does not verify: %v", r.Address, err)
		}
	}
}

// Accounts copied at once download their mail in turn (Options.Streams),
// not round robin: with one stream at a time, four accounts whose copies
// start together (their login checks held until all four are open) fill
// their INBOXes one after another, so that the first is done as soon as
// it alone could be, not with the last. Without the turns their batches
// interleave.
func TestAccountsStreamInTurn(t *testing.T) {
	t.Parallel()
	const n, msgs = 4, 200
	srv, users, creds := manyAccounts(t, n, msgs)
	px := startGateProxy(t, srv.IMAPAddr, n, 5*time.Second)
	st, _ := setup(t, px.addr())
	e := newEngine(t, st, &migrate.Options{ConnsPerAccount: 1, Streams: 1, ChunkMessages: 5, BatchMessages: 5, BatchDelay: time.Millisecond})
	// Seen in Progress, polled: when each account's first messages were
	// in, and all of them (a poll may miss a moment, never invent one).
	first, last := map[string]int{}, map[string]int{}
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for poll := 1; ; poll++ {
			for _, a := range e.Progress() {
				if _, ok := first[a.Address]; !ok && a.MessagesDone > 0 && a.MessagesDone < msgs {
					first[a.Address] = poll
				}
				if _, ok := last[a.Address]; !ok && a.MessagesDone == msgs {
					last[a.Address] = poll
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	}()
	res, err := e.MigrateUsers(context.Background(), oldtest.Domain, creds, nil)
	close(stop)
	<-polled
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.OK {
			t.Fatalf("%s: %s", r.Address, r.Error)
		}
	}
	for a := range users {
		if got := compareAll(t, srv, st, a); got != msgs {
			t.Errorf("%s: compared %d messages, want %d", a, got, msgs)
		}
	}
	seen := 0
	for a := range users {
		if first[a] != 0 {
			seen++
		}
		for b := range users {
			if a != b && first[a] != 0 && first[b] != 0 && first[a] < first[b] && first[b] < last[a] {
				t.Errorf("%s's messages came in (polls %d to %d) while %s's did (%d to %d); want one account's after another's", b, first[b], last[b], a, first[a], last[a])
			}
		}
	}
	if seen < 2 {
		t.Errorf("saw %d copies under way (%v, %v); the test needs at least two", seen, first, last)
	}
}
