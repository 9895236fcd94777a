package migrate_test

// Fault tests: a proxy the test owns stands between the engine and the old
// server (Dovecot or the in-process one) and cuts, stalls, garbles or
// refuses connections. Each copy must finish by itself — no rerun, no
// login — with every message exact (compareAll: bytes, flags, dates,
// UIDs), and CopyStates (the status) must tell the truth meanwhile.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mailferry/core/migrate"
	"mailferry/core/oldserver"
	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// faultProxy forwards connections to target. Of the server-to-client
// stream of each connection, after every `after` bytes it does fault
// (to the first `limit` connections that get that far; 0 means every
// one): cut closes the connection there, stall stops forwarding and holds
// the connection open (until the test ends), garbage writes junk then
// closes. down refuses (accepts and closes) new connections.
type faultProxy struct {
	ln     net.Listener
	target string
	after  int64
	fault  string
	limit  int32
	faults atomic.Int32
	down   atomic.Bool
	conns  atomic.Int32
	quit   chan struct{}
	wg     sync.WaitGroup
}

func startFaultProxy(t testing.TB, target, fault string, after int64, limit int32) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, fault: fault, after: after, limit: limit, quit: make(chan struct{})}
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
	t.Cleanup(func() { close(p.quit); ln.Close(); p.wg.Wait() })
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

// take reports whether this connection gets the fault.
func (p *faultProxy) take() bool {
	n := p.faults.Add(1)
	return p.limit == 0 || n <= p.limit
}

func (p *faultProxy) serve(c net.Conn) {
	defer c.Close()
	if p.down.Load() {
		return
	}
	p.conns.Add(1)
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	go func() {
		io.Copy(s, c)
		s.Close()
	}()
	go func() { <-p.quit; c.Close(); s.Close() }()
	buf := make([]byte, 16<<10)
	var sent int64
	for {
		k, err := s.Read(buf)
		if k > 0 {
			chunk := buf[:k]
			if p.after > 0 && sent+int64(k) >= p.after && p.take() {
				c.Write(chunk[:p.after-sent])
				switch p.fault {
				case "stall":
					<-p.quit
				case "garbage":
					c.Write([]byte("\x00\xff)) * BYE ~{9999999999}\r\n\x1b[2J* 1 FETCH (BODY[] {5}\r\nxy"))
				}
				return
			}
			if _, err := c.Write(chunk); err != nil {
				return
			}
			sent += int64(k)
		}
		if err != nil {
			return
		}
	}
}

// copyState is the status of an account as any process reads it.
func copyState(t testing.TB, st *store.Store, id int64) migrate.CopyState {
	t.Helper()
	cs, err := migrate.CopyStates(context.Background(), st, "")
	if err != nil {
		t.Fatal(err)
	}
	return cs[id]
}

// waitState waits until the account's status is want.
func waitState(t testing.TB, st *store.Store, id int64, want string, within time.Duration) migrate.CopyState {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		cs := copyState(t, st, id)
		if cs.State == want {
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %q (%s), want %q", cs.State, cs.Reason, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCutEveryFewHundredKB: every connection is cut after 250 kB, many
// more times than Options.Retries; each attempt makes progress, so the
// copy goes on to the end (it used to give up after Retries+1 attempts).
func TestCutEveryFewHundredKB(t *testing.T) {
	t.Parallel()
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		srv := oldtest.StartKind(t, kind, nil)
		seedMany(t, srv, "carol", "INBOX", 150, 20000) // ~3 MB: a dozen cuts
		addr, pass := srv.Address(t, "carol")
		px := startFaultProxy(t, srv.IMAPAddr, "cut", 250_000, 0)
		st, _ := setup(t, px.addr())
		ctx := context.Background()
		e := newEngine(t, st, &migrate.Options{Retries: 2, BatchMessages: 4, ConnsPerAccount: 1})
		acct, err := e.FirstLogin(ctx, addr, pass)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Wait(ctx, addr); err != nil {
			t.Fatal(err)
		}
		if n := px.faults.Load(); n <= 3 {
			t.Fatalf("only %d cuts: the test needs more than Retries+1", n)
		}
		if n := compareAll(t, srv, st, "carol"); n != 150 {
			t.Fatalf("compared %d messages, want 150", n)
		}
		if cs := copyState(t, st, acct.ID); cs.State != store.MigDone {
			t.Fatalf("status %+v, want done", cs)
		}
		t.Logf("%d cuts", px.faults.Load())
	})
}

// TestStallNeverEnds: the old server stops sending in the middle of a
// message and never closes. The stall is noticed within ReadStall (not
// imapclient's 5 minutes per literal), that connection is replaced, and
// the copy finishes; while stalled the status says running.
func TestStallNeverEnds(t *testing.T) {
	t.Parallel()
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		srv := oldtest.StartKind(t, kind, nil)
		seedMany(t, srv, "carol", "INBOX", 60, 30000)
		addr, pass := srv.Address(t, "carol")
		px := startFaultProxy(t, srv.IMAPAddr, "stall", 300_000, 2)
		st, _ := setup(t, px.addr())
		ctx := context.Background()
		const stall = 1500 * time.Millisecond
		e := newEngine(t, st, &migrate.Options{ConnsPerAccount: 1, BatchMessages: 4,
			Dial: &oldserver.DialOptions{ReadStall: stall}})
		acct, err := e.FirstLogin(ctx, addr, pass)
		if err != nil {
			t.Fatal(err)
		}
		for px.faults.Load() == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		if cs := copyState(t, st, acct.ID); cs.State != store.MigRunning {
			t.Errorf("status while stalled: %+v, want running", cs)
		}
		start := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := e.Wait(wctx, addr); err != nil {
			t.Fatalf("copy after a stall: %v", err)
		}
		if el := time.Since(start); el > 20*time.Second {
			t.Errorf("two stalls took %v to get over", el)
		}
		if n := compareAll(t, srv, st, "carol"); n != 60 {
			t.Fatalf("compared %d messages, want 60", n)
		}
	})
}

// TestGarbageBytes: junk (NUL, 0xFF, a bogus literal, a BYE) in the middle
// of the server's answers, then the end of the connection, three times:
// nothing of it is stored and the copy finishes.
func TestGarbageBytes(t *testing.T) {
	t.Parallel()
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		srv := oldtest.StartKind(t, kind, nil)
		seedMany(t, srv, "carol", "INBOX", 80, 20000)
		addr, pass := srv.Address(t, "carol")
		px := startFaultProxy(t, srv.IMAPAddr, "garbage", 200_000, 3)
		st, _ := setup(t, px.addr())
		ctx := context.Background()
		e := newEngine(t, st, &migrate.Options{ConnsPerAccount: 1, BatchMessages: 4})
		if _, err := e.FirstLogin(ctx, addr, pass); err != nil {
			t.Fatal(err)
		}
		if err := e.Wait(ctx, addr); err != nil {
			t.Fatal(err)
		}
		if n := px.faults.Load(); n < 3 {
			t.Fatalf("garbage sent %d times, want 3", n)
		}
		if n := compareAll(t, srv, st, "carol"); n != 80 {
			t.Fatalf("compared %d messages, want 80", n)
		}
	})
}

// TestOldServerDownThenBack: the old server goes away mid-copy; the job
// fails, the status says when it is tried again, and once the server is
// back the engine finishes the copy by itself.
func TestOldServerDownThenBack(t *testing.T) {
	t.Parallel()
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		srv := oldtest.StartKind(t, kind, nil)
		seedMany(t, srv, "carol", "INBOX", 80, 20000)
		addr, pass := srv.Address(t, "carol")
		px := startFaultProxy(t, srv.IMAPAddr, "cut", 400_000, 1)
		st, _ := setup(t, px.addr())
		ctx := context.Background()
		e := newEngine(t, st, &migrate.Options{ConnsPerAccount: 1, BatchMessages: 4, Retries: 1,
			ResumeBackoff: 300 * time.Millisecond, ResumeBackoffMax: 300 * time.Millisecond})
		acct, err := e.FirstLogin(ctx, addr, pass)
		if err != nil {
			t.Fatal(err)
		}
		for px.faults.Load() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		px.down.Store(true)
		cs := waitState(t, st, acct.ID, migrate.StateRetrying, 20*time.Second)
		if cs.RetryAt.IsZero() || cs.Reason == "" {
			t.Errorf("retrying status without its time or reason: %+v", cs)
		}
		px.down.Store(false)
		waitState(t, st, acct.ID, store.MigDone, 30*time.Second)
		if n := compareAll(t, srv, st, "carol"); n != 80 {
			t.Fatalf("compared %d messages, want 80", n)
		}
	})
}

// TestInterruptedThenResumed: an engine stops mid-copy (serve's SIGTERM);
// the status says interrupted, not running. A new engine without the
// password records that the copy waits for the user's login; one with a
// master user resumes it by itself (Resume, which serve calls at start).
// A lease left by a process killed with -9 does not make it look running,
// nor keep the new engine from copying.
func TestInterruptedThenResumed(t *testing.T) {
	t.Parallel()
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		srv := oldtest.StartKind(t, kind, nil)
		seedMany(t, srv, "carol", "INBOX", 200, 20000)
		addr, pass := srv.Address(t, "carol")
		px := startProxy(t, srv.IMAPAddr, 0, 0, 0, 1<<20) // 1 MiB/s: about 4 s of copying
		st, path := setup(t, px.addr())
		ctx := context.Background()
		e1 := newEngine(t, st, &migrate.Options{ConnsPerAccount: 1, BatchMessages: 4})
		acct, err := e1.FirstLogin(ctx, addr, pass)
		if err != nil {
			t.Fatal(err)
		}
		for inboxCount(t, st, addr) == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		if cs := copyState(t, st, acct.ID); cs.State != store.MigRunning {
			t.Errorf("status while copying: %+v", cs)
		}
		e1.Close()
		if cs := copyState(t, st, acct.ID); cs.State != migrate.StateInterrupted {
			t.Fatalf("status after the engine stopped: %+v, want interrupted", cs)
		}

		// kill -9: a lease of a process that is gone.
		dead := exec.Command("true")
		if err := dead.Run(); err != nil {
			t.Skip("no true(1) to make a dead process ID")
		}
		host, _ := os.Hostname()
		if err := st.TakeLease(ctx, acct.ID, fmt.Sprintf("%s pid %d #dead", host, dead.Process.Pid), time.Hour); err != nil {
			t.Fatal(err)
		}
		if cs := copyState(t, st, acct.ID); cs.State != migrate.StateInterrupted {
			t.Fatalf("status with a dead process's lease: %+v, want interrupted", cs)
		}

		st2 := openStore(t, path)
		t.Cleanup(func() { st2.Close() })
		e2 := newEngine(t, st2, nil)
		if n := e2.Resume(ctx); n != 0 {
			t.Fatalf("resumed %d accounts without a password", n)
		}
		if cs := copyState(t, st2, acct.ID); cs.State != migrate.StateWaitingLogin || cs.Reason == "" {
			t.Fatalf("status without a password: %+v, want waiting-login", cs)
		}
		e2.Close()

		e3 := newEngine(t, st2, nil)
		if err := e3.SetMasterCredentials(oldtest.Domain, srv.MasterUser, srv.MasterPassword); err != nil {
			t.Fatal(err)
		}
		if n := e3.Resume(ctx); n != 1 {
			t.Fatalf("resumed %d accounts with a master user, want 1", n)
		}
		if err := e3.Wait(ctx, addr); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		waitState(t, st2, acct.ID, store.MigDone, 30*time.Second)
		if n := compareAll(t, srv, st2, "carol"); n != 200 {
			t.Fatalf("compared %d messages, want 200", n)
		}
	})
}
