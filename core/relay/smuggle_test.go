package relay_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"mailferry/core/oldserver/oldtest"
	"mailferry/core/relay"
)

// smuggledBody holds, after one line of text each, the end-of-data forms
// SMTP smuggling uses (CVE-2023-51764 and its kin: a bare LF or a bare CR
// where <CR><LF> belongs), each followed by a whole second transaction
// for victim@outside.test (which the fixture's Postfix would deliver to
// catchall+victim=outside.test). A server that took any of them for the
// end of DATA would send the second message with the trust the first
// had: Postfix trusts Mailferry (mynetworks) and exempts it from its own
// bare-newline checks (smtpd_forbid_bare_newline_exclusions).
func smuggledBody(tag string) []byte {
	var b strings.Builder
	b.WriteString("From: Sender <sender@elsewhere.test>\r\nTo: Bob <bob@example.test>\r\nSubject: " + tag +
		"\r\nMessage-ID: <" + tag + "@elsewhere.test>\r\n\r\n")
	for i, end := range []string{"\n.\r\n", "\n.\n", "\r.\r\n", "\r\n.\r", "\r.\n", "\r\n.\n"} {
		b.WriteString("line " + string(rune('a'+i)) + end)
		b.WriteString("MAIL FROM:<ceo@example.test>\r\nRCPT TO:<victim@outside.test>\r\nDATA\r\n" +
			"From: ceo@example.test\r\nSubject: smuggled-" + tag + "\r\n\r\nsmuggled\r\n")
	}
	b.WriteString("the end\r\n")
	return []byte(b.String())
}

// toBob opens an SMTP session to addr as helo, from outside, up to an
// accepted RCPT TO bob.
func toBob(t *testing.T, addr, helo string) *rawConn {
	t.Helper()
	c := dialRaw(t, addr)
	expectCode(t, c.reply(), "220")
	expectCode(t, c.cmd("EHLO "+helo), "250")
	expectCode(t, c.cmd("MAIL FROM:<sender@elsewhere.test>"), "250")
	expectCode(t, c.cmd("RCPT TO:<"+bob+">"), "250")
	return c
}

// rawData sends body as DATA on a session already past RCPT, byte for
// byte (the client libraries would turn a bare LF into CRLF), and returns
// the reply to it.
func rawData(t *testing.T, w net.Conn, br *bufio.Reader, body []byte) string {
	t.Helper()
	if _, err := w.Write(append(append([]byte(nil), body...), ".\r\n"...)); err != nil {
		t.Fatal(err)
	}
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

// hasStray reports a CR not followed by LF, or an LF not preceded by CR.
func hasStray(b []byte) bool {
	for i, c := range b {
		if c == '\r' && (i+1 == len(b) || b[i+1] != '\n') {
			return true
		}
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			return true
		}
	}
	return false
}

// TestSmugglingToOldServer sends the smuggling forms through Mailferry to
// the real Postfix of the fixture: from outside to a user not yet moved
// (forwarded while the sender waits) and from an authenticated user to
// the outside (queued, then handed to the old server's SMTP). Each
// message must arrive once, whole, with no second message split off it,
// and with no stray CR or LF (a bare LF sent as CRLF, a stray CR as a
// space, as Postfix 3.9 does: its smtpd_forbid_bare_newline=normalize and
// cleanup_replace_stray_cr_lf; the fixture turns the latter off, as an old
// server before them has it, so what the old server stores is what we
// sent). A stray CR handed on is a smuggling vector towards servers that
// take <CR>.<CR> for the end of data.
func TestSmugglingToOldServer(t *testing.T) {
	fe := newFixtureEnv(t, func(s *oldtest.Server) string { return s.SMTPAddr })
	cfg, pool := testTLS(t)
	rr := startRelay(t, fe.st, relay.Options{TLSConfig: cfg})

	// From outside, to bob (not moved): forwarded to Postfix during DATA.
	out := smuggledBody("smuggle-in")
	rc := toBob(t, rr.smtpAddr, "attacker.test")
	expectCode(t, rc.cmd("DATA"), "354")
	expectCode(t, rawData(t, rc.c, rc.br, out), "250")
	expectCode(t, rc.cmd("QUIT"), "221")

	// From outside, to bob, in BDAT: inside a chunk <CR><LF>.<CR><LF> is
	// content like any other, and goes to the old server in DATA, where it
	// must be dot-stuffed, not taken for the end.
	chunked := append(smuggledBody("smuggle-bdat"), "\r\n.\r\nMAIL FROM:<ceo@example.test>\r\nRCPT TO:<victim@outside.test>\r\nDATA\r\n"+
		"From: ceo@example.test\r\nSubject: smuggled-smuggle-bdat\r\n\r\nsmuggled\r\n.\r\nthe end\r\n"...)
	rc = toBob(t, rr.smtpAddr, "attacker.test")
	half := len(chunked) / 2
	fmt.Fprintf(rc.c, "BDAT %d\r\n%s", half, chunked[:half])
	expectCode(t, rc.reply(), "250")
	fmt.Fprintf(rc.c, "BDAT %d LAST\r\n%s", len(chunked)-half, chunked[half:])
	expectCode(t, rc.reply(), "250")
	expectCode(t, rc.cmd("QUIT"), "221")

	// From alice (authenticated, implicit TLS) to the outside: queued,
	// then handed to the old server's SMTP.
	sub := smuggledBody("smuggle-out")
	tc, err := tls.Dial("tcp", rr.subTLSAddr, tlsClient(pool))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	sc := &rawConn{t: t, c: tc, br: bufio.NewReader(tc)}
	expectCode(t, sc.reply(), "220")
	expectCode(t, sc.cmd("EHLO client.test"), "250")
	expectCode(t, sc.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+alice+"\x00"+fe.old.Users[alice]))), "235")
	expectCode(t, sc.cmd("MAIL FROM:<"+alice+">"), "250")
	expectCode(t, sc.cmd("RCPT TO:<friend@outside.test>"), "250")
	expectCode(t, sc.cmd("DATA"), "354")
	expectCode(t, rawData(t, sc.c, sc.br, sub), "250")
	expectCode(t, sc.cmd("QUIT"), "221")

	fe.old.WaitMessages(t, "bob", "INBOX", 2, 30*time.Second)
	fe.old.WaitMessages(t, "catchall", "INBOX", 1, 30*time.Second)
	// A smuggled message would have been queued by Postfix with the one
	// it was split from; give it time to arrive all the same.
	time.Sleep(3 * time.Second)
	check := func(user string, want map[string]int) {
		got := fe.old.Messages(t, user, "INBOX")
		if len(got) != len(want) {
			for _, m := range got {
				t.Logf("%s has:\n%q", user, m.Raw)
			}
			t.Fatalf("%s has %d messages, want %d (a message split off by smuggling?)", user, len(got), len(want))
		}
		for _, g := range got {
			m := g.Raw
			tag := ""
			for tg := range want {
				if bytes.Contains(m, []byte("Subject: "+tg+"\r\n")) {
					tag = tg
				}
			}
			if tag == "" || !bytes.Contains(m, []byte("the end\r\n")) {
				t.Fatalf("%s has a message that is not one of ours, whole:\n%q", user, m)
			}
			if n := bytes.Count(m, []byte("Subject: smuggled-"+tag)); n != want[tag] {
				t.Errorf("%s's message holds %d of the %d smuggled transactions as text:\n%q", user, n, want[tag], m)
			}
			if hasStray(m) {
				t.Errorf("the old server got a stray CR or LF from us in %s:\n%q", tag, m)
			}
		}
	}
	check("bob", map[string]int{"smuggle-in": 6, "smuggle-bdat": 7})
	check("catchall", map[string]int{"smuggle-out": 6})
}

// TestOldServerSplitsOnBareLF is the control for TestSmugglingToOldServer:
// the fixture's Postfix, sent <LF>.<CR><LF> from Mailferry's address as it
// is, does split a second message off (it trusts 127.0.0.0/8 and exempts
// it from smtpd_forbid_bare_newline), so the test above would see a split.
func TestOldServerSplitsOnBareLF(t *testing.T) {
	srv := oldtest.Start(t, &oldtest.Options{WithSMTP: true})
	c := toBob(t, srv.SMTPAddr, "mx.mailferry.test")
	expectCode(t, c.cmd("DATA"), "354")
	body := "Subject: first\r\n\r\nline\n.\r\n"
	if _, err := fmt.Fprint(c.c, body); err != nil {
		t.Fatal(err)
	}
	expectCode(t, c.reply(), "250")
	expectCode(t, c.cmd("MAIL FROM:<ceo@example.test>"), "250")
	expectCode(t, c.cmd("RCPT TO:<victim@outside.test>"), "250")
	expectCode(t, c.cmd("DATA"), "354")
	expectCode(t, c.cmd("Subject: smuggled\r\n\r\nsmuggled\r\n."), "250")
	c.cmd("QUIT")
	srv.WaitMessages(t, "catchall", "INBOX", 1, 30*time.Second)
	if got := srv.Messages(t, "catchall", "INBOX"); !bytes.Contains(got[0].Raw, []byte("Subject: smuggled\r\n")) {
		t.Fatalf("not the smuggled message:\n%q", got[0].Raw)
	}
}

// TestBDATSplitCRLF forwards, from outside to bob (not moved), messages
// sent in BDAT chunks that split a <CR><LF> between two chunks, and one
// that ends in a bare <CR>: the wire form is taken over the whole message,
// so a line end split between chunks reaches the old server as the
// <CR><LF> it is (a stray <CR> made a space there would alter the mail),
// and the final bare <CR> goes as a space, ending in <CR><LF>.
func TestBDATSplitCRLF(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{})
	send := func(chunks ...string) {
		t.Helper()
		c := toBob(t, rr.smtpAddr, "sender.test")
		for i, ch := range chunks {
			last := ""
			if i == len(chunks)-1 {
				last = " LAST"
			}
			fmt.Fprintf(c.c, "BDAT %d%s\r\n%s", len(ch), last, ch)
			expectCode(t, c.reply(), "250")
		}
		expectCode(t, c.cmd("QUIT"), "221")
	}
	split := []string{"From: a@elsewhere.test\r", "\nSubject: split\r", "\n\r", "\nline one\r", "\n.\r", "\n"}
	send(split...)
	send("From: a@elsewhere.test\r\nSubject: bare cr\r\n\r\nends in\r")
	got := old.messages()
	if len(got) != 2 {
		t.Fatalf("the old server got %d messages, want 2", len(got))
	}
	// After our Received field, the bytes as sent.
	if want := strings.Join(split, ""); !strings.HasSuffix(string(got[0].Data), "\r\n"+want) {
		t.Errorf("CRLF split between chunks: the old server got %q, want it to end in %q", got[0].Data, want)
	}
	if want := "\r\nFrom: a@elsewhere.test\r\nSubject: bare cr\r\n\r\nends in \r\n"; !strings.HasSuffix(string(got[1].Data), want) || hasStray(got[1].Data) {
		t.Errorf("ending in a bare CR: the old server got %q, want it to end in %q", got[1].Data, want)
	}
}
