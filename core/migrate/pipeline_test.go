package migrate_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mailferry/core/migrate"
	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// pairProxy forwards connections to target and watches the first
// connection that sends both of two commands (by name): it holds the
// tagged answer to the first of them until the second has come from the
// client, or wait passed, and tells whether the client sent both before
// either was answered (one round trip) or one after the other's answer.
type pairProxy struct {
	ln       net.Listener
	target   string
	names    [2]string
	wait     time.Duration
	mu       sync.Mutex
	tags     map[string]string // tag -> command name, of the pair
	seen     chan struct{}     // closed when both were sent
	decided  bool
	together bool
	wg       sync.WaitGroup
}

func startPairProxy(t *testing.T, target, a, b string, wait time.Duration) *pairProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pairProxy{ln: ln, target: target, names: [2]string{a, b}, wait: wait, tags: map[string]string{}, seen: make(chan struct{})}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.serve(c) })
		}
	})
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *pairProxy) serve(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	go func() {
		// client -> server, line by line (the commands watched carry no
		// literals)
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				if f := strings.Fields(line); len(f) >= 2 {
					name := strings.ToUpper(f[1])
					p.mu.Lock()
					if !p.decided && (name == p.names[0] || name == p.names[1]) {
						p.tags[f[0]] = name
						if len(p.tags) == 2 {
							p.decided, p.together = true, true
							close(p.seen)
						}
					}
					p.mu.Unlock()
				}
				if _, werr := io.WriteString(s, line); werr != nil {
					return
				}
			}
			if err != nil {
				s.Close()
				return
			}
		}
	}()
	r := bufio.NewReader(s)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			if f := strings.Fields(line); len(f) >= 2 {
				p.mu.Lock()
				_, ours := p.tags[f[0]]
				decided := p.decided
				p.mu.Unlock()
				if ours && !decided {
					// the first of the pair is answered: wait for the second
					select {
					case <-p.seen:
					case <-time.After(p.wait):
						p.mu.Lock()
						if !p.decided {
							p.decided = true // one after the other
						}
						p.mu.Unlock()
					}
				}
			}
			if _, werr := io.WriteString(c, line); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *pairProxy) result() (decided, together bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.decided, p.together
}

// A first login reads the old server's NAMESPACE and INBOX's STATUS in one
// round trip (both sent before either is answered): they are on the path
// of the login's answer, and a busy old server takes its time for each.
func TestFirstLoginNamespaceStatusTogether(t *testing.T) {
	t.Parallel()
	srv := oldtest.StartKind(t, oldtest.InProcess, nil)
	addr, pass := srv.Address(t, "carol")
	srv.Append(t, "carol", "INBOX", nil, time.Time{}, []byte("Subject: one\r\n\r\nbody\r\n"))
	proxy := startPairProxy(t, srv.IMAPAddr, "NAMESPACE", "STATUS", 3*time.Second)
	st, _ := setup(t, proxy.ln.Addr().String())
	e := newEngine(t, st, nil)
	ctx := context.Background()
	if _, err := e.FirstLogin(ctx, addr, pass); err != nil {
		t.Fatal(err)
	}
	if err := e.Wait(ctx, addr); err != nil {
		t.Fatal(err)
	}
	if n := compareAll(t, srv, st, "carol"); n != 1 {
		t.Fatalf("%d messages copied, want 1", n)
	}
	decided, together := proxy.result()
	if !decided {
		t.Fatal("the first login sent no NAMESPACE and STATUS")
	}
	if !together {
		t.Fatal("NAMESPACE and STATUS INBOX went one after the other's answer: two round trips on the login's path")
	}
}

// An account's folders are made locally in one commit (one fsync on
// SQLite), not one each: with 50 accounts of six folders each copied at
// once, those commits queued on the store's one writer.
func TestFoldersMadeInOneCommit(t *testing.T) {
	t.Parallel()
	srv := oldtest.StartKind(t, oldtest.InProcess, nil)
	const extra = 6
	for i := range extra {
		srv.CreateMailbox(t, "bob", fmt.Sprintf("Project%d", i), true)
	}
	st, _ := setup(t, srv.IMAPAddr)
	e := newEngine(t, st, nil)
	ctx := context.Background()
	commitsOf := func(user string) int64 {
		addr, pass := srv.Address(t, user)
		before := st.Commits()
		if _, err := e.FirstLogin(ctx, addr, pass); err != nil {
			t.Fatal(err)
		}
		if err := e.Wait(ctx, addr); err != nil {
			t.Fatal(err)
		}
		return st.Commits() - before
	}
	alice, bob := commitsOf("alice"), commitsOf("bob")
	compareAll(t, srv, st, "bob")
	t.Logf("first copy: %d commits with the default folders, %d with %d more", alice, bob, extra)
	// The extra (empty) folders cost no commit of their own: they are made
	// with the others, and their "copied" marks go with the run's last
	// commit (laterMarks, store.EndCopy).
	if bob > alice {
		t.Fatalf("the first copy of an account with %d more (empty) folders took %d commits more (%d against %d), want none more",
			extra, bob-alice, bob, alice)
	}
	for _, user := range []string{"alice", "bob"} {
		addr, _ := srv.Address(t, user)
		acct, err := st.Account(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		boxes, err := st.Mailboxes(ctx, acct.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range boxes {
			if m.Migration != store.MigDone {
				t.Errorf("%s: mailbox %q left %q after the copy", user, m.Name, m.Migration)
			}
		}
	}
}

// A run's own bookkeeping is one commit as it starts (the copy lease, the
// copy wait, the account's state: store.StartCopy) and one as it ends (the
// state and the lease given back: store.EndCopy), where it was two and
// two: a catch-up that finds nothing new commits twice. And a first copy
// takes INBOX's subscription from the old server in the commit that makes
// the other folders.
func TestRunBookkeepingCommits(t *testing.T) {
	t.Parallel()
	srv := oldtest.StartKind(t, oldtest.InProcess, nil)
	st, _ := setup(t, srv.IMAPAddr)
	e := newEngine(t, st, nil)
	ctx := context.Background()
	addr, pass := srv.Address(t, "alice")
	first := st.Commits()
	if _, err := e.FirstLogin(ctx, addr, pass); err != nil {
		t.Fatal(err)
	}
	if err := e.Wait(ctx, addr); err != nil {
		t.Fatal(err)
	}
	t.Logf("first copy: %d commits", st.Commits()-first)
	before := st.Commits()
	if err := e.MigrateAccount(ctx, addr, migrate.Credentials{Password: pass}); err != nil {
		t.Fatal(err)
	}
	if n := st.Commits() - before; n != 2 {
		t.Fatalf("a catch-up run with nothing new took %d commits, want 2 (its start and its end)", n)
	}
	compareAll(t, srv, st, "alice")
	acct, err := st.Account(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if acct.Migration != store.MigDone {
		t.Fatalf("state %q", acct.Migration)
	}
	if ls, _ := st.Leases(ctx); len(ls) != 0 {
		t.Fatalf("leases left: %+v", ls)
	}
}

// The "copied" marks of empty folders wait for the run's last commit
// (laterMarks): an engine stopped before it leaves them to copy, the
// account interrupted (not done, no folder marked that the run did not
// finish), and the next run finishes it, every folder done and every
// message once.
func TestEmptyFolderMarksResumable(t *testing.T) {
	t.Parallel()
	srv := oldtest.StartKind(t, oldtest.InProcess, nil)
	seedMany(t, srv, "carol", "Archive", 200, 20000)
	empties := []string{"Empty1", "Empty2", "Empty3"}
	for _, name := range empties {
		srv.CreateMailbox(t, "carol", name, true)
	}
	addr, pass := srv.Address(t, "carol")
	px := startProxy(t, srv.IMAPAddr, 0, 0, 0, 1<<20) // 1 MiB/s: Archive takes about 4 s
	st, path := setup(t, px.addr())
	ctx := context.Background()
	e1 := newEngine(t, st, &migrate.Options{ConnsPerAccount: 2, BatchMessages: 4})
	acct, err := e1.FirstLogin(ctx, addr, pass)
	if err != nil {
		t.Fatal(err)
	}
	// Every folder but Archive reported copied, Archive still copying.
	deadline := time.Now().Add(30 * time.Second)
	total := 0
	for {
		var p migrate.AccountProgress
		for _, a := range e1.Progress() {
			if a.Address == addr {
				p = a
			}
		}
		if p.FoldersTotal > 0 && p.FoldersDone >= p.FoldersTotal-1 {
			total = p.FoldersTotal
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("progress: %+v", p)
		}
		time.Sleep(5 * time.Millisecond)
	}
	e1.Close()
	if cs := copyState(t, st, acct.ID); cs.State != migrate.StateInterrupted {
		t.Fatalf("status after the engine stopped: %+v, want interrupted", cs)
	}
	archive, err := st.Mailbox(ctx, acct.ID, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	if archive.Migration == store.MigDone {
		t.Skip("Archive was copied before the engine stopped; nothing interrupted")
	}
	for _, name := range empties {
		m, err := st.Mailbox(ctx, acct.ID, name)
		if err != nil {
			t.Fatal(err)
		}
		if m.Migration == store.MigDone {
			t.Errorf("%s marked copied before the run ended", name)
		}
	}

	st2 := openStore(t, path)
	t.Cleanup(func() { st2.Close() })
	e2 := newEngine(t, st2, nil)
	if err := e2.MigrateAccount(ctx, addr, migrate.Credentials{Password: pass}); err != nil {
		t.Fatal(err)
	}
	waitState(t, st2, acct.ID, store.MigDone, 30*time.Second)
	boxes, err := st2.Mailboxes(ctx, acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(boxes) != total {
		t.Errorf("%d mailboxes, the old server has %d", len(boxes), total)
	}
	for _, m := range boxes {
		if m.Migration != store.MigDone {
			t.Errorf("mailbox %q left %q", m.Name, m.Migration)
		}
	}
	compareAll(t, srv, st2, "carol")
}
