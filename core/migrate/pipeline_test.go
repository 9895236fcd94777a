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

	"mailferry/core/oldserver/oldtest"
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
	// Each extra (empty) folder costs its own "copied" mark, and no more.
	if bob-alice > extra {
		t.Fatalf("the first copy of an account with %d more folders took %d commits more (%d against %d), want at most %d",
			extra, bob-alice, bob, alice, extra)
	}
}
