package core_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"mailferry/core"
	"mailferry/core/certs/pebbletest"
)

const certHost = "mail.example.test"

// rawIMAP is an IMAP connection over implicit TLS spoken in raw lines.
type rawIMAP struct {
	c *tls.Conn
	r *bufio.Reader
}

func (i *rawIMAP) cmd(t *testing.T, tag, line string) {
	t.Helper()
	i.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := i.c.Write([]byte(tag + " " + line + "\r\n")); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	for {
		l, err := i.r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				t.Fatalf("%s: %s", line, l)
			}
			return
		}
	}
}

// startTLSIMAP does IMAP STARTTLS (RFC 3501 section 6.2.1) on the plain
// listener and returns the certificate served.
func startTLSIMAP(t *testing.T, addr string, cfg *tls.Config) *x509.Certificate {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
		t.Fatalf("IMAP greeting: %q %v", l, err)
	}
	conn.Write([]byte("s STARTTLS\r\n"))
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("STARTTLS: %v", err)
		}
		if strings.HasPrefix(l, "s ") {
			if !strings.HasPrefix(l, "s OK") {
				t.Fatalf("STARTTLS: %s", l)
			}
			break
		}
	}
	tc := tls.Client(conn, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("IMAP STARTTLS handshake: %v", err)
	}
	return tc.ConnectionState().PeerCertificates[0]
}

// smtpStartTLS does SMTP STARTTLS (RFC 3207) and returns the session and
// the certificate served.
func smtpStartTLS(t *testing.T, addr string, cfg *tls.Config) (*smtp.Client, *x509.Certificate) {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, cfg)
	if err != nil {
		t.Fatalf("SMTP STARTTLS on %s: %v", addr, err)
	}
	if err := c.Noop(); err != nil { // the handshake happens here
		t.Fatalf("SMTP STARTTLS on %s: %v", addr, err)
	}
	cs, ok := c.TLSConnectionState()
	if !ok || len(cs.PeerCertificates) == 0 {
		t.Fatalf("SMTP on %s: no TLS", addr)
	}
	return c, cs.PeerCertificates[0]
}

// TestCertificatesACME: with acme_* set, every TLS listener (IMAP
// STARTTLS, IMAPS, SMTP STARTTLS, submission, submissions) serves a
// certificate Pebble issued, verified by a client that trusts only
// Pebble's root; a renewal swaps it for new connections while an open,
// logged-in IMAP connection and an open SMTP session go on.
func TestCertificatesACME(t *testing.T) {
	httpPort := pebbletest.FreePort(t)
	p := pebbletest.Start(t, pebbletest.Options{HTTPPort: httpPort})
	data := t.TempDir()
	loop := "127.0.0.1:0"
	co, err := core.Open(core.Config{
		DataDir: data, Hostname: certHost,
		IMAPListen: loop, IMAPSListen: loop, SMTPListen: loop, SubmissionListen: loop, SubmissionTLSListen: loop, POP3Listen: loop, POP3SListen: loop,
		ACMEEmail: "postmaster@example.test", ACMEDirectory: p.Directory, ACMEDirectoryCA: p.DirectoryCA,
		ACMEHTTPListen: "127.0.0.1:" + strconv.Itoa(httpPort),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	ctx := context.Background()
	if _, err := co.AddDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := co.AddAccount(ctx, "alice@example.test", "Secret-1"); err != nil {
		t.Fatal(err)
	}
	if err := co.Start(); err != nil {
		t.Fatal(err)
	}
	var in core.CertificateInfo
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if in = co.Certificate(); in.Source == core.CertACME {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ACME certificate: %+v", in)
		}
	}
	if len(in.Names) != 1 || in.Names[0] != certHost || in.Issuer == "" || in.Problem != "" || in.RenewAt.IsZero() {
		t.Fatalf("certificate info: %+v", in)
	}
	st, err := co.Status(ctx, nil)
	if err != nil || st.Certificate.Source != core.CertACME || !st.Certificate.NotAfter.Equal(in.NotAfter) {
		t.Fatalf("status certificate: %+v %v", st.Certificate, err)
	}
	b, _ := json.Marshal(st)
	if !strings.Contains(string(b), `"source":"acme"`) {
		t.Fatalf("status JSON has no certificate: %s", b)
	}

	cfg := &tls.Config{ServerName: certHost, RootCAs: p.Roots(t)}
	first := in.Leaf

	// Every TLS listener serves Pebble's certificate.
	for _, svc := range []string{"imaps", "submissions"} {
		c, err := tls.Dial("tcp", co.Addr(svc), cfg)
		if err != nil {
			t.Fatalf("%s: %v", svc, err)
		}
		if !c.ConnectionState().PeerCertificates[0].Equal(first) {
			t.Fatalf("%s serves another certificate", svc)
		}
		c.Close()
	}
	if !startTLSIMAP(t, co.Addr("imap"), cfg).Equal(first) {
		t.Fatal("imap STARTTLS serves another certificate")
	}
	for _, svc := range []string{"smtp", "submission"} {
		c, leaf := smtpStartTLS(t, co.Addr(svc), cfg)
		if !leaf.Equal(first) {
			t.Fatalf("%s serves another certificate", svc)
		}
		c.Close()
	}

	// Open connections: a logged-in IMAP client, a raw IMAPS session, an
	// SMTP submission session.
	ic, err := imapclient.DialTLS(co.Addr("imaps"), &imapclient.Options{TLSConfig: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Login("alice@example.test", "Secret-1").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	rc, err := tls.Dial("tcp", co.Addr("imaps"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	raw := &rawIMAP{c: rc, r: bufio.NewReader(rc)}
	raw.cmd(t, "a1", "CAPABILITY")
	sc, _ := smtpStartTLS(t, co.Addr("submission"), cfg)
	defer sc.Close()

	if err := co.RenewCertificate(ctx); err != nil {
		t.Fatal(err)
	}
	renewed := co.Certificate()
	if renewed.Leaf.Equal(first) || renewed.Source != core.CertACME {
		t.Fatalf("after renewal: %+v", renewed)
	}
	for _, svc := range []string{"imaps", "submissions"} {
		c, err := tls.Dial("tcp", co.Addr(svc), cfg)
		if err != nil {
			t.Fatalf("%s after renewal: %v", svc, err)
		}
		if !c.ConnectionState().PeerCertificates[0].Equal(renewed.Leaf) {
			t.Fatalf("%s: a new connection gets the old certificate", svc)
		}
		c.Close()
	}
	c, leaf := smtpStartTLS(t, co.Addr("smtp"), cfg)
	if !leaf.Equal(renewed.Leaf) {
		t.Fatal("smtp: a new connection gets the old certificate")
	}
	c.Close()

	// The open connections go on, with the certificate they began with.
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("the logged-in IMAP connection after renewal: %v", err)
	}
	if err := ic.Noop().Wait(); err != nil {
		t.Fatalf("the logged-in IMAP connection after renewal: %v", err)
	}
	raw.cmd(t, "a2", "NOOP")
	if !rc.ConnectionState().PeerCertificates[0].Equal(first) {
		t.Fatal("the open connection's certificate changed")
	}
	if err := sc.Noop(); err != nil {
		t.Fatalf("the open SMTP session after renewal: %v", err)
	}

	// The challenge listener answers nothing but challenges.
	if a := co.Addr("acme-http"); a == "" {
		t.Fatal("no acme-http listener")
	}
	// A process beside it (`mailferry status`) reads the same certificate.
	other, err := core.Open(core.Config{DataDir: data, Hostname: certHost,
		ACMEEmail: "postmaster@example.test", ACMEDirectory: p.Directory, ACMEDirectoryCA: p.DirectoryCA,
		ACMEHTTPListen: "127.0.0.1:" + strconv.Itoa(httpPort)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if got := other.Certificate(); got.Source != core.CertACME || !got.Leaf.Equal(renewed.Leaf) {
		t.Fatalf("certificate seen by another process: %+v", got)
	}
}

// TestCertificateConfig: the no-configuration default is the self-signed
// certificate; cert_file wins; ACME keys without acme_email are refused.
func TestCertificateConfig(t *testing.T) {
	data := t.TempDir()
	co, err := core.Open(core.Config{DataDir: data, Hostname: certHost})
	if err != nil {
		t.Fatal(err)
	}
	if in := co.Certificate(); in.Source != core.CertSelfSigned || in.Problem == "" {
		t.Fatalf("before the first start: %+v", in)
	}
	loop := "127.0.0.1:0"
	co.Close()
	co, err = core.Open(core.Config{DataDir: data, Hostname: certHost,
		IMAPListen: loop, IMAPSListen: loop, SMTPListen: loop, SubmissionListen: loop, SubmissionTLSListen: loop, POP3Listen: loop, POP3SListen: loop})
	if err != nil {
		t.Fatal(err)
	}
	if err := co.Start(); err != nil {
		t.Fatal(err)
	}
	in := co.Certificate()
	co.Close()
	if in.Source != core.CertSelfSigned || in.Subject != certHost || in.Problem != "" {
		t.Fatalf("self-signed: %+v", in)
	}

	// cert_file wins over acme_email, and no challenge listener opens.
	tlsDir := filepath.Join(data, "tls")
	co, err = core.Open(core.Config{DataDir: data, Hostname: certHost,
		IMAPListen: loop, IMAPSListen: Off(), SMTPListen: Off(), SubmissionListen: Off(), SubmissionTLSListen: Off(), POP3Listen: Off(), POP3SListen: Off(),
		CertFile: filepath.Join(tlsDir, "cert.pem"), KeyFile: filepath.Join(tlsDir, "key.pem"),
		ACMEEmail: "postmaster@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := co.Start(); err != nil {
		t.Fatal(err)
	}
	if in := co.Certificate(); in.Source != core.CertFile || co.Addr("acme-http") != "" {
		t.Fatalf("cert_file: %+v, acme-http on %q", in, co.Addr("acme-http"))
	}
	co.Close()

	for _, c := range []struct {
		cfg  core.Config
		want string
	}{
		{core.Config{ACMENames: []string{certHost}}, "acme_email"},
		{core.Config{ACMEHTTPListen: "0.0.0.0:80"}, "acme_email"},
		{core.Config{ACMEEmail: "nobody"}, "acme_email"},
		{core.Config{ACMEEmail: "a@example.test", ACMEHTTPListen: Off(), ACMETLSListen: Off()}, "challenge listener"},
		{core.Config{ACMEEmail: "a@example.test", ACMEHTTPListen: "80"}, "acme_http_listen"},
		{core.Config{ACMEEmail: "a@example.test", ACMENames: []string{"mail example"}}, "acme_names"},
	} {
		c.cfg.DataDir = data
		err := c.cfg.Defaults().Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
	if def := (core.Config{ACMEEmail: "a@example.test", Hostname: "Mail.Example.Test"}).Defaults(); def.ACMEDirectory != "https://acme-v02.api.letsencrypt.org/directory" ||
		def.ACMEHTTPListen != "0.0.0.0:80" || def.ACMETLSListen != core.Off || len(def.ACMENames) != 1 || def.ACMENames[0] != "mail.example.test" {
		t.Errorf("ACME defaults: %+v", def)
	}
	if _, err := os.Stat(filepath.Join(data, "acme")); err == nil {
		t.Error("an ACME cache was made without ACME")
	}
}

func Off() string { return core.Off }
