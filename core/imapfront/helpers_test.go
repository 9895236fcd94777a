package imapfront_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailferry/core/imapfront"
	"mailferry/core/migrate"
	"mailferry/core/store"
)

const (
	user = "alice@example.test"
	pass = "Secret-pw-1"
)

// env is a store and a running server on 127.0.0.1.
type env struct {
	t    testing.TB
	st   *store.Store
	srv  *imapfront.Server
	addr string
	acct *store.Account
	db   string // the store's database file
	url  string // the store's PostgreSQL database, if any
}

type envOpts struct {
	migrator  imapfront.Migrator
	tls       *tls.Config
	insecure  *bool
	rateLimit imapfront.LoginRateLimit
	// loginTimeout is Options.LoginTimeout.
	loginTimeout time.Duration
	noAccount    bool
	delim        rune
	dir          string // of the store; "" means a temporary directory
	// databaseURL keeps the store's metadata in this PostgreSQL database.
	databaseURL string
	// peer is another node: this env's store is on peer's database and
	// data directory, and makes no domain or account of its own.
	peer *env

	// appendLimit is Options.AppendLimit.
	appendLimit uint32
	// log, if not nil, gets the server's and the store's log at the
	// Debug level (text handler).
	log io.Writer
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newEnv(t testing.TB, o *envOpts) *env {
	t.Helper()
	if o == nil {
		o = &envOpts{}
	}
	dir, url := o.dir, o.databaseURL
	if o.peer != nil {
		dir, url = filepath.Dir(o.peer.db), o.peer.url
	}
	if dir == "" {
		dir = t.TempDir()
	}
	db := filepath.Join(dir, "mail.db")
	logger := quietLogger()
	if o.log != nil {
		logger = slog.New(slog.NewTextHandler(o.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	st, err := store.Open(db, &store.Options{Logger: logger, Summarize: imapfront.Summarize, DatabaseURL: url})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e := &env{t: t, st: st, db: db, url: url}
	if o.peer != nil {
		e.acct = o.peer.acct
	} else if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if !o.noAccount && o.peer == nil {
		if e.acct, err = st.CreateAccount(ctx, user, pass, &store.AccountOptions{Delim: o.delim}); err != nil {
			t.Fatal(err)
		}
	}
	insecure := true
	if o.insecure != nil {
		insecure = *o.insecure
	}
	rl := o.rateLimit
	if rl.Delay == 0 {
		rl.Delay = -1
	}
	e.srv, err = imapfront.New(&imapfront.Options{
		Store: st, Migrator: o.migrator, Logger: logger, TLSConfig: o.tls,
		AllowInsecureAuth: insecure, LoginRateLimit: rl, LoginTimeout: o.loginTimeout,
		AppendLimit: o.appendLimit,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ln) }()
	t.Cleanup(func() {
		e.srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		st.Close()
	})
	return e
}

// inbox returns the account's INBOX.
func (e *env) inbox() *store.Mailbox {
	e.t.Helper()
	mb, err := e.st.Mailbox(context.Background(), e.acct.ID, "INBOX")
	if err != nil {
		e.t.Fatal(err)
	}
	return mb
}

// put appends a message straight to the store, as the migration engine or
// the relay would.
func (e *env) put(mb *store.Mailbox, body string, flags ...string) *store.Message {
	e.t.Helper()
	m, err := e.st.AppendMessage(context.Background(), mb.ID, &store.NewMessage{Body: []byte(body), Flags: flags})
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// conn is a raw IMAP client: it writes lines and reads responses verbatim.
type conn struct {
	t   testing.TB
	c   net.Conn
	r   *bufio.Reader
	tag int
}

func (e *env) dial() *conn {
	e.t.Helper()
	cn := dialAddr(e.t, e.addr)
	if g := cn.line(); !strings.HasPrefix(g, "* OK ") {
		e.t.Fatalf("greeting %q", g)
	}
	return cn
}

// dialAddr connects to an IMAP server at addr, its greeting not read.
func dialAddr(t testing.TB, addr string) *conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &conn{t: t, c: c, r: bufio.NewReader(c)}
}

// login dials and logs in as the test user.
func (e *env) login() *conn {
	e.t.Helper()
	c := e.dial()
	c.ok("LOGIN %s %s", user, pass)
	return c
}

func (c *conn) send(s string) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// line reads one response line, without CRLF (literals are not followed).
func (c *conn) line() string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

var literalRe = regexp.MustCompile(`\{(\d+)\}\r\n$`)

// until reads everything up to and including the line tagged tag, with
// literals verbatim; it returns the untagged part and the tagged line.
func (c *conn) until(tag string) (string, string) {
	c.t.Helper()
	var sb strings.Builder
	for {
		c.c.SetReadDeadline(time.Now().Add(20 * time.Second))
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read: %v (after %q)", err, sb.String()+l)
		}
		if strings.HasPrefix(l, tag+" ") {
			return sb.String(), strings.TrimSuffix(l, "\r\n")
		}
		sb.WriteString(l)
		for {
			m := literalRe.FindStringSubmatch(l)
			if m == nil {
				break
			}
			n, _ := strconv.Atoi(m[1])
			buf := make([]byte, n)
			if _, err := io.ReadFull(c.r, buf); err != nil {
				c.t.Fatalf("read literal: %v", err)
			}
			sb.Write(buf)
			if l, err = c.r.ReadString('\n'); err != nil {
				c.t.Fatalf("read: %v", err)
			}
			sb.WriteString(l)
		}
	}
}

// do runs a command and returns its untagged responses and tagged line.
func (c *conn) do(format string, args ...any) (string, string) {
	c.t.Helper()
	c.tag++
	tag := fmt.Sprintf("t%d", c.tag)
	c.send(tag + " " + fmt.Sprintf(format, args...) + "\r\n")
	return c.until(tag)
}

// ok runs a command that must succeed and returns its untagged responses.
func (c *conn) ok(format string, args ...any) string {
	c.t.Helper()
	un, tagged := c.do(format, args...)
	if !strings.Contains(tagged, " OK") {
		c.t.Fatalf("%s: %s\n%s", fmt.Sprintf(format, args...), tagged, un)
	}
	return un
}

// status runs a command and returns the tagged status word and the rest.
func (c *conn) status(format string, args ...any) (string, string) {
	c.t.Helper()
	un, tagged := c.do(format, args...)
	f := strings.Fields(tagged)
	if len(f) < 2 {
		c.t.Fatalf("tagged line %q", tagged)
	}
	return f[1], tagged + "\n" + un
}

// appendMsg APPENDs with a synchronizing literal and returns the tagged
// line.
func (c *conn) appendMsg(mailbox, flags, msg string) string {
	c.t.Helper()
	c.tag++
	tag := fmt.Sprintf("t%d", c.tag)
	if flags != "" {
		flags += " "
	}
	c.send(fmt.Sprintf("%s APPEND %s %s{%d}\r\n", tag, mailbox, flags, len(msg)))
	if l := c.line(); !strings.HasPrefix(l, "+") {
		c.t.Fatalf("APPEND: no continuation: %q", l)
	}
	c.send(msg + "\r\n")
	_, tagged := c.until(tag)
	return tagged
}

// literalOf returns the literal that follows item (such as "BODY[]") in a
// response.
func literalOf(t testing.TB, resp, item string) string {
	t.Helper()
	i := strings.Index(resp, item+" {")
	if i < 0 {
		t.Fatalf("no %s literal in %q", item, resp)
	}
	rest := resp[i+len(item)+2:]
	j := strings.Index(rest, "}\r\n")
	n, err := strconv.Atoi(rest[:j])
	if err != nil {
		t.Fatal(err)
	}
	return rest[j+3 : j+3+n]
}

// fakeMigrator creates accounts for a password it knows, as the migration
// engine would after asking the old server.
type fakeMigrator struct {
	st       *store.Store
	password string
	first    chan string
	loggedIn chan string
}

func (m *fakeMigrator) FirstLogin(ctx context.Context, username, password string) (*store.Account, error) {
	m.first <- username
	if password != m.password {
		return nil, fmt.Errorf("old server said NO: %w", migrate.ErrBadPassword)
	}
	if a, err := m.st.Account(ctx, username); err == nil {
		// As the engine adopts an account a bulk copy made.
		return a, m.st.AdoptOldPassword(ctx, username, password)
	}
	return m.st.CreateAccount(ctx, username, password, &store.AccountOptions{Migration: store.MigRunning, PasswordOrigin: store.PasswordOld})
}

func (m *fakeMigrator) LoggedIn(acct *store.Account, password string) {
	m.loggedIn <- acct.Address
}
