package pop3front

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailferry/core/auth"
	"mailferry/core/store"
)

// TestCloseWaitsForAcceptedSession: a connection accepted (and tracked)
// just before Close has its session waited for; Close used to count the
// session only after track, so its wait could end (and race the count)
// with that session about to run on a closed server.
func TestCloseWaitsForAcceptedSession(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "mail.db"), &store.Options{Logger: slog.New(slog.DiscardHandler), MaxHashes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pol, err := auth.New(auth.Options{Store: st, Logger: slog.New(slog.DiscardHandler), Delay: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(&Options{Store: st, Auth: pol, Logger: slog.New(slog.DiscardHandler), AllowInsecureAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	tracked, release := make(chan struct{}), make(chan struct{})
	afterTrack = func() {
		close(tracked)
		<-release
	}
	defer func() { afterTrack = nil }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-tracked:
	case <-time.After(10 * time.Second):
		t.Fatal("connection not accepted")
	}
	closed := make(chan struct{})
	go func() {
		srv.Close()
		close(closed)
	}()
	select {
	case <-closed:
		close(release)
		t.Fatal("Close returned before the session of an accepted connection ended")
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return once the session could end")
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

// A session whose lock lapsed (its node froze past LockTTL, so its
// renewals did not run) and was taken by another session removes nothing
// at QUIT: it says so, and the marked message stays.
func TestQuitAfterLockLapsedRemovesNothing(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "mail.db"), &store.Options{Logger: slog.New(slog.DiscardHandler), MaxHashes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	st.CreateDomain(ctx, "example.test")
	acct, err := st.CreateAccount(ctx, "alice@example.test", "pw-123456", nil)
	if err != nil {
		t.Fatal(err)
	}
	inbox, _ := st.Mailbox(ctx, acct.ID, "INBOX")
	if _, err := st.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: []byte("Subject: a\r\n\r\nbody\r\n")}); err != nil {
		t.Fatal(err)
	}
	pol, _ := auth.New(auth.Options{Store: st, Logger: slog.New(slog.DiscardHandler), Delay: -1})
	const ttl = 200 * time.Millisecond
	srv, _ := New(&Options{Store: st, Auth: pol, Logger: slog.New(slog.DiscardHandler), AllowInsecureAuth: true, LockTTL: ttl})
	defer srv.Close()
	cli, sc := net.Pipe()
	defer cli.Close()
	sess := &session{srv: srv, conn: sc, holder: newHolder(), acct: acct.ID}
	if err := st.LockMaildrop(ctx, acct.ID, sess.holder, ttl); err != nil {
		t.Fatal(err)
	}
	if sess.drop, err = openMaildrop(ctx, ctx, st, acct); err != nil {
		t.Fatal(err)
	}
	sess.renew = func() {} // frozen: no renewal
	time.Sleep(ttl + 50*time.Millisecond)
	if err := st.LockMaildrop(ctx, acct.ID, "pop3 another node's session", time.Minute); err != nil {
		t.Fatalf("the lapsed lock was not free: %v", err)
	}
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		defer sc.Close()
		sess.run()
	}()
	r := bufio.NewReader(cli)
	cli.SetDeadline(time.Now().Add(10 * time.Second))
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("greeting %q", l)
	}
	io.WriteString(cli, "DELE 1\r\nQUIT\r\n")
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("DELE 1: %q", l)
	}
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "-ERR [IN-USE]") {
		t.Errorf("QUIT after the lock lapsed and was taken: %q, want -ERR [IN-USE]", l)
	}
	if msgs, _ := st.Messages(ctx, inbox.ID); len(msgs) != 1 {
		t.Errorf("%d messages left, want 1: a session without its lock removed mail", len(msgs))
	}
}
