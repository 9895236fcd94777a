package relay_test

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"testing"
	"time"

	"mailferry/core/relay"
)

// AUTH inside a mail transaction is refused (RFC 4954 section 4): MAIL FROM
// was judged as a stranger's, so AUTH after it would let a user send with
// any sender address through the old server, which trusts us.
func TestAuthDuringTransactionRefused(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	cfg, pool := testTLS(t)
	rr := startRelay(t, e.st, relay.Options{TLSConfig: cfg})
	r := dialRaw(t, rr.smtpAddr)
	expectCode(t, r.reply(), "220")
	expectCode(t, r.cmd("EHLO attacker.example"), "250")
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
