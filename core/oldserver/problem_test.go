package oldserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"mailferry/core/oldserver"
)

// selfSigned is a fresh self-signed certificate for 127.0.0.1.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "old.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestExplain checks the error vocabulary against servers that go wrong
// the ways an admin meets: each failure gets its kind, a headline that
// says what happened and advice, never a protocol error as the words.
func TestExplain(t *testing.T) {
	banner := func(line string) int {
		return badServer(t, func(c net.Conn) {
			c.Write([]byte(line + "\r\n"))
			buf := make([]byte, 512)
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			c.Read(buf)
		})
	}
	smtpBanner := banner("220 old.example ESMTP Postfix")
	imapBanner := banner("* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.")
	bye := banner("* BYE Too many connections from your IP")
	silent := badServer(t, func(c net.Conn) { time.Sleep(3 * time.Second) })
	noStartTLS := badServer(t, func(c net.Conn) {
		c.Write([]byte("* OK [CAPABILITY IMAP4rev1] ready\r\n"))
		buf := make([]byte, 512)
		n, _ := c.Read(buf)
		tag, _, _ := strings.Cut(string(buf[:n]), " ")
		c.Write([]byte(tag + " BAD STARTTLS not supported\r\n"))
		c.Read(buf)
	})
	cert := selfSigned(t)
	tlsPort := badServer(t, func(c net.Conn) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		if tc.Handshake() == nil {
			tc.Write([]byte("* OK ready\r\n"))
			tc.Read(make([]byte, 64))
		}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().(*net.TCPAddr).Port
	l.Close()

	type dial func(oldserver.Settings) error
	imapDial := func(s oldserver.Settings) error {
		c, err := oldserver.DialIMAP(context.Background(), s, &oldserver.DialOptions{Timeout: time.Second})
		if c != nil {
			c.Close()
		}
		return err
	}
	smtpDial := func(s oldserver.Settings) error {
		c, err := oldserver.DialSMTP(context.Background(), s, &oldserver.DialOptions{Timeout: time.Second})
		if c != nil {
			c.Close()
		}
		return err
	}
	tests := []struct {
		name    string
		dial    dial
		port    int
		mode    oldserver.TLSMode
		kind    oldserver.ProblemKind
		reached bool
		words   string // in Headline+Advice
	}{
		{"SMTP port in the IMAP field", imapDial, smtpBanner, oldserver.TLSNone, oldserver.ProblemWrongProtocol, true, "swapped"},
		{"SMTP port in the IMAP field, STARTTLS", imapDial, smtpBanner, oldserver.TLSStartTLS, oldserver.ProblemWrongProtocol, true, "speaks SMTP"},
		{"SMTP port in the IMAP field, SSL/TLS", imapDial, smtpBanner, oldserver.TLSImplicit, oldserver.ProblemWrongProtocol, true, "speaks SMTP"},
		{"IMAP port in the SMTP field", smtpDial, imapBanner, oldserver.TLSNone, oldserver.ProblemWrongProtocol, true, "speaks IMAP"},
		{"IMAP port in the SMTP field, STARTTLS", smtpDial, imapBanner, oldserver.TLSStartTLS, oldserver.ProblemWrongProtocol, true, "swapped"},
		{"SSL/TLS on a plain port", imapDial, imapBanner, oldserver.TLSImplicit, oldserver.ProblemTLSMismatch, true, "Choose STARTTLS"},
		{"plain on a TLS-only port", imapDial, silent, oldserver.TLSNone, oldserver.ProblemTLSMismatch, true, "choose SSL/TLS"},
		{"no STARTTLS", imapDial, noStartTLS, oldserver.TLSStartTLS, oldserver.ProblemTLSMismatch, true, "does not offer STARTTLS"},
		{"self-signed certificate", imapDial, tlsPort, oldserver.TLSImplicit, oldserver.ProblemUntrusted, true, "trust it"},
		{"connection cap", imapDial, bye, oldserver.TLSNone, oldserver.ProblemBusy, true, "Too many connections"},
		{"nothing listens", imapDial, closed, oldserver.TLSNone, oldserver.ProblemRefused, false, "Nothing listens on the IMAP port"},
		{"silent TLS port", imapDial, silent, oldserver.TLSImplicit, oldserver.ProblemTimeout, true, "did not answer in time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := oldserver.DefaultSettings(oldserver.MustParseHost("[127.0.0.1]"))
			s.IMAPPort, s.IMAPTLS, s.SMTPPort, s.SMTPTLS = tt.port, tt.mode, tt.port, tt.mode
			err := tt.dial(s)
			if err == nil {
				t.Fatal("dial succeeded")
			}
			p := oldserver.Explain(err)
			if p.Kind != tt.kind || p.Reached != tt.reached {
				t.Fatalf("Explain(%v) = kind %q reached %v, want %q %v (%+v)", err, p.Kind, p.Reached, tt.kind, tt.reached, p)
			}
			if !strings.Contains(p.String(), tt.words) {
				t.Errorf("words %q lack %q", p.String(), tt.words)
			}
			if p.Headline == "" || p.Advice == "" || p.Detail != err.Error() {
				t.Errorf("incomplete problem %+v", p)
			}
			for _, jargon := range []string{"tagged", "EOF", "context deadline", "oldserver:"} {
				if strings.Contains(p.String(), jargon) {
					t.Errorf("words %q contain the jargon %q", p.String(), jargon)
				}
			}
		})
	}

	t.Run("without a network", func(t *testing.T) {
		for _, c := range []struct {
			err  error
			kind oldserver.ProblemKind
		}{
			{fmt.Errorf("copy: %w", oldserver.ErrAuthFailed), oldserver.ProblemPassword},
			{fmt.Errorf("copy: %w", context.Canceled), oldserver.ProblemCanceled},
			{&net.DNSError{Err: "no such host", Name: "old.invalid", IsNotFound: true}, oldserver.ProblemDNS},
			{errors.New("something else"), oldserver.ProblemOther},
		} {
			if p := oldserver.Explain(c.err); p.Kind != c.kind || p.Headline == "" {
				t.Errorf("Explain(%v) = %+v, want kind %q", c.err, p, c.kind)
			}
		}
		if p := oldserver.Explain(nil); p.Kind != "" {
			t.Errorf("Explain(nil) = %+v", p)
		}
	})
}
