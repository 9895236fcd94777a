package pop3front

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailferry/core/auth"
	"mailferry/core/certs"
	"mailferry/core/store"
)

// hangupServer is a POP3 server on 127.0.0.1 (implicit TLS if tlsOn) over
// a new store whose alice@example.test has one message; dial connects to it.
func hangupServer(t *testing.T, tlsOn bool) (dial func() net.Conn) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "mail.db"), &store.Options{Logger: slog.New(slog.DiscardHandler), MaxHashes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	acct, err := st.CreateAccount(ctx, "alice@example.test", "pw-123456", nil)
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := st.Mailbox(ctx, acct.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: []byte("Subject: a\r\n\r\nbody\r\n")}); err != nil {
		t.Fatal(err)
	}
	pol, err := auth.New(auth.Options{Store: st, Logger: slog.New(slog.DiscardHandler), Delay: -1})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := certs.SelfSigned(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(&Options{Store: st, Auth: pol, Logger: slog.New(slog.DiscardHandler), AllowInsecureAuth: true,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsOn {
		go srv.ServeTLS(ln)
	} else {
		go srv.Serve(ln)
	}
	t.Cleanup(func() { srv.Close() })
	return func() net.Conn {
		var c net.Conn
		var err error
		if tlsOn {
			c, err = tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		} else {
			c, err = net.Dial("tcp", ln.Addr().String())
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(20 * time.Second))
		return c
	}
}

// bothTransports runs f over plain TCP and implicit TLS.
func bothTransports(t *testing.T, f func(t *testing.T, dial func() net.Conn)) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "tls"}[tlsOn], func(t *testing.T) {
			f(t, hangupServer(t, tlsOn))
		})
	}
}

// A client that sends PASS and hangs up while its maildrop's snapshot is
// taken has the snapshot's store reads cancelled (a snapshot of 100,000
// messages takes about 400 ms), and the maildrop's lock is given back: the
// next login takes it.
func TestSnapshotCancelledAtHangUp(t *testing.T) { bothTransports(t, testSnapshotCancelledAtHangUp) }

func testSnapshotCancelledAtHangUp(t *testing.T, dial func() net.Conn) {
	cause := make(chan error, 1)
	snapshotHook = func(ctx context.Context) {
		select {
		case <-ctx.Done():
			cause <- context.Cause(ctx)
		case <-time.After(10 * time.Second):
			cause <- nil
		}
	}
	defer func() { snapshotHook = nil }()
	c := dial()
	r := bufio.NewReader(c)
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("greeting %q", l)
	}
	io.WriteString(c, "USER alice@example.test\r\nPASS pw-123456\r\n")
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("USER: %q", l)
	}
	c.Close()
	if err := <-cause; err != errHungUp {
		t.Fatalf("the snapshot's context after the client hung up: cause %v, want %v", err, errHungUp)
	}
	snapshotHook = nil
	// the lock was given back
	c2 := dial()
	r2 := bufio.NewReader(c2)
	r2.ReadString('\n')
	io.WriteString(c2, "USER alice@example.test\r\nPASS pw-123456\r\n")
	r2.ReadString('\n')
	if l, _ := r2.ReadString('\n'); !strings.HasPrefix(l, "+OK Logged in, 1 messages") {
		t.Errorf("the next login: %q", l)
	}
}

// The hang-up watch reads what a client sends during the snapshot without
// losing it: commands pipelined after PASS, sent while the snapshot is
// taken, are answered in order, and a client that stays keeps its
// snapshot.
func TestSnapshotWatchKeepsPipelined(t *testing.T) {
	bothTransports(t, testSnapshotWatchKeepsPipelined)
}

func testSnapshotWatchKeepsPipelined(t *testing.T, dial func() net.Conn) {
	cause, begun := make(chan error, 1), make(chan struct{})
	snapshotHook = func(ctx context.Context) {
		close(begun)
		time.Sleep(200 * time.Millisecond) // the watch reads the pipelined lines meanwhile
		cause <- context.Cause(ctx)
	}
	defer func() { snapshotHook = nil }()
	c := dial()
	r := bufio.NewReader(c)
	r.ReadString('\n')
	io.WriteString(c, "USER alice@example.test\r\nPASS pw-123456\r\n")
	<-begun // sent during the snapshot: read by the watch
	io.WriteString(c, "STAT\r\nUIDL 1\r\nRETR 1\r\nQUIT\r\n")
	var got []string
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			break
		}
		got = append(got, strings.TrimRight(l, "\r\n"))
	}
	if err := <-cause; err != nil {
		t.Errorf("the snapshot's context of a client that stayed: cause %v", err)
	}
	want := []string{"+OK", "+OK Logged in, 1 messages (20 octets)", "+OK 1 20", "+OK 1 ", "+OK", "Subject: a", "", "body", ".", "+OK"}
	if len(got) != len(want) {
		t.Fatalf("answers %q, want %d lines like %q", got, len(want), want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("line %d: %q, want %q...", i, got[i], want[i])
		}
	}
}
