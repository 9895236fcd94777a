package relay_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mailferry/core/relay"
	"mailferry/core/testkit"
)

// ehloWithTLS starts an old server, a relay offering STARTTLS and a raw
// session to its SMTP port past EHLO, in clear; pool trusts its
// certificate.
func ehloWithTLS(t *testing.T) (*oldSMTP, *rawConn, *x509.CertPool) {
	t.Helper()
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	cfg, pool := testTLS(t)
	rr := startRelay(t, e.st, relay.Options{TLSConfig: cfg})
	r := dialRaw(t, rr.smtpAddr)
	expectCode(t, r.reply(), "220")
	expectCode(t, r.cmd("EHLO attacker.example"), "250")
	return old, r, pool
}

// AUTH inside a mail transaction is refused (RFC 4954 section 4): MAIL FROM
// was judged as a stranger's, so AUTH after it would let a user send with
// any sender address through the old server, which trusts us.
func TestAuthDuringTransactionRefused(t *testing.T) {
	old, r, pool := ehloWithTLS(t)
	expectCode(t, r.cmd("STARTTLS"), "220")
	tc := tls.Client(r.c, tlsClient(pool))
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	r.c, r.br = tc, bufio.NewReader(tc)
	expectCode(t, r.cmd("EHLO attacker.example"), "250")
	expectCode(t, r.cmd("MAIL FROM:<ceo@bank.example>"), "250")
	plain := base64.StdEncoding.EncodeToString([]byte("\x00" + alice + "\x00" + alicePW))
	expectCode(t, r.cmd("AUTH PLAIN "+plain), "503")
	expectCode(t, r.cmd("RCPT TO:<someone@elsewhere.test>"), "550")
	expectCode(t, r.cmd("RSET"), "250")
	// Outside a transaction AUTH works, and a second AUTH does not.
	expectCode(t, r.cmd("AUTH PLAIN "+plain), "235")
	expectCode(t, r.cmd("AUTH PLAIN "+plain), "503")
	expectCode(t, r.cmd("MAIL FROM:<ceo@bank.example>"), "553")
	if n := len(old.messages()); n != 0 {
		t.Fatalf("the old server got %d messages", n)
	}
}

// An authenticated user's MAIL FROM is theirs when it is their address in
// any form the logins accept (the canonical form: case, the domain in
// Unicode or A-labels), and only then: jörg of bücher.example, whose
// account is jörg@xn--bcher-kva.example, was refused sending as
// jörg@bücher.example (the addresses were compared by Unicode case folding
// alone).
func TestAuthenticatedSenderCanonical(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	ctx := context.Background()
	if _, err := e.st.CreateDomain(ctx, "xn--bcher-kva.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.CreateAccount(ctx, "jörg@xn--bcher-kva.example", alicePW, nil); err != nil {
		t.Fatal(err)
	}
	cfg, pool := testTLS(t)
	rr := startRelay(t, e.st, relay.Options{TLSConfig: cfg})
	for _, tc := range []struct {
		from string
		ok   bool
	}{
		{"jörg@bücher.example", true},
		{"JÖRG@BÜCHER.example", true},
		{"jörg@xn--bcher-kva.example", true},
		{"jörg@bücher.example.evil", false},
		{"joerg@bücher.example", false},
		{"jörg@example.test", false},
	} {
		c, err := smtp.DialStartTLS(rr.subAddr, tlsClient(pool))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Auth(plain("jörg@bücher.example", alicePW)); err != nil {
			t.Fatal(err)
		}
		err = c.Mail(tc.from, &smtp.MailOptions{UTF8: true})
		c.Close()
		if (err == nil) != tc.ok {
			t.Errorf("MAIL FROM:<%s> as jörg@bücher.example: %v, want accepted %v", tc.from, err, tc.ok)
		}
	}
}

// TestStartTLSPipelined: commands sent in clear right behind STARTTLS
// (CVE-2021-33515's kind, CVE-2011-0411 for SMTP: an attacker on the
// path injects them before the handshake) are dropped, never answered
// inside TLS, where the client would take the answers for its own.
func TestStartTLSPipelined(t *testing.T) {
	_, r, pool := ehloWithTLS(t)
	if _, err := fmt.Fprintf(r.c, "STARTTLS\r\nMAIL FROM:<ceo@bank.example>\r\nRCPT TO:<%s>\r\n", alice); err != nil {
		t.Fatal(err)
	}
	expectCode(t, r.reply(), "220")
	tc := testkit.QuietTLS(t, r.c, tlsClient(pool))
	r.c, r.br = tc, bufio.NewReader(tc)
	// No transaction was begun by the injected MAIL: RCPT is out of
	// order (go-smtp's 502 "Missing MAIL FROM command").
	expectCode(t, r.cmd("EHLO attacker.example"), "250")
	expectCode(t, r.cmd("RCPT TO:<"+alice+">"), "502")
}

// A PLAIN response that is not "authzid NUL authcid NUL passwd" (one NUL,
// three, none), as the initial response or after the 334, is a syntax
// error, 501 5.5.2 (RFC 4954 section 4), not go-smtp's 454 (a temporary
// failure, which has the client send it again); the session stays
// unauthenticated and takes a well-formed AUTH after.
func TestAuthPlainMalformed(t *testing.T) {
	old, r, pool := ehloWithTLS(t)
	expectCode(t, r.cmd("STARTTLS"), "220")
	tc := tls.Client(r.c, tlsClient(pool))
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	r.c, r.br = tc, bufio.NewReader(tc)
	expectCode(t, r.cmd("EHLO attacker.example"), "250")
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, resp := range []string{
		alice + "\x00" + alicePW,
		"\x00" + alice + "\x00" + alicePW + "\x00",
		alice + alicePW,
		"",
	} {
		if resp != "" {
			expectCode(t, r.cmd("AUTH PLAIN "+b64(resp)), "501 5.5.2")
		}
		expectCode(t, r.cmd("AUTH PLAIN"), "334")
		expectCode(t, r.cmd(b64(resp)), "501 5.5.2")
	}
	// 235, not 503 (a second AUTH after a successful one): none of the
	// malformed ones authenticated.
	expectCode(t, r.cmd("AUTH PLAIN "+b64("\x00"+alice+"\x00"+alicePW)), "235")
	expectCode(t, r.cmd("QUIT"), "221")
	if n := len(old.messages()); n != 0 {
		t.Fatalf("the old server got %d messages", n)
	}
}
