package relay_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"mailferry/core/oldserver"
	"mailferry/core/relay"
	"mailferry/core/store"
)

const (
	domain   = "example.test"
	alice    = "alice@example.test" // migrated: has an account
	alicePW  = "Alice-Secret-1"
	bob      = "bob@example.test" // not yet migrated
	outsider = "someone@elsewhere.test"
)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("RELAY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func openStore(t testing.TB, path string) *store.Store {
	t.Helper()
	st, err := store.Open(path, &store.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// env is a store with example.test migrating to an old server and alice
// already migrated.
type env struct {
	path  string
	st    *store.Store
	alice *store.Account
	inbox int64
}

// newEnv is an env whose old server has its SMTP, without TLS, at oldAddr.
func newEnv(t testing.TB, oldAddr string) *env {
	t.Helper()
	ap := netip.MustParseAddrPort(oldAddr)
	set := oldserver.Settings{Host: oldserver.HostFromIP(ap.Addr()), IMAPPort: 143, IMAPTLS: oldserver.TLSNone,
		SMTPPort: int(ap.Port()), SMTPTLS: oldserver.TLSNone, LoginForm: oldserver.LoginFull}
	return newEnvWith(t, set, alice, alicePW)
}

// newEnvWith is an env whose old server set says, and whose alice has the
// address addr and the password pw.
func newEnvWith(t testing.TB, set oldserver.Settings, addr, pw string) *env {
	t.Helper()
	return newEnvOn(t, set, addr, pw, func(path string) *store.Store { return openStore(t, path) })
}

// newEnvOn is newEnvWith on the store open opens at a path.
func newEnvOn(t testing.TB, set oldserver.Settings, addr, pw string, open func(path string) *store.Store) *env {
	t.Helper()
	e := &env{path: filepath.Join(t.TempDir(), "mail.db")}
	e.st = open(e.path)
	t.Cleanup(func() { e.st.Close() })
	ctx := context.Background()
	if _, err := e.st.CreateDomain(ctx, domain); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetDomainMigration(ctx, domain, true, string(js)); err != nil {
		t.Fatal(err)
	}
	a, err := e.st.CreateAccount(ctx, addr, pw, nil)
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

// inbox returns the raw messages of a mailbox.
func (e *env) messages(t testing.TB, mailbox int64) [][]byte {
	t.Helper()
	ctx := context.Background()
	ms, err := e.st.Messages(ctx, mailbox)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range ms {
		b, err := e.st.Blob(ctx, m.BlobKey)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// running is a Relay serving on 127.0.0.1.
type running struct {
	r                 *relay.Relay
	smtpAddr, subAddr string
	subTLSAddr        string
	cancel            context.CancelFunc
	done              chan struct{}
	closeOnce         sync.Once
}

func testTLS(t testing.TB) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mailferry.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"mailferry.test"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// startRelay starts a Relay on st with fast retries, unless opts says
// otherwise.
func startRelay(t testing.TB, st *store.Store, opts relay.Options) *running {
	t.Helper()
	return startRelayWith(t, st, opts, nil)
}

// startRelayWith is startRelay calling before, if not nil, on the Relay
// before it runs.
func startRelayWith(t testing.TB, st *store.Store, opts relay.Options, before func(*relay.Relay)) *running {
	t.Helper()
	opts.Store = st
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	if opts.Hostname == "" {
		opts.Hostname = "mx.mailferry.test"
	}
	if opts.TLSConfig == nil {
		opts.TLSConfig, _ = testTLS(t)
	}
	if opts.RetryBase == 0 {
		opts.RetryBase = 50 * time.Millisecond
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = 200 * time.Millisecond
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 100 * time.Millisecond
	}
	if opts.ClientTimeout == 0 {
		opts.ClientTimeout = 5 * time.Second
	}
	r, err := relay.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(r)
	}
	l1, l2, l3 := listen(t), listen(t), listen(t)
	rr := &running{r: r, smtpAddr: l1.Addr().String(), subAddr: l2.Addr().String(), subTLSAddr: l3.Addr().String(), done: make(chan struct{})}
	go r.ServeSMTP(l1)
	go r.ServeSubmission(l2)
	go r.ServeSubmissionTLS(l3)
	ctx, cancel := context.WithCancel(context.Background())
	rr.cancel = cancel
	go func() {
		defer close(rr.done)
		r.Run(ctx)
	}()
	t.Cleanup(rr.close)
	return rr
}

func (rr *running) close() {
	rr.closeOnce.Do(func() {
		rr.r.Close()
		rr.cancel()
		<-rr.done
	})
}

// send submits raw over plain SMTP (no TLS, no AUTH) and returns the error
// of the first refused step.
func send(addr, from string, to []string, raw []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	if err := c.SendMail(from, to, bytes.NewReader(raw)); err != nil {
		return err
	}
	return c.Quit()
}

// submit sends with STARTTLS and AUTH PLAIN on the submission port.
func submit(addr string, pool *x509.CertPool, user, pass, from string, to []string, raw []byte) error {
	c, err := smtp.DialStartTLS(addr, tlsClient(pool))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Auth(plain(user, pass)); err != nil {
		return err
	}
	if err := c.SendMail(from, to, bytes.NewReader(raw)); err != nil {
		return err
	}
	return c.Quit()
}

func message(subject, body string) []byte {
	return []byte("From: Sender <sender@elsewhere.test>\r\nTo: Someone <rcpt@example.test>\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + subject + "@elsewhere.test>\r\nDate: Mon, 02 Jan 2006 15:04:05 -0700\r\n\r\n" + body + "\r\n")
}

// splitReceived checks that got is one Received header followed by want.
func splitReceived(t testing.TB, got, want []byte) {
	t.Helper()
	if !bytes.HasPrefix(got, []byte("Received: from ")) {
		t.Fatalf("message does not start with a Received header:\n%s", got)
	}
	// The header ends at the first line that does not start with a tab.
	rest := got
	for {
		i := bytes.Index(rest, []byte("\r\n"))
		if i < 0 {
			t.Fatalf("unterminated Received header")
		}
		rest = rest[i+2:]
		if len(rest) == 0 || rest[0] != '\t' {
			break
		}
	}
	if !bytes.Equal(rest, want) {
		t.Fatalf("message after Received differs:\n got %q\nwant %q", rest, want)
	}
}

// oldSMTP is a local go-smtp server standing in for the old server's SMTP.
type oldSMTP struct {
	addr string

	mu       sync.Mutex
	srv      *smtp.Server
	ln       net.Listener
	down     net.Listener // while stopped: holds the port, cuts every connection
	got      []received
	reject   map[string]*smtp.SMTPError            // per recipient
	rcptErr  func(from, to string) *smtp.SMTPError // reply to RCPT, if not nil (after reject)
	dataErr  func(from string) *smtp.SMTPError     // reply to DATA, if not nil
	mailErr  func(from string) *smtp.SMTPError     // reply to MAIL, if not nil
	tune     func(*smtp.Server)                    // applied to each server started
	sessions int
	// users, when set, are the only recipients of domain it takes (any
	// other of domain gets 550 5.1.1, as a server that checks its users
	// at RCPT does); nil: every recipient not in reject (a catch-all).
	users map[string]bool
}

type received struct {
	From string
	To   []string
	Data []byte
}

// startOldSMTP starts a fake old SMTP on addr ("" = any free port).
func startOldSMTP(t testing.TB, addr string) *oldSMTP {
	t.Helper()
	return startOldSMTPTuned(t, addr, nil)
}

func startOldSMTPTuned(t testing.TB, addr string, tune func(*smtp.Server)) *oldSMTP {
	t.Helper()
	o := &oldSMTP{reject: map[string]*smtp.SMTPError{}, tune: tune}
	o.start(t, addr)
	t.Cleanup(func() {
		o.stop()
		o.mu.Lock()
		if o.down != nil {
			o.down.Close()
		}
		o.mu.Unlock()
	})
	return o
}

func (o *oldSMTP) start(t testing.TB, addr string) {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	o.mu.Lock()
	if o.down != nil {
		o.down.Close()
		o.down = nil
	}
	o.mu.Unlock()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may still be in TIME_WAIT use
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		o.mu.Lock()
		o.sessions++
		o.mu.Unlock()
		return &oldSession{o: o}, nil
	}))
	s.Domain = "old.example.test"
	s.EnableSMTPUTF8 = true
	s.ErrorLog = nopLog{}
	if o.tune != nil {
		o.tune(s)
	}
	o.mu.Lock()
	o.addr = ln.Addr().String()
	o.srv = s
	o.ln = ln
	o.mu.Unlock()
	go s.Serve(ln)
}

// stop takes the server down: connections to its port are accepted and cut
// at once (the port stays taken, so no other test listener gets it).
func (o *oldSMTP) stop() {
	o.mu.Lock()
	s, l := o.srv, o.ln
	o.srv, o.ln = nil, nil
	o.mu.Unlock()
	if s == nil {
		return
	}
	l.Close() // go-smtp's Close misses a listener Serve has not registered yet
	s.Close()
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		panic(err)
	}
	o.mu.Lock()
	o.down = ln
	o.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

func (o *oldSMTP) messages() []received {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]received(nil), o.got...)
}

type nopLog struct{}

func (nopLog) Printf(string, ...any) {}
func (nopLog) Println(...any)        {}

type oldSession struct {
	o    *oldSMTP
	from string
	to   []string
}

func (s *oldSession) Reset()        { s.from, s.to = "", nil }
func (s *oldSession) Logout() error { return nil }
func (s *oldSession) Mail(from string, _ *smtp.MailOptions) error {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	if s.o.mailErr != nil {
		if e := s.o.mailErr(from); e != nil {
			return e
		}
	}
	s.from = from
	return nil
}
func (s *oldSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	if e := s.o.reject[strings.ToLower(to)]; e != nil {
		return e
	}
	if s.o.rcptErr != nil {
		if e := s.o.rcptErr(s.from, to); e != nil {
			return e
		}
	}
	if s.o.users != nil && strings.HasSuffix(strings.ToLower(to), "@"+domain) && !s.o.users[strings.ToLower(to)] {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "User unknown"}
	}
	s.to = append(s.to, to)
	return nil
}
func (s *oldSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	if s.o.dataErr != nil {
		if e := s.o.dataErr(s.from); e != nil {
			return e
		}
	}
	s.o.got = append(s.o.got, received{From: s.from, To: s.to, Data: b})
	return nil
}

// rawConn speaks SMTP line by line.
type rawConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// reply reads one (possibly multi-line) reply and returns its last line.
func (r *rawConn) reply() string {
	r.t.Helper()
	var all []string
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			r.t.Fatalf("read reply: %v (so far %q)", err, all)
		}
		line = strings.TrimRight(line, "\r\n")
		all = append(all, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(all, "\n")
		}
	}
}

// cmd sends a line and returns the reply.
func (r *rawConn) cmd(line string) string {
	r.t.Helper()
	if _, err := fmt.Fprintf(r.c, "%s\r\n", line); err != nil {
		r.t.Fatal(err)
	}
	return r.reply()
}

func expectCode(t testing.TB, reply, code string) {
	t.Helper()
	last := reply
	if i := strings.LastIndexByte(reply, '\n'); i >= 0 {
		last = reply[i+1:]
	}
	if !strings.HasPrefix(last, code) {
		t.Fatalf("reply %q, want %s", reply, code)
	}
}

func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func tlsClient(pool *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: pool, ServerName: "mailferry.test"}
}

func plain(user, pass string) sasl.Client { return sasl.NewPlainClient("", user, pass) }

func loginClient(user, pass string) sasl.Client { return sasl.NewLoginClient(user, pass) }
