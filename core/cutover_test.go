package core_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
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

	"mailferry/core"
	"mailferry/core/testkit"
)

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
	z := testkit.StartZone(t)
	good := &smartSink{}
	goodPort := serveSMTP(t, good)
	refusing := &refusingSink{}
	badPort := serveSMTP(t, refusing)
	ca := testkit.NewCA(t, "Test CA")
	cf, kf := ca.Files(t, 90, "mx.example.test")
	co, err := core.Open(core.Config{DataDir: t.TempDir(), Hostname: "mx.example.test", DNSResolver: z.Addr, CertFile: cf, KeyFile: kf,
		CertRoots: ca.Pool})
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
	z.Set(t, "smart.test. 60 IN A 127.0.0.1")
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
	z.Set(t, "example.test. 60 IN MX 10 mx.example.test.", "example.test. 60 IN MX 20 old.example.net.")
	want(readiness(), core.CheckMX, core.CheckFail, "old.example.net is not Mailferry")
	z.Set(t, "example.test. 60 IN MX 10 mx.example.test.")
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
	z.Set(t, lines...)
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

// The certificate check: self-signed, for other names, expired, not yet
// valid, or with a chain that does not lead to a trusted root (a private
// CA, a cert_file without its intermediate) fails: what mail programs
// refuse is never an all-clear.
func TestCutoverCertificate(t *testing.T) {
	z := testkit.StartZone(t)
	ca := testkit.NewCA(t, "Test CA")
	// An intermediate of ca's, and a certificate it issued.
	inter := testkit.NewCA(t, "Test Intermediate")
	tmpl := *inter.Cert
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca.Cert, inter.Cert.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	if inter.Cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	viaInter := inter.Issue(t, time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour), "mx.example.test")
	for _, tc := range []struct {
		name  string
		files func() (string, string) // nil: the self-signed default
		roots *x509.CertPool
		want  core.CheckState
		text  string
	}{
		{"self-signed default", nil, ca.Pool, core.CheckFail, "self-signed"},
		{"trusted", func() (string, string) { return ca.Files(t, 90, "mx.example.test") }, ca.Pool, core.CheckOK, "valid for mx.example.test"},
		{"other names", func() (string, string) { return ca.Files(t, 90, "www.example.test") }, ca.Pool, core.CheckFail, "not valid for mx.example.test"},
		{"expires soon", func() (string, string) { return ca.Files(t, 3, "mx.example.test") }, ca.Pool, core.CheckWarn, "Renew it soon"},
		{"expired", func() (string, string) { return ca.Files(t, -1, "mx.example.test") }, ca.Pool, core.CheckFail, "expired"},
		{"not yet valid", func() (string, string) {
			return testkit.WriteFiles(t, ca.Issue(t, time.Now().Add(48*time.Hour), time.Now().Add(90*24*time.Hour), "mx.example.test"))
		}, ca.Pool, core.CheckFail, "not valid before"},
		{"self-signed file", func() (string, string) { return testkit.SelfSignedFiles(t, 90, "mx.example.test") }, ca.Pool, core.CheckFail, "do not trust"},
		{"private CA", func() (string, string) { return ca.Files(t, 90, "mx.example.test") }, nil, core.CheckFail, "do not trust"},
		{"whole chain", func() (string, string) {
			c := viaInter
			c.Certificate = [][]byte{c.Certificate[0], inter.Cert.Raw}
			return testkit.WriteFiles(t, c)
		}, ca.Pool, core.CheckOK, "valid for mx.example.test"},
		{"intermediate missing", func() (string, string) {
			c := viaInter
			c.Certificate = [][]byte{c.Certificate[0]}
			return testkit.WriteFiles(t, c)
		}, ca.Pool, core.CheckFail, "do not trust"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := core.Config{DataDir: t.TempDir(), Hostname: "mx.example.test", DNSResolver: z.Addr, CertRoots: tc.roots,
				IMAPListen: core.Off, IMAPSListen: core.Off, SMTPListen: core.Off, SubmissionListen: core.Off, SubmissionTLSListen: core.Off,
				POP3Listen: core.Off, POP3SListen: core.Off}
			if tc.files != nil {
				cfg.CertFile, cfg.KeyFile = tc.files()
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
	z := testkit.StartZone(t)
	z.Set(t, "relay.corp.test. 60 IN A 127.0.0.1")
	cf, kf := testkit.SelfSignedFiles(t, 90, "relay.corp.test") // pinned
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
	co, err := core.Open(core.Config{DataDir: t.TempDir(), Hostname: "mx.example.test", DNSResolver: z.Addr,
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
