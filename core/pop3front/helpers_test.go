package pop3front_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailferry/core/auth"
	"mailferry/core/imapfront"
	"mailferry/core/pop3front"
	"mailferry/core/store"
)

const (
	user = "alice@example.test"
	pass = "Secret-pw-1"
)

// env is a store, the login policy, a POP3 server and an IMAP server over
// the same store, on 127.0.0.1.
type env struct {
	t        testing.TB
	st       *store.Store
	pol      *auth.Policy
	srv      *pop3front.Server
	addr     string // POP3
	imapAddr string
	acct     *store.Account
}

type envOpts struct {
	migrator  auth.Migrator
	tls       *tls.Config
	secure    bool // no login without TLS
	noAccount bool
	maxConns  int
	idle      time.Duration
	login     time.Duration // Options.LoginTimeout
	lockTTL   time.Duration
	store     *store.Store // an existing store (for a migrator made on it), kept open
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t testing.TB, o *envOpts) *env {
	t.Helper()
	if o == nil {
		o = &envOpts{}
	}
	ctx := context.Background()
	st, own := o.store, o.store == nil
	if own {
		var err error
		st, err = store.Open(filepath.Join(t.TempDir(), "mail.db"), &store.Options{Logger: quietLogger(), Summarize: imapfront.Summarize})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	e := &env{t: t, st: st}
	if !o.noAccount {
		if e.acct, err = st.CreateAccount(ctx, user, pass, nil); err != nil {
			t.Fatal(err)
		}
	}
	e.pol, err = auth.New(auth.Options{Store: st, Migrator: o.migrator, Logger: quietLogger(), Delay: -1})
	if err != nil {
		t.Fatal(err)
	}
	e.srv, err = pop3front.New(&pop3front.Options{Store: st, Auth: e.pol, Logger: quietLogger(), TLSConfig: o.tls,
		AllowInsecureAuth: !o.secure, MaxConnsPerSource: o.maxConns, Idle: o.idle, LockTTL: o.lockTTL,
		LoginTimeout: o.login})
	if err != nil {
		t.Fatal(err)
	}
	imap, err := imapfront.New(&imapfront.Options{Store: st, Auth: e.pol, Logger: quietLogger(), AllowInsecureAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	iln := listen(t)
	e.addr, e.imapAddr = ln.Addr().String(), iln.Addr().String()
	done := make(chan error, 2)
	go func() { done <- e.srv.Serve(ln) }()
	go func() { done <- imap.Serve(iln) }()
	t.Cleanup(func() {
		e.srv.Close()
		imap.Close()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		}
		if own {
			st.Close()
		}
	})
	return e
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func (e *env) inbox() *store.Mailbox {
	e.t.Helper()
	mb, err := e.st.Mailbox(context.Background(), e.acct.ID, "INBOX")
	if err != nil {
		e.t.Fatal(err)
	}
	return mb
}

// put appends a message to INBOX straight through the store, as the
// migration engine or the relay would.
func (e *env) put(body string) *store.Message {
	e.t.Helper()
	m, err := e.st.AppendMessage(context.Background(), e.inbox().ID, &store.NewMessage{Body: []byte(body)})
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// conn is a raw POP3 connection.
type conn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func (e *env) dial() *conn {
	e.t.Helper()
	c, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	p := &conn{t: e.t, c: c, r: bufio.NewReader(c)}
	if g := p.line(); !strings.HasPrefix(g, "+OK") {
		e.t.Fatalf("greeting %q", g)
	}
	return p
}

// line reads one response line without CRLF.
func (p *conn) line() string {
	p.t.Helper()
	p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := p.r.ReadString('\n')
	if err != nil {
		p.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// cmd sends one line and returns the first response line.
func (p *conn) cmd(line string) string {
	p.t.Helper()
	p.send(line + "\r\n")
	return p.line()
}

func (p *conn) send(raw string) {
	p.t.Helper()
	p.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(p.c, raw); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

// ok sends a command and fails unless it is answered +OK.
func (p *conn) ok(line string) string {
	p.t.Helper()
	r := p.cmd(line)
	if !strings.HasPrefix(r, "+OK") {
		p.t.Fatalf("%s: %q", line, r)
	}
	return r
}

// multi reads a multi-line body up to "." and undoes the dot-stuffing,
// returning the exact bytes.
func (p *conn) multi() []byte {
	p.t.Helper()
	var out []byte
	for {
		p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, err := p.r.ReadBytes('\n')
		if err != nil {
			p.t.Fatalf("read: %v", err)
		}
		if string(l) == ".\r\n" {
			return out
		}
		if len(l) > 0 && l[0] == '.' {
			l = l[1:]
		}
		out = append(out, l...)
	}
}

func (e *env) login() *conn {
	e.t.Helper()
	p := e.dial()
	p.ok("USER " + user)
	p.ok("PASS " + pass)
	return p
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

// closed reports whether the server closed the connection (EOF or reset
// within 5 seconds); a timeout or a byte means it is still open.
func (p *conn) closed() bool {
	p.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := p.r.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}
