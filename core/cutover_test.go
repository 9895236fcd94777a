package core_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"mailferry/core"
)

// zone is a DNS server on 127.0.0.1 answering the records the test sets.
type zone struct {
	addr string
	mu   sync.Mutex
	recs map[string][]dns.RR
}

func startZone(t *testing.T) *zone {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	z := &zone{addr: pc.LocalAddr().String(), recs: map[string][]dns.RR{}}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		q := req.Question[0]
		z.mu.Lock()
		rrs, ok := z.recs[strings.ToLower(q.Name)]
		z.mu.Unlock()
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return z
}

// set replaces the records of the names the lines own.
func (z *zone) set(t *testing.T, lines ...string) {
	t.Helper()
	z.mu.Lock()
	defer z.mu.Unlock()
	fresh := map[string]bool{}
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		n := strings.ToLower(rr.Header().Name)
		if !fresh[n] {
			fresh[n] = true
			z.recs[n] = nil
		}
		z.recs[n] = append(z.recs[n], rr)
	}
}

// refusingSink is a smarthost that refuses every recipient.
type refusingSink struct{ smartSink }

func (s *refusingSink) NewSession(*smtp.Conn) (smtp.Session, error) { return s, nil }
func (s *refusingSink) Rcpt(string, *smtp.RcptOptions) error {
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "relaying denied"}
}

func serveSMTP(t *testing.T, be smtp.Backend) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := smtp.NewServer(be)
	srv.Domain = "smarthost.test"
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// certFiles writes a certificate for names (valid for days) and its key.
func certFiles(t *testing.T, days int, names ...string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Duration(days) * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return cf, kf
}

func check(t *testing.T, r *core.Readiness, name string) core.CutoverCheck {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s check in %+v", name, r.Checks)
	return core.CutoverCheck{}
}

// The cutover checks ask the world as it is — DNS through dns_resolver,
// the certificate, a test message through the post-migration route — and
// DisableMigration refuses, changing nothing, until every one holds and
// the old server's users are known to have moved (or the admin forces it).
// The Core does not serve: the test message leaves through a relay of its
// own, as from the command line beside `mailferry serve`.
func TestCutover(t *testing.T) {
	z := startZone(t)
	good := &smartSink{}
	goodPort := serveSMTP(t, good)
	refusing := &refusingSink{}
	badPort := serveSMTP(t, refusing)
	cf, kf := certFiles(t, 90, "mx.example.test")
	co, err := core.Open(core.Config{DataDir: t.TempDir(), Hostname: "mx.example.test", DNSResolver: z.addr, CertFile: cf, KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	ctx := context.Background()
	const domain = "example.test"
	if err := co.EnableMigration(ctx, domain, core.DefaultOldServer(core.MustParseHost("[192.0.2.7]")).WithDefaults()); err != nil {
		t.Fatal(err)
	}
	smart := func(port int) core.OutboundRoute {
		return core.OutboundRoute{Kind: core.RouteSmarthost, Host: "smart.test", Port: port, TLS: core.SmarthostNone}
	}
	if err := co.SetOutboundRoute(ctx, domain, smart(goodPort)); err != nil {
		t.Fatal(err)
	}
	z.set(t, "smart.test. 60 IN A 127.0.0.1")
	readiness := func() *core.Readiness {
		t.Helper()
		r, err := co.Readiness(ctx, domain)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	want := func(r *core.Readiness, name string, state core.CheckState, text string) {
		t.Helper()
		c := check(t, r, name)
		if c.State != state || !strings.Contains(c.Text, text) {
			t.Errorf("%s: %s %q, want %s with %q", name, c.State, c.Text, state, text)
		}
	}

	r := readiness()
	want(r, core.CheckRoute, core.CheckFail, "Not proven")
	want(r, core.CheckMX, core.CheckFail, "no MX record")
	want(r, core.CheckDNSRecords, core.CheckFail, "is missing")
	want(r, core.CheckCertificate, core.CheckOK, "mx.example.test")
	if !r.SendingBreaks() || r.Ready() {
		t.Fatalf("nothing proven: %s", r.Text())
	}
	r, err = co.DisableMigration(ctx, domain, false)
	var nre *core.NotReadyError
	if !errors.Is(err, core.ErrNotReady) || !errors.As(err, &nre) || nre.Readiness != r || !strings.Contains(err.Error(), "Not proven") {
		t.Fatalf("disable while sending would break: %v", err)
	}
	if d, _ := co.Domain(ctx, domain); !d.Migrating {
		t.Fatal("a refused DisableMigration turned migration off")
	}

	// DNS: the MX still names the old server, then Mailferry; the records.
	z.set(t, "example.test. 60 IN MX 10 mx.example.test.", "example.test. 60 IN MX 20 old.example.net.")
	want(readiness(), core.CheckMX, core.CheckFail, "old.example.net is not Mailferry")
	z.set(t, "example.test. 60 IN MX 10 mx.example.test.")
	recs, err := co.DKIMRecords(ctx, domain, core.SPFPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{"example.test. 60 IN MX 10 mx.example.test."}
	txt := map[string]string{}
	for _, rec := range recs {
		lines = append(lines, rec.Zone())
		txt[rec.Name] = rec.Value
	}
	z.set(t, lines...)
	r = readiness()
	want(r, core.CheckMX, core.CheckOK, "mx.example.test")
	want(r, core.CheckDNSRecords, core.CheckOK, "published")

	// Test messages that must not leave, or are refused: no proof.
	for _, bad := range []string{"bob@example.test", "", "no-domain", "a\r\nRCPT TO:<x@evil.test>@far.test", strings.Repeat("a", 300) + "@far.test"} {
		if _, err := co.SendTestMessage(ctx, domain, bad); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("test message to %q: %v, want ErrInvalid", bad, err)
		}
	}
	if err := co.SetOutboundRoute(ctx, domain, smart(badPort)); err != nil {
		t.Fatal(err)
	}
	_, err = co.SendTestMessage(ctx, domain, "friend@far.test")
	var de *core.DeliveryError
	if !errors.As(err, &de) || !de.Permanent || !strings.Contains(de.Detail, "relaying denied") {
		t.Fatalf("refused test message: %v", err)
	}
	want(readiness(), core.CheckRoute, core.CheckFail, "Not proven")

	// Through the good smarthost: delivered, DKIM-signed, proven.
	if err := co.SetOutboundRoute(ctx, domain, smart(goodPort)); err != nil {
		t.Fatal(err)
	}
	p, err := co.SendTestMessage(ctx, domain, "friend@far.test")
	if err != nil || p.Remote != "smart.test" || p.Reply != "250" || p.Rcpt != "friend@far.test" {
		t.Fatalf("test message: %+v, %v", p, err)
	}
	good.mu.Lock()
	if len(good.got) != 1 || good.to[0] != "friend@far.test" {
		t.Fatalf("the smarthost got %d messages for %v", len(good.got), good.to)
	}
	verifs, err := msgdkim.VerifyWithOptions(bytes.NewReader(good.got[0]), &msgdkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return []string{txt[strings.TrimSuffix(name, ".")]}, nil }})
	good.mu.Unlock()
	if err != nil || len(verifs) != 2 || verifs[0].Err != nil || verifs[1].Err != nil {
		t.Fatalf("DKIM of the test message: %v %+v", err, verifs)
	}
	r = readiness()
	want(r, core.CheckRoute, core.CheckOK, "accepted by smart.test")
	if r.SendingBreaks() || r.Verdict() != core.VerdictUnknown || strings.Contains(r.Text(), "can be turned off") {
		t.Fatalf("route proven, no user list: %s: %s", r.Verdict(), r.Text())
	}
	if _, err := co.DisableMigration(ctx, domain, false); !errors.Is(err, core.ErrNotReady) {
		t.Fatalf("disable without a user list: %v", err)
	}

	// Another smarthost: the proof no longer holds.
	if err := co.SetOutboundRoute(ctx, domain, smart(goodPort+1)); err != nil {
		t.Fatal(err)
	}
	want(readiness(), core.CheckRoute, core.CheckFail, "route changed")
	if err := co.SetOutboundRoute(ctx, domain, smart(goodPort)); err != nil {
		t.Fatal(err)
	}

	// The list: alice has not moved, then has.
	if _, err := co.ImportKnownUsers(ctx, domain, strings.NewReader("alice\n")); err != nil {
		t.Fatal(err)
	}
	if r = readiness(); r.Verdict() != core.VerdictNotReady || len(r.NeverLoggedIn) != 1 {
		t.Fatalf("alice not moved: %s", r.Text())
	}
	if _, err := co.AddAccount(ctx, "alice@"+domain, "Alice-Secret-1"); err != nil {
		t.Fatal(err)
	}
	if r = readiness(); !r.Ready() || !strings.Contains(r.Text(), "can be turned off") {
		t.Fatalf("ready: %s", r.Text())
	}
	if _, err := co.DisableMigration(ctx, domain, false); err != nil {
		t.Fatal(err)
	}
	if d, _ := co.Domain(ctx, domain); d.Migrating {
		t.Fatal("still migrating")
	}

	// --force: the admin saw the facts and goes on.
	if err := co.EnableMigration(ctx, "other.test", core.DefaultOldServer(core.MustParseHost("[192.0.2.7]")).WithDefaults()); err != nil {
		t.Fatal(err)
	}
	if r, err := co.DisableMigration(ctx, "other.test", true); err != nil || r.Ready() {
		t.Fatalf("forced: %v, %v", r, err)
	}
	if d, _ := co.Domain(ctx, "other.test"); d.Migrating {
		t.Fatal("forced disable left migration on")
	}
}

// The certificate check: self-signed, for other names, or expired fails.
func TestCutoverCertificate(t *testing.T) {
	z := startZone(t)
	for _, tc := range []struct {
		name  string
		names []string
		days  int
		want  core.CheckState
		text  string
	}{
		{"self-signed default", nil, 0, core.CheckFail, "self-signed"},
		{"other names", []string{"www.example.test"}, 90, core.CheckFail, "not valid for mx.example.test"},
		{"expires soon", []string{"mx.example.test"}, 3, core.CheckWarn, "Renew it soon"},
		{"expired", []string{"mx.example.test"}, -1, core.CheckFail, "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := core.Config{DataDir: t.TempDir(), Hostname: "mx.example.test", DNSResolver: z.addr,
				IMAPListen: core.Off, IMAPSListen: core.Off, SMTPListen: core.Off, SubmissionListen: core.Off, SubmissionTLSListen: core.Off}
			if tc.names != nil {
				cfg.CertFile, cfg.KeyFile = certFiles(t, tc.days, tc.names...)
			}
			co, err := core.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer co.Close()
			if err := co.Start(); err != nil {
				t.Fatal(err)
			}
			if _, err := co.AddDomain(context.Background(), "example.test"); err != nil {
				t.Fatal(err)
			}
			r, err := co.Readiness(context.Background(), "example.test")
			if err != nil {
				t.Fatal(err)
			}
			c := check(t, r, core.CheckCertificate)
			if c.State != tc.want || !strings.Contains(c.Text, tc.text) {
				t.Errorf("%s %q, want %s with %q", c.State, c.Text, tc.want, tc.text)
			}
		})
	}
}

// authSink is a smarthost with STARTTLS and AUTH PLAIN.
type authSink struct {
	mu   sync.Mutex
	user string
	got  int
}

type authSinkSession struct {
	s    *authSink
	user string
}

func (s *authSink) NewSession(*smtp.Conn) (smtp.Session, error) { return &authSinkSession{s: s}, nil }
func (ss *authSinkSession) AuthMechanisms() []string            { return []string{sasl.Plain} }
func (ss *authSinkSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "relay-user" || pass != "File-Secret-9" {
			return smtp.ErrAuthFailed
		}
		ss.user = user
		return nil
	}), nil
}
func (ss *authSinkSession) Reset()        {}
func (ss *authSinkSession) Logout() error { return nil }
func (ss *authSinkSession) Mail(string, *smtp.MailOptions) error {
	if ss.user == "" {
		return smtp.ErrAuthRequired
	}
	return nil
}
func (ss *authSinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (ss *authSinkSession) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	ss.s.mu.Lock()
	ss.s.got++
	ss.s.user = ss.user
	ss.s.mu.Unlock()
	return err
}

// A test message goes through a smarthost set in the configuration file,
// with AUTH (its password read from password_file) and the smarthost's own
// certificate pinned; the proof matches the route readiness sees.
func TestTestMessageThroughConfiguredSmarthost(t *testing.T) {
	z := startZone(t)
	z.set(t, "relay.corp.test. 60 IN A 127.0.0.1")
	cf, kf := certFiles(t, 90, "relay.corp.test")
	pair, err := tls.LoadX509KeyPair(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pair.Certificate[0])
	sink := &authSink{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := smtp.NewServer(sink)
	srv.Domain = "relay.corp.test"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}}
	go srv.Serve(ln)
	defer srv.Close()
	pwFile := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pwFile, []byte("File-Secret-9\n"), 0o600)
	co, err := core.Open(core.Config{DataDir: t.TempDir(), Hostname: "mx.example.test", DNSResolver: z.addr,
		OutboundRoutes: map[string]core.OutboundRouteConfig{"example.test": {Route: "smarthost",
			Smarthost: "relay.corp.test:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:"),
			Username:  "relay-user", PasswordFile: pwFile, Pin: hex.EncodeToString(sum[:])}}})
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	ctx := context.Background()
	if _, err := co.AddDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	p, err := co.SendTestMessage(ctx, "example.test", "friend@far.test")
	if err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	if sink.got != 1 || sink.user != "relay-user" {
		t.Errorf("the smarthost got %d messages as %q", sink.got, sink.user)
	}
	sink.mu.Unlock()
	if strings.Contains(p.Route, "File-Secret-9") {
		t.Errorf("the proof holds the password: %q", p.Route)
	}
	r, err := co.Readiness(ctx, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if c := check(t, r, core.CheckRoute); c.State != core.CheckOK {
		t.Errorf("route check after the test message: %s %q", c.State, c.Text)
	}
}
