package relay_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"mailferry/core/relay"
	"mailferry/core/store"
	"mailferry/core/testkit"
)

// mxSink is an SMTP server on 127.0.0.1 standing in for another domain's
// mail exchanger or a smarthost: it keeps what it is given and how.
type mxSink struct {
	addr string
	port int

	mu      sync.Mutex
	got     []sunk
	auth    map[string]string // user -> password; AUTH required when set
	rcptErr *smtp.SMTPError   // the reply to every RCPT, if set
	tries   int               // RCPTs seen
}

type sunk struct {
	From     string
	To       []string
	Data     []byte
	TLS      bool
	AuthUser string
}

// startMXSink starts a mxSink; tlsCfg enables STARTTLS; users, when set,
// require AUTH PLAIN (offered only under TLS).
func startMXSink(t testing.TB, tlsCfg *tls.Config, users map[string]string) *mxSink {
	t.Helper()
	ln := listen(t)
	s := &mxSink{addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port, auth: users}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &mxSinkSession{s: s, c: c}, nil
	}))
	srv.Domain = "mxSink.test"
	srv.TLSConfig = tlsCfg
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = nopLog{}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *mxSink) messages() []sunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunk(nil), s.got...)
}

type mxSinkSession struct {
	s    *mxSink
	c    *smtp.Conn
	user string
	from string
	to   []string
}

var _ smtp.AuthSession = (*mxSinkSession)(nil)

func (ss *mxSinkSession) AuthMechanisms() []string {
	if ss.s.auth == nil {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *mxSinkSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if want, ok := ss.s.auth[user]; !ok || want != pass {
			return smtp.ErrAuthFailed
		}
		ss.user = user
		return nil
	}), nil
}

func (ss *mxSinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *mxSinkSession) Logout() error { return nil }
func (ss *mxSinkSession) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.auth != nil && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}
func (ss *mxSinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.s.tries++
	if ss.s.rcptErr != nil {
		return ss.s.rcptErr
	}
	ss.to = append(ss.to, to)
	return nil
}
func (ss *mxSinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, tlsOn := ss.c.TLSConnectionState()
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.s.got = append(ss.s.got, sunk{From: ss.from, To: ss.to, Data: b, TLS: tlsOn, AuthUser: ss.user})
	return nil
}

// newFinishedEnv is a store whose example.test is not migrating and has no
// old server (the migration is over, or it never was), with alice.
func newFinishedEnv(t testing.TB) *env {
	t.Helper()
	e := &env{path: t.TempDir() + "/mail.db"}
	e.st = openStore(t, e.path)
	t.Cleanup(func() { e.st.Close() })
	ctx := context.Background()
	if _, err := e.st.CreateDomain(ctx, domain); err != nil {
		t.Fatal(err)
	}
	a, err := e.st.CreateAccount(ctx, alice, alicePW, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.alice = a
	mb, err := e.st.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	e.inbox = mb.ID
	return e
}

// stsServer serves MTA-STS policies over HTTPS on 127.0.0.1, by Host.
func stsServer(t testing.TB, ca *testkit.CA, policies map[string]string) int {
	t.Helper()
	var names []string
	for h := range policies {
		names = append(names, h)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ca.ServerConfig(t, names...))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		p, ok := policies[host]
		if !ok || r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, p)
	}), ErrorLog: nil}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// closedPort is a port on 127.0.0.1 where nothing listens.
func closedPort(t testing.TB) int {
	ln := listen(t)
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return p
}

// The acceptance test of direct delivery: example.test has no old server;
// alice (authenticated) sends to three outside domains that the test DNS
// serves: two.test (two MX hosts, the first down) gets it from the second;
// null.test (null MX, RFC 7505) bounces at once with a clear DSN;
// sts.test (MTA-STS enforce, a certificate from the test CA) gets it over
// verified TLS; badsts.test (enforce, a certificate nobody vouches for) does
// not get it and the message waits. Every message that leaves passes the
// Sign hook once.
func TestDirectDelivery(t *testing.T) {
	e := newFinishedEnv(t)
	d := testkit.StartZone(t)
	ca := testkit.NewCA(t, "Test CA")
	rogue := testkit.NewCA(t, "Rogue CA")

	good := startMXSink(t, nil, nil)
	stsSink := startMXSink(t, ca.ServerConfig(t, "mx.sts.test"), nil)
	badSink := startMXSink(t, rogue.ServerConfig(t, "mx.badsts.test"), nil)
	down := closedPort(t)
	stsPort := stsServer(t, ca, map[string]string{
		"mta-sts.sts.test":    "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmax_age: 86400\r\n",
		"mta-sts.badsts.test": "version: STSv1\nmode: enforce\nmx: *.badsts.test\nmax_age: 86400\n",
	})
	d.Add(t,
		"two.test. 60 IN MX 20 mx2.two.test.",
		"two.test. 60 IN MX 10 mx1.two.test.",
		"mx1.two.test. 60 IN A 127.0.0.1",
		"mx2.two.test. 60 IN A 127.0.0.1",
		"null.test. 60 IN MX 0 .",
		"sts.test. 60 IN MX 10 mx.sts.test.",
		"mx.sts.test. 60 IN A 127.0.0.1",
		`_mta-sts.sts.test. 60 IN TXT "v=STSv1; id=20260101"`,
		"mta-sts.sts.test. 60 IN A 127.0.0.1",
		"badsts.test. 60 IN MX 10 mx.badsts.test.",
		"mx.badsts.test. 60 IN A 127.0.0.1",
		`_mta-sts.badsts.test. 60 IN TXT "v=STSv1; id=1"`,
		"mta-sts.badsts.test. 60 IN A 127.0.0.1",
	)
	ports := map[string]int{"mx1.two.test": down, "mx2.two.test": good.port, "mx.sts.test": stsSink.port, "mx.badsts.test": badSink.port}
	res, err := relay.NewResolver(d.Addr)
	if err != nil {
		t.Fatal(err)
	}
	var signMu sync.Mutex
	signed := map[string]int{}
	tlsCfg, pool := testTLS(t)
	rr := startRelay(t, e.st, relay.Options{
		TLSConfig: tlsCfg,
		Resolver:  res,
		RootCAs:   ca.Pool,
		MXPort: func(host string) int {
			return ports[host]
		},
		MTASTSPort: stsPort,
		Sign: func(dom string, msg []byte) ([]byte, error) {
			signMu.Lock()
			signed[dom]++
			signMu.Unlock()
			return append([]byte("X-Test-Signed: "+dom+"\r\n"), msg...), nil
		},
	})
	raw := message("outbound", "to the world")
	to := []string{"ann@two.test", "nobody@null.test", "sam@sts.test", "bea@badsts.test"}
	if err := submit(rr.subAddr, pool, alice, alicePW, alice, to, raw); err != nil {
		t.Fatal(err)
	}

	waitFor(t, "delivery by the second MX of two.test", 10*time.Second, func() bool { return len(good.messages()) == 1 })
	m := good.messages()[0]
	if m.From != alice || len(m.To) != 1 || m.To[0] != "ann@two.test" {
		t.Errorf("two.test got from %q to %q", m.From, m.To)
	}
	if !bytes.HasPrefix(m.Data, []byte("X-Test-Signed: example.test\r\nReceived: ")) || !bytes.HasSuffix(m.Data, raw) {
		t.Errorf("two.test got:\n%s", m.Data)
	}

	waitFor(t, "delivery over verified TLS to sts.test", 10*time.Second, func() bool { return len(stsSink.messages()) == 1 })
	if m := stsSink.messages()[0]; !m.TLS || m.To[0] != "sam@sts.test" || !bytes.HasPrefix(m.Data, []byte("X-Test-Signed: example.test\r\n")) {
		t.Errorf("sts.test got %+v without TLS, unsigned or for someone else", m)
	}

	waitFor(t, "a DSN for null.test in alice's INBOX", 10*time.Second, func() bool { return len(e.messages(t, e.inbox)) == 1 })
	dsn := string(e.messages(t, e.inbox)[0])
	for _, want := range []string{"Final-Recipient: rfc822; nobody@null.test", "Status: 5.1.10", "null MX", "Action: failed"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}
	if strings.Contains(dsn, "two.test>") || strings.Contains(dsn, "sts.test>") {
		t.Errorf("DSN names a delivered recipient:\n%s", dsn)
	}

	// badsts.test: deferred (a temporary failure), never delivered.
	ctx := context.Background()
	var items []*store.QueueItem
	deadline := time.Now().Add(10 * time.Second)
	for {
		items, _ = rr.r.List(ctx)
		if len(items) == 1 && items[0].Attempts >= 1 {
			break
		}
		if time.Now().After(deadline) {
			for _, it := range items {
				t.Logf("queue: %+v", *it)
			}
			t.Fatal("timed out waiting for badsts.test to be deferred")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := items[0].Rcpts; len(got) != 1 || got[0] != "bea@badsts.test" {
		t.Errorf("queue holds %q", got)
	}
	if !strings.Contains(items[0].LastError, "certificate") {
		t.Errorf("last error %q does not name the certificate", items[0].LastError)
	}
	if n := len(badSink.messages()); n != 0 {
		t.Errorf("badsts.test got %d messages over unverified TLS", n)
	}
	if s := rr.r.Stats(); s.Bounced != 1 || s.Relayed != 2 {
		t.Errorf("stats %+v", s)
	}
	signMu.Lock()
	if signed["example.test"] < 1 {
		t.Errorf("signed %v", signed)
	}
	signMu.Unlock()
}

// A domain without an MX record but with an address is its own mail
// exchanger (RFC 5321 section 5.1); delivery goes with opportunistic
// STARTTLS, whatever its certificate; a domain that does not exist
// bounces.
func TestDirectImplicitMX(t *testing.T) {
	e := newFinishedEnv(t)
	d := testkit.StartZone(t)
	rogue := testkit.NewCA(t, "Self")
	s := startMXSink(t, rogue.ServerConfig(t, "other.name"), nil)
	d.Add(t, "plain.test. 60 IN A 127.0.0.1",
		"loop.test. 60 IN MX 10 mx.mailferry.test.", "mx.mailferry.test. 60 IN A 127.0.0.1")
	res, _ := relay.NewResolver(d.Addr)
	tlsCfg, pool := testTLS(t)
	rr := startRelay(t, e.st, relay.Options{TLSConfig: tlsCfg, Resolver: res,
		MXPort: func(string) int { return s.port }})
	if err := submit(rr.subAddr, pool, alice, alicePW, alice, []string{"x@plain.test", "y@nowhere.test", "z@loop.test"}, message("implicit", "x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "implicit MX delivery", 10*time.Second, func() bool { return len(s.messages()) == 1 })
	if !s.messages()[0].TLS {
		t.Error("opportunistic STARTTLS was not used")
	}
	waitFor(t, "DSNs for nowhere.test and loop.test", 10*time.Second, func() bool { return len(e.messages(t, e.inbox)) == 2 })
	var all string
	for _, m := range e.messages(t, e.inbox) {
		all += string(m)
	}
	for _, want := range []string{"Status: 5.1.2", "y@nowhere.test", "Status: 5.4.6", "z@loop.test", "loops back"} {
		if !strings.Contains(all, want) {
			t.Errorf("DSNs lack %q:\n%s", want, all)
		}
	}
}

// The same, through a smarthost that wants AUTH PLAIN under STARTTLS: the
// route is recorded in the store; the password never shows in the logs.
func TestSmarthostDelivery(t *testing.T) {
	e := newFinishedEnv(t)
	ca := testkit.NewCA(t, "Test CA")
	const user, pass = "relay-user", "Smart-Pass-9f3c"
	s := startMXSink(t, ca.ServerConfig(t, "127.0.0.1"), map[string]string{user: pass})
	ctx := context.Background()
	rt := relay.Route{Kind: relay.RouteSmarthost, Host: "127.0.0.1", Port: s.port, TLS: relay.SmarthostStartTLS, Username: user, Password: pass}
	if err := relay.SetRoute(ctx, e.st, domain, rt); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	tlsCfg, pool := testTLS(t)
	rr := startRelay(t, e.st, relay.Options{TLSConfig: tlsCfg, RootCAs: ca.Pool,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	to := []string{"ann@two.test", "friend@gmail.test"}
	if err := submit(rr.subAddr, pool, alice, alicePW, alice, to, message("smart", "via the smarthost")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "smarthost delivery", 10*time.Second, func() bool { return len(s.messages()) == 1 })
	m := s.messages()[0]
	if !m.TLS || m.AuthUser != user || strings.Join(m.To, ",") != strings.Join(to, ",") {
		t.Errorf("smarthost got %+v", m)
	}
	waitFor(t, "empty queue", 5*time.Second, func() bool {
		l, _ := rr.r.List(ctx)
		return len(l) == 0
	})
	// A wrong password: the message waits, the password is not logged.
	rt.Password = "Wrong-Pass-77aa"
	if err := relay.SetRoute(ctx, e.st, domain, rt); err != nil {
		t.Fatal(err)
	}
	rr.close()
	rr = startRelay(t, e.st, relay.Options{TLSConfig: tlsCfg, RootCAs: ca.Pool,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err := submit(rr.subAddr, pool, alice, alicePW, alice, to[:1], message("smart2", "x")); err != nil {
		t.Fatal(err)
	}
	var items []*store.QueueItem
	waitFor(t, "deferred", 10*time.Second, func() bool {
		items, _ = rr.r.List(ctx)
		return len(items) == 1 && items[0].Attempts >= 1
	})
	if !strings.Contains(items[0].LastError, "535") {
		t.Errorf("last error %q", items[0].LastError)
	}
	rr.close()
	for _, secret := range []string{pass, "Wrong-Pass-77aa"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("a smarthost password is in the logs")
		}
		if strings.Contains(fmt.Sprint(rt), secret) || strings.Contains(fmt.Sprintf("%+v %#v", rt, rt), secret) {
			t.Errorf("a Route prints its password")
		}
	}
}

// Per-host failures: a 4xx from the first mail exchanger goes on to the
// second; a 5xx is final (the second is not asked) and bounces; under an
// MTA-STS policy in testing mode a certificate nobody vouches for is only
// reported, and the mail is delivered.
func TestDirectPerHostFailures(t *testing.T) {
	e := newFinishedEnv(t)
	d := testkit.StartZone(t)
	ca := testkit.NewCA(t, "Test CA")
	rogue := testkit.NewCA(t, "Rogue CA")
	busy := startMXSink(t, nil, nil)
	busy.rcptErr = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "Busy, try later"}
	refuses := startMXSink(t, nil, nil)
	refuses.rcptErr = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
	good := startMXSink(t, nil, nil)
	tsink := startMXSink(t, rogue.ServerConfig(t, "mx.testing.test"), nil)
	stsPort := stsServer(t, ca, map[string]string{
		"mta-sts.testing.test": "version: STSv1\nmode: testing\nmx: mx.testing.test\nmax_age: 600\n",
	})
	d.Add(t,
		"busy.test. 60 IN MX 10 a.busy.test.", "busy.test. 60 IN MX 20 b.busy.test.",
		"a.busy.test. 60 IN A 127.0.0.1", "b.busy.test. 60 IN A 127.0.0.1",
		"perm.test. 60 IN MX 10 a.perm.test.", "perm.test. 60 IN MX 20 b.perm.test.",
		"a.perm.test. 60 IN A 127.0.0.1", "b.perm.test. 60 IN A 127.0.0.1",
		"testing.test. 60 IN MX 10 mx.testing.test.", "mx.testing.test. 60 IN A 127.0.0.1",
		`_mta-sts.testing.test. 60 IN TXT "v=STSv1; id=7"`, "mta-sts.testing.test. 60 IN A 127.0.0.1",
	)
	ports := map[string]int{"a.busy.test": busy.port, "b.busy.test": good.port,
		"a.perm.test": refuses.port, "b.perm.test": good.port, "mx.testing.test": tsink.port}
	tlsCfg, pool := testTLS(t)
	rr := startRelay(t, e.st, relay.Options{TLSConfig: tlsCfg, Resolver: mustResolver(t, d.Addr), RootCAs: ca.Pool,
		MXPort: func(h string) int { return ports[h] }, MTASTSPort: stsPort})
	if err := submit(rr.subAddr, pool, alice, alicePW, alice, []string{"x@busy.test", "y@perm.test", "z@testing.test"}, message("hosts", "x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery by b.busy.test", 10*time.Second, func() bool { return len(good.messages()) == 1 })
	if m := good.messages()[0]; len(m.To) != 1 || m.To[0] != "x@busy.test" {
		t.Errorf("b got %q", m.To)
	}
	waitFor(t, "delivery under MTA-STS testing", 10*time.Second, func() bool { return len(tsink.messages()) == 1 })
	if !tsink.messages()[0].TLS {
		t.Error("testing mode: delivered without TLS")
	}
	waitFor(t, "DSN for perm.test", 10*time.Second, func() bool { return len(e.messages(t, e.inbox)) == 1 })
	dsn := string(e.messages(t, e.inbox)[0])
	if !strings.Contains(dsn, "y@perm.test") || !strings.Contains(dsn, "Status: 5.1.1") || !strings.Contains(dsn, "Remote-MTA: dns; a.perm.test") {
		t.Errorf("DSN:\n%s", dsn)
	}
	waitFor(t, "empty queue", 5*time.Second, func() bool {
		l, _ := rr.r.List(context.Background())
		return len(l) == 0
	})
	if n := len(good.messages()); n != 1 {
		t.Errorf("b got %d messages: a 5xx was retried elsewhere", n)
	}
}

// Never an open relay: without AUTH, mail for another domain is refused
// whatever the route.
func TestOutboundNotOpen(t *testing.T) {
	e := newFinishedEnv(t)
	rr := startRelay(t, e.st, relay.Options{})
	err := send(rr.smtpAddr, alice, []string{"ann@two.test"}, message("open", "x"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
		t.Fatalf("unauthenticated relay: %v", err)
	}
	// A fresh domain (no route recorded, not migrating) sends directly
	// once authenticated: RCPT is accepted.
	tlsCfg, pool := testTLS(t)
	rr2 := startRelay(t, e.st, relay.Options{TLSConfig: tlsCfg, Resolver: mustResolver(t, testkit.StartZone(t).Addr)})
	if err := submit(rr2.subAddr, pool, alice, alicePW, alice, []string{"ann@two.test"}, message("fresh", "x")); err != nil {
		t.Fatalf("authenticated user of a fresh domain: %v", err)
	}
}

func mustResolver(t testing.TB, addr string) *net.Resolver {
	r, err := relay.NewResolver(addr)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
