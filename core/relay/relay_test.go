package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mailferry/core/relay"
	"mailferry/core/store"
)

func TestInboundLocalDelivery(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{})
	w := e.st.Watch(e.alice.ID)
	defer w.Close()

	raw := message("local1", "Hello Alice.\r\n.leading dot\r\n\r\nbye")
	if err := send(rr.smtpAddr, "sender@elsewhere.test", []string{alice}, raw); err != nil {
		t.Fatal(err)
	}
	// Committed before the 250: visible at once, and watchers were told.
	select {
	case <-w.C:
	default:
		t.Fatal("no watcher signal after the 250")
	}
	msgs := e.messages(t, e.inbox)
	if len(msgs) != 1 {
		t.Fatalf("INBOX has %d messages, want 1", len(msgs))
	}
	splitReceived(t, msgs[0], raw)
	if !bytes.Contains(msgs[0], []byte("for <"+alice+">")) || !bytes.Contains(msgs[0], []byte("by mx.mailferry.test")) {
		t.Errorf("Received header lacks by/for: %q", msgs[0][:200])
	}
	if q, _ := e.st.Queue(context.Background()); len(q) != 0 {
		t.Errorf("local delivery queued %d items", len(q))
	}
	if s := rr.r.Stats(); s.Accepted != 1 || s.Delivered != 1 || s.Queued != 0 {
		t.Errorf("stats %+v", s)
	}
	if len(old.messages()) != 0 {
		t.Error("local mail went to the old server")
	}
}

// From a trusted network, one transaction may mix local and relayed
// recipients: the relayed copy goes through the queue.
func TestInboundRelayToOldServer(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{TrustedNetworks: trustLoopback})

	raw := message("relay1", "For Bob, still on the old server.")
	// One transaction to a migrated and a not-yet-migrated user.
	if err := send(rr.smtpAddr, "sender@elsewhere.test", []string{alice, bob}, raw); err != nil {
		t.Fatal(err)
	}
	msgs := e.messages(t, e.inbox)
	if len(msgs) != 1 {
		t.Fatalf("alice's INBOX has %d messages", len(msgs))
	}
	splitReceived(t, msgs[0], raw)
	waitFor(t, "relay to old server", 5*time.Second, func() bool { return len(old.messages()) == 1 })
	got := old.messages()[0]
	if got.From != "sender@elsewhere.test" || len(got.To) != 1 || got.To[0] != bob {
		t.Fatalf("old server got envelope %q -> %q", got.From, got.To)
	}
	// The very same bytes as the local copy: one Received header added, once.
	if !bytes.Equal(got.Data, msgs[0]) {
		t.Fatalf("relayed bytes differ from local copy:\n%q\n%q", got.Data, msgs[0])
	}
	waitFor(t, "empty queue", 5*time.Second, func() bool {
		q, _ := e.st.Queue(context.Background())
		return len(q) == 0
	})
	if s := rr.r.Stats(); s.Relayed != 1 || s.Queued != 1 || s.Delivered != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestSubmissionToOutside(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	cfg, pool := testTLS(t)
	rr := startRelay(t, e.st, relay.Options{TLSConfig: cfg})
	events, cancel := rr.r.Subscribe(64)
	defer cancel()

	raw := []byte("From: Alice <alice@example.test>\r\nTo: someone@elsewhere.test\r\nSubject: out\r\n\r\nHi from Mailferry.\r\n")
	if err := submit(rr.subAddr, pool, alice, alicePW, alice, []string{outsider, alice}, raw); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "handed to old SMTP", 5*time.Second, func() bool { return len(old.messages()) == 1 })
	got := old.messages()[0]
	if got.From != alice || len(got.To) != 1 || got.To[0] != outsider {
		t.Fatalf("old server got envelope %q -> %q", got.From, got.To)
	}
	splitReceived(t, got.Data, raw)
	if !bytes.Contains(got.Data, []byte("with ESMTPSA")) {
		t.Errorf("Received header does not say ESMTPSA: %q", got.Data[:150])
	}
	// The local recipient got it locally (a copy to self).
	if msgs := e.messages(t, e.inbox); len(msgs) != 1 || !bytes.Equal(msgs[0], got.Data) {
		t.Fatalf("local copy: %d messages", len(msgs))
	}
	kinds := map[relay.EventKind]bool{}
	waitFor(t, "relayed event", 2*time.Second, func() bool {
		for {
			select {
			case ev := <-events:
				kinds[ev.Kind] = true
			default:
				return kinds[relay.EventAccepted] && kinds[relay.EventRelayed]
			}
		}
	})

	// Implicit TLS submission (465) works the same.
	c, err := smtp.DialTLS(rr.subTLSAddr, tlsClient(pool))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(plain(alice, alicePW)); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail(alice, []string{outsider}, bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "second message", 5*time.Second, func() bool { return len(old.messages()) == 2 })
}

// TestNoOpenRelay: mail from the outside to a foreign domain is refused
// whatever the sender claims; AUTH needs TLS; submission needs AUTH.
func TestNoOpenRelay(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	ctx := context.Background()
	if _, err := e.st.CreateDomain(ctx, "local.test"); err != nil { // local, not migrating
		t.Fatal(err)
	}
	if _, err := e.st.CreateDomain(ctx, "half.test"); err != nil { // migrating, old server not set
		t.Fatal(err)
	}
	if err := e.st.SetDomainMigration(ctx, "half.test", true, ""); err != nil {
		t.Fatal(err)
	}
	// 127.0.0.1 is not trusted: it is "the outside" here.
	rr := startRelay(t, e.st, relay.Options{TrustedNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})

	tests := []struct {
		name, addr string
		lines      []string
		want       string // code of the reply to the last line
	}{
		{"foreign rcpt from outside", rr.smtpAddr, []string{"EHLO x.test", "MAIL FROM:<a@elsewhere.test>", "RCPT TO:<victim@other.test>"}, "550 5.7.1"},
		{"foreign rcpt, local sender forged", rr.smtpAddr, []string{"EHLO x.test", "MAIL FROM:<alice@example.test>", "RCPT TO:<victim@other.test>"}, "550 5.7.1"},
		{"foreign rcpt, null sender", rr.smtpAddr, []string{"EHLO x.test", "MAIL FROM:<>", "RCPT TO:<victim@other.test>"}, "550 5.7.1"},
		{"percent hack", rr.smtpAddr, []string{"EHLO x.test", "MAIL FROM:<a@elsewhere.test>", "RCPT TO:<victim%other.test@example.test>"}, "501 5.1.3"},
		{"unknown user, local domain not migrating", rr.smtpAddr, []string{"EHLO x.test", "MAIL FROM:<a@elsewhere.test>", "RCPT TO:<nobody@local.test>"}, "550 5.1.1"},
		{"migrating domain without old server", rr.smtpAddr, []string{"EHLO x.test", "MAIL FROM:<a@elsewhere.test>", "RCPT TO:<someone@half.test>"}, "451 4.4.0"},
		{"AUTH without TLS on 25", rr.smtpAddr, []string{"EHLO x.test", "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABBbGljZS1TZWNyZXQtMQ=="}, "538 5.7.11"},
		{"AUTH LOGIN without TLS on 587", rr.subAddr, []string{"EHLO x.test", "AUTH LOGIN"}, "538 5.7.11"},
		{"MAIL without AUTH on 587", rr.subAddr, []string{"EHLO x.test", "MAIL FROM:<alice@example.test>"}, "530 5.7.0"},
		{"bad rcpt syntax", rr.smtpAddr, []string{"EHLO x.test", "MAIL FROM:<a@elsewhere.test>", "RCPT TO:<no-domain>"}, "501"},
		{"non-ASCII without SMTPUTF8", rr.smtpAddr, []string{"EHLO x.test", "MAIL FROM:<jörg@elsewhere.test>"}, "553 5.6.7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, tc.addr)
			expectCode(t, c.reply(), "220")
			var got string
			for _, l := range tc.lines {
				got = c.cmd(l)
			}
			expectCode(t, got, tc.want)
			if strings.HasPrefix(tc.lines[0], "EHLO") && tc.addr == rr.smtpAddr {
				// No AUTH advertised without TLS.
				if ehlo := c.cmd("EHLO x.test"); strings.Contains(ehlo, "AUTH") {
					t.Errorf("AUTH advertised without TLS: %q", ehlo)
				}
			}
		})
	}
	if q, _ := e.st.Queue(ctx); len(q) != 0 {
		t.Errorf("refused transactions left %d queue items", len(q))
	}
	if s := rr.r.Stats(); s.Accepted != 0 || s.Rejected == 0 {
		t.Errorf("stats %+v", s)
	}

	// A trusted network may relay (through the sender domain's old server).
	rr2 := startRelay(t, e.st, relay.Options{TrustedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err := send(rr2.smtpAddr, alice, []string{"victim@other.test"}, message("trusted", "ok")); err != nil {
		t.Fatalf("trusted network refused: %v", err)
	}
	waitFor(t, "trusted relay", 5*time.Second, func() bool { return len(old.messages()) == 1 })
	// ... but not for a sender domain without an old server.
	err := send(rr2.smtpAddr, "x@nowhere.test", []string{"victim@other.test"}, message("trusted2", "no"))
	if smtpCode(err) != 550 {
		t.Fatalf("trusted relay without a route: %v", err)
	}
}

func TestSubmissionAuthRules(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	cfg, pool := testTLS(t)
	rr := startRelay(t, e.st, relay.Options{TLSConfig: cfg, MaxAuthFailures: 3})

	// Wrong password: 535; sender not owned: 553; after 3 failures: 454.
	if err := submit(rr.subAddr, pool, alice, "wrong", alice, []string{outsider}, message("x", "x")); smtpCode(err) != 535 {
		t.Fatalf("wrong password: %v", err)
	}
	err := submit(rr.subAddr, pool, alice, alicePW, "bob@example.test", []string{outsider}, message("x", "x"))
	if smtpCode(err) != 553 {
		t.Fatalf("forged sender after AUTH: %v", err)
	}
	// LOGIN works under TLS.
	c, err := smtp.DialStartTLS(rr.subAddr, tlsClient(pool))
	if err != nil {
		t.Fatal(err)
	}
	if ok, mechs := c.Extension("AUTH"); !ok || !strings.Contains(mechs, "LOGIN") || !strings.Contains(mechs, "PLAIN") {
		t.Fatalf("AUTH under TLS = %v %q", ok, mechs)
	}
	if err := c.Auth(loginClient(alice, alicePW)); err != nil {
		t.Fatalf("AUTH LOGIN: %v", err)
	}
	c.Close()
	for i := 0; i < 2; i++ {
		if err := submit(rr.subAddr, pool, alice, "wrong", alice, []string{outsider}, message("x", "x")); smtpCode(err) != 535 {
			t.Fatalf("wrong password %d: %v", i, err)
		}
	}
	if err := submit(rr.subAddr, pool, alice, alicePW, alice, []string{outsider}, message("x", "x")); smtpCode(err) != 454 {
		t.Fatalf("after too many failures, even the right password: %v", err)
	}
	if len(old.messages()) != 0 {
		t.Fatal("something was relayed")
	}
}

func TestLimits(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{MaxMessageBytes: 1000, MaxRecipients: 2, MaxConnsPerIP: 3})

	t.Run("SIZE parameter", func(t *testing.T) {
		c := dialRaw(t, rr.smtpAddr)
		c.reply()
		if ehlo := c.cmd("EHLO x.test"); !strings.Contains(ehlo, "SIZE 1000") || !strings.Contains(ehlo, "8BITMIME") || !strings.Contains(ehlo, "SMTPUTF8") {
			t.Fatalf("EHLO %q", ehlo)
		}
		expectCode(t, c.cmd("MAIL FROM:<a@elsewhere.test> SIZE=5000"), "552")
	})
	t.Run("too big data", func(t *testing.T) {
		big := message("big", strings.Repeat(strings.Repeat("x", 70)+"\r\n", 30))
		if err := send(rr.smtpAddr, "a@elsewhere.test", []string{alice}, big); smtpCode(err) != 552 {
			t.Fatalf("oversized: %v", err)
		}
		if n := len(e.messages(t, e.inbox)); n != 0 {
			t.Fatalf("oversized message stored (%d)", n)
		}
	})
	t.Run("recipients", func(t *testing.T) {
		c := dialRaw(t, rr.smtpAddr)
		c.reply()
		c.cmd("EHLO x.test")
		expectCode(t, c.cmd("MAIL FROM:<a@elsewhere.test>"), "250")
		expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "250")
		expectCode(t, c.cmd("RCPT TO:<carol@example.test>"), "250")
		expectCode(t, c.cmd("RCPT TO:<dave@example.test>"), "452")
	})
	t.Run("connections per IP", func(t *testing.T) {
		rr := startRelay(t, e.st, relay.Options{MaxConnsPerIP: 3})
		var conns []*rawConn
		for i := 0; i < 3; i++ {
			c := dialRaw(t, rr.smtpAddr)
			expectCode(t, c.reply(), "220")
			conns = append(conns, c)
		}
		extra := dialRaw(t, rr.smtpAddr)
		expectCode(t, extra.reply(), "421")
		conns[0].cmd("QUIT")
		conns[0].c.Close()
		waitFor(t, "slot freed", 2*time.Second, func() bool {
			c := dialRaw(t, rr.smtpAddr)
			defer c.c.Close()
			return strings.HasPrefix(c.reply(), "220")
		})
	})
	t.Run("mail loop", func(t *testing.T) {
		raw := []byte(strings.Repeat("Received: from x by y; Mon, 02 Jan 2006 15:04:05 -0700\r\n", 60) + "Subject: loop\r\n\r\nx\r\n")
		rr2 := startRelay(t, e.st, relay.Options{})
		if err := send(rr2.smtpAddr, "a@elsewhere.test", []string{alice}, raw); smtpCode(err) != 554 {
			t.Fatalf("looping message: %v", err)
		}
	})
}

func TestSMTPUTF8(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{TrustedNetworks: trustLoopback})
	raw := []byte("From: Jörg <jörg@elsewhere.test>\r\nSubject: Grüße\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSchöne Grüße, 8 bit.\r\n")
	c := dialRaw(t, rr.smtpAddr)
	c.reply()
	c.cmd("EHLO x.test")
	expectCode(t, c.cmd("MAIL FROM:<jörg@elsewhere.test> SMTPUTF8 BODY=8BITMIME"), "250")
	expectCode(t, c.cmd("RCPT TO:<alice@example.test>"), "250")
	expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "250")
	expectCode(t, c.cmd("DATA"), "354")
	if _, err := c.c.Write(append(raw, ".\r\n"...)); err != nil {
		t.Fatal(err)
	}
	expectCode(t, c.reply(), "250")
	msgs := e.messages(t, e.inbox)
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	splitReceived(t, msgs[0], raw)
	if !bytes.Contains(msgs[0], []byte("with UTF8SMTP")) {
		t.Errorf("Received header: %q", msgs[0][:120])
	}
	waitFor(t, "relayed with SMTPUTF8", 5*time.Second, func() bool { return len(old.messages()) == 1 })
	if got := old.messages()[0]; got.From != "jörg@elsewhere.test" || !bytes.Equal(got.Data, msgs[0]) {
		t.Fatalf("relayed %q %q", got.From, got.Data)
	}
}

// TestQueueSurvivesRestart: the old SMTP is down, messages wait; Mailferry
// restarts; the old SMTP comes back; every message arrives exactly once.
func TestQueueSurvivesRestart(t *testing.T) {
	old := startOldSMTP(t, "")
	addr := old.addr
	old.stop() // down
	e := newEnv(t, addr)
	rr := startRelay(t, e.st, relay.Options{TrustedNetworks: trustLoopback})

	const n = 20
	want := map[string]bool{}
	for i := 0; i < n; i++ {
		subj := fmt.Sprintf("queued-%02d", i)
		want[subj] = true
		if err := send(rr.smtpAddr, "sender@elsewhere.test", []string{bob}, message(subj, "wait for me")); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	waitFor(t, "attempts made", 5*time.Second, func() bool {
		q, _ := e.st.Queue(ctx)
		if len(q) != n {
			t.Fatalf("queue has %d items, want %d", len(q), n)
		}
		for _, it := range q {
			if it.Attempts < 2 || it.LastError == "" {
				return false
			}
		}
		return true
	})
	if s := rr.r.Stats(); s.Deferred < 2*n || s.Relayed != 0 || s.Bounced != 0 {
		t.Fatalf("stats while down: %+v", s)
	}

	// Restart Mailferry: close the relay and the store, open both again.
	rr.close()
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	e.st = openStore(t, e.path)
	if q, _ := e.st.Queue(ctx); len(q) != n {
		t.Fatalf("after restart the queue has %d items", len(q))
	}
	startRelay(t, e.st, relay.Options{TrustedNetworks: trustLoopback}) // stopped by the test's cleanup

	// The old SMTP comes back on the same port.
	old.start(t, addr)
	waitFor(t, "all delivered", 10*time.Second, func() bool {
		q, _ := e.st.Queue(ctx)
		return len(q) == 0
	})
	time.Sleep(200 * time.Millisecond) // a duplicate would show up now
	got := old.messages()
	seen := map[string]int{}
	for _, m := range got {
		for s := range want {
			if bytes.Contains(m.Data, []byte("Subject: "+s+"\r\n")) {
				seen[s]++
			}
		}
	}
	if len(got) != n || len(seen) != n {
		t.Fatalf("old server got %d messages (%d distinct), want %d", len(got), len(seen), n)
	}
	for s, c := range seen {
		if c != 1 {
			t.Errorf("%s delivered %d times", s, c)
		}
	}
}

// TestRestartMidDelivery: Close while deliveries are in progress never
// sends a message twice: each is either recorded as delivered or retried.
func TestRestartMidDelivery(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{Workers: 8, TrustedNetworks: trustLoopback})
	const n = 60
	for i := 0; i < n; i++ {
		if err := send(rr.smtpAddr, "sender@elsewhere.test", []string{bob}, message(fmt.Sprintf("mid-%02d", i), "x")); err != nil {
			t.Fatal(err)
		}
		if i == n/2 {
			rr.close() // in the middle of the worker's deliveries
			rr = startRelay(t, e.st, relay.Options{Workers: 8, TrustedNetworks: trustLoopback})
		}
	}
	ctx := context.Background()
	waitFor(t, "all delivered", 10*time.Second, func() bool {
		q, _ := e.st.Queue(ctx)
		return len(q) == 0
	})
	time.Sleep(100 * time.Millisecond)
	got := old.messages()
	seen := map[string]int{}
	for _, m := range got {
		i := bytes.Index(m.Data, []byte("Subject: "))
		seen[string(m.Data[i:i+15])]++
	}
	if len(got) != n || len(seen) != n {
		t.Fatalf("old server got %d messages (%d distinct), want %d", len(got), len(seen), n)
	}
}

func TestPermanentFailureBounce(t *testing.T) {
	old := startOldSMTP(t, "")
	old.reject["nobody@example.test"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	old.reject["full@example.test"] = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
	e := newEnv(t, old.addr)
	cfg, pool := testTLS(t)
	rr := startRelay(t, e.st, relay.Options{TLSConfig: cfg, MaxAttempts: 3})

	raw := []byte("From: alice@example.test\r\nSubject: to three\r\nMessage-ID: <three@example.test>\r\n\r\nbody\r\n")
	if err := submit(rr.subAddr, pool, alice, alicePW, alice, []string{bob, "nobody@example.test", "full@example.test"}, raw); err != nil {
		t.Fatal(err)
	}
	// bob is delivered, nobody bounces at once, full is retried, then bounces.
	waitFor(t, "two DSNs in alice's INBOX", 10*time.Second, func() bool { return len(e.messages(t, e.inbox)) == 2 })
	waitFor(t, "empty queue", 5*time.Second, func() bool {
		q, _ := e.st.Queue(context.Background())
		return len(q) == 0
	})
	got := old.messages()
	if len(got) != 1 || len(got[0].To) != 1 || got[0].To[0] != bob {
		t.Fatalf("old server got %+v", got)
	}
	dsns := e.messages(t, e.inbox)
	var perm, expired []byte
	for _, d := range dsns {
		if bytes.Contains(d, []byte("Final-Recipient: rfc822; nobody@example.test")) {
			perm = d
		}
		if bytes.Contains(d, []byte("Final-Recipient: rfc822; full@example.test")) {
			expired = d
		}
	}
	if perm == nil || expired == nil {
		t.Fatalf("DSNs:\n%s\n----\n%s", dsns[0], dsns[1])
	}
	for _, want := range []string{
		"Content-Type: multipart/report; report-type=delivery-status;",
		"Content-Type: message/delivery-status",
		"Reporting-MTA: dns; mx.mailferry.test",
		"Action: failed",
		"Status: 5.1.1",
		"Diagnostic-Code: smtp; 550 5.1.1 no such user",
		"Content-Type: text/rfc822-headers",
		"Message-ID: <three@example.test>",
		"To: <alice@example.test>",
		"Auto-Submitted: auto-replied",
	} {
		if !bytes.Contains(perm, []byte(want)) {
			t.Errorf("DSN lacks %q:\n%s", want, perm)
		}
	}
	if bytes.Contains(perm, []byte("bob@example.test")) {
		t.Error("DSN names the delivered recipient")
	}
	if !bytes.Contains(expired, []byte("Status: 4.4.7")) || !bytes.Contains(expired, []byte("452 4.2.2 mailbox full")) {
		t.Errorf("expiry DSN:\n%s", expired)
	}
	if s := rr.r.Stats(); s.Relayed != 1 || s.Bounced != 2 || s.Deferred < 2 {
		t.Errorf("stats %+v", s)
	}
}

// A message from the null sender that fails is dropped, never bounced.
func TestNoBounceForNullSender(t *testing.T) {
	old := startOldSMTP(t, "")
	old.dataErr = func(string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "content rejected"}
	}
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{TrustedNetworks: trustLoopback})
	if err := send(rr.smtpAddr, "", []string{bob}, message("dsn", "a bounce from elsewhere")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dropped", 5*time.Second, func() bool { return rr.r.Stats().Dropped == 1 })
	q, _ := e.st.Queue(context.Background())
	if len(q) != 0 || rr.r.Stats().Bounced != 0 || len(e.messages(t, e.inbox)) != 0 {
		t.Fatalf("queue %d, stats %+v", len(q), rr.r.Stats())
	}
}

// A bounce to an outside sender goes through the old server.
func TestBounceToOutsideSender(t *testing.T) {
	old := startOldSMTP(t, "")
	old.dataErr = func(from string) *smtp.SMTPError {
		if from == "" {
			return nil // DSNs are welcome
		}
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "gone"}
	}
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{TrustedNetworks: trustLoopback})
	if err := send(rr.smtpAddr, "sender@elsewhere.test", []string{bob}, message("b", "x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "DSN relayed", 5*time.Second, func() bool { return len(old.messages()) == 1 })
	got := old.messages()[0]
	if got.From != "" || len(got.To) != 1 || got.To[0] != "sender@elsewhere.test" || !bytes.Contains(got.Data, []byte("Status: 5.1.1")) {
		t.Fatalf("DSN envelope %q -> %q:\n%s", got.From, got.To, got.Data)
	}
}

func TestQueueOperations(t *testing.T) {
	old := startOldSMTP(t, "")
	addr := old.addr
	old.stop()
	e := newEnv(t, addr)
	rr := startRelay(t, e.st, relay.Options{RetryBase: time.Hour, RetryMax: time.Hour, TrustedNetworks: trustLoopback})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := send(rr.smtpAddr, "sender@elsewhere.test", []string{bob}, message(fmt.Sprintf("op%d", i), "x")); err != nil {
			t.Fatal(err)
		}
	}
	var items []*store.QueueItem
	waitFor(t, "first attempts", 5*time.Second, func() bool {
		items, _ = rr.r.List(ctx)
		for _, it := range items {
			if it.Attempts == 0 {
				return false
			}
		}
		return len(items) == 3
	})
	if err := rr.r.Hold(ctx, items[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := rr.r.Delete(ctx, items[1].ID); err != nil {
		t.Fatal(err)
	}
	if err := rr.r.Delete(ctx, items[1].ID); err == nil {
		t.Fatal("second Delete succeeded")
	}
	old.start(t, addr)
	// Retrying now (not in an hour) delivers item 2; the held one stays.
	if err := rr.r.Retry(ctx, items[2].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "retried item delivered", 5*time.Second, func() bool {
		l, _ := rr.r.List(ctx)
		return len(old.messages()) == 1 && len(l) == 1
	})
	l, _ := rr.r.List(ctx)
	if len(l) != 1 || l[0].ID != items[0].ID || l[0].State != store.QueueHeld {
		t.Fatalf("queue after ops: %+v", l)
	}
	time.Sleep(150 * time.Millisecond)
	if len(old.messages()) != 1 {
		t.Fatal("a held item was delivered")
	}
	if err := rr.r.Retry(ctx, items[0].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "released item delivered", 5*time.Second, func() bool { return len(old.messages()) == 2 })
}

func TestNewValidates(t *testing.T) {
	if _, err := relay.New(relay.Options{}); err == nil {
		t.Fatal("New without a store succeeded")
	}
	e := newEnv(t, "127.0.0.1:1")
	if _, err := relay.New(relay.Options{Store: e.st, TrustedNetworks: []netip.Prefix{{}}}); err == nil {
		t.Fatal("New with an invalid trusted network succeeded")
	}
	r, err := relay.New(relay.Options{Store: e.st})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ServeSubmission(listen(t)); err == nil {
		t.Fatal("submission without TLS config started")
	}
	r.Close()
	if err := r.ServeSMTP(listen(t)); err != relay.ErrClosed {
		t.Fatalf("ServeSMTP after Close = %v", err)
	}
	if err := r.Run(context.Background()); err != relay.ErrClosed {
		t.Fatalf("Run after Close = %v", err)
	}
}

// Outbound sessions are reused; one the old server closed meanwhile (idle
// timeout) is replaced without a failed attempt.
func TestPooledSessions(t *testing.T) {
	old := startOldSMTPTuned(t, "", func(s *smtp.Server) { s.ReadTimeout = time.Second })
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{Workers: 1})
	for i := 0; i < 3; i++ {
		if err := send(rr.smtpAddr, "sender@elsewhere.test", []string{bob}, message(fmt.Sprintf("pool-%d", i), "x")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "delivery", 5*time.Second, func() bool { return len(old.messages()) == i+1 })
	}
	old.mu.Lock()
	sessions := old.sessions
	old.mu.Unlock()
	if sessions != 1 {
		t.Errorf("3 quick messages used %d sessions, want 1", sessions)
	}
	time.Sleep(1300 * time.Millisecond) // the old server drops the idle session
	if err := send(rr.smtpAddr, "sender@elsewhere.test", []string{bob}, message("pool-late", "x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery after idle timeout", 5*time.Second, func() bool { return len(old.messages()) == 4 })
	// The relay counts a delivery once its outcome is committed, just after
	// the old server has the message.
	waitFor(t, "delivery recorded", 5*time.Second, func() bool { return rr.r.Stats().Relayed == 4 })
	if s := rr.r.Stats(); s.Deferred != 0 || s.Relayed != 4 {
		t.Errorf("stats %+v", s)
	}
}

// A message queued for the old server while the domain migrated is
// delivered locally once the domain stopped migrating and the user exists.
func TestQueuedThenDomainFinished(t *testing.T) {
	old := startOldSMTP(t, "")
	addr := old.addr
	old.stop()
	e := newEnv(t, addr)
	rr := startRelay(t, e.st, relay.Options{RetryBase: time.Hour, RetryMax: time.Hour, TrustedNetworks: trustLoopback})
	ctx := context.Background()
	raw := message("late", "for bob")
	if err := send(rr.smtpAddr, "sender@elsewhere.test", []string{bob}, raw); err != nil {
		t.Fatal(err)
	}
	var items []*store.QueueItem
	waitFor(t, "a failed attempt", 5*time.Second, func() bool {
		items, _ = rr.r.List(ctx)
		return len(items) == 1 && items[0].Attempts == 1
	})
	b, err := e.st.CreateAccount(ctx, bob, "Bob-Secret-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := e.st.Domain(ctx, domain)
	if err := e.st.SetDomainMigration(ctx, domain, false, d.OldServer); err != nil {
		t.Fatal(err)
	}
	if err := rr.r.Retry(ctx, items[0].ID); err != nil {
		t.Fatal(err)
	}
	inbox, _ := e.st.Mailbox(ctx, b.ID, "INBOX")
	waitFor(t, "local delivery", 5*time.Second, func() bool { return len(e.messages(t, inbox.ID)) == 1 })
	splitReceived(t, e.messages(t, inbox.ID)[0], raw)
	waitFor(t, "empty queue", 5*time.Second, func() bool {
		l, _ := rr.r.List(ctx)
		return len(l) == 0
	})
}

// Close does not wait for a hung old server beyond ShutdownGrace, and the
// message stays queued.
func TestCloseCutsHungDelivery(t *testing.T) {
	hung := listen(t)
	accepted := make(chan struct{}, 1)
	go func() {
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	e := newEnv(t, hung.Addr().String())
	rr := startRelay(t, e.st, relay.Options{ShutdownGrace: 300 * time.Millisecond, ClientTimeout: time.Minute, TrustedNetworks: trustLoopback})
	if err := send(rr.smtpAddr, "sender@elsewhere.test", []string{bob}, message("hung", "x")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery attempt")
	}
	start := time.Now()
	rr.close()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close took %v", d)
	}
	q, err := e.st.Queue(context.Background())
	if err != nil || len(q) != 1 {
		t.Fatalf("queue after cut delivery: %d, %v", len(q), err)
	}
}

// CHUNKING (RFC 3030 BDAT) delivers the same bytes as DATA.
func TestBDAT(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{})
	raw := message("bdat", "chunked\r\n.no dot-stuffing in BDAT")
	c := dialRaw(t, rr.smtpAddr)
	c.reply()
	if ehlo := c.cmd("EHLO x.test"); !strings.Contains(ehlo, "CHUNKING") {
		t.Fatalf("EHLO %q", ehlo)
	}
	expectCode(t, c.cmd("MAIL FROM:<a@elsewhere.test>"), "250")
	expectCode(t, c.cmd("RCPT TO:<alice@example.test>"), "250")
	half := len(raw) / 2
	fmt.Fprintf(c.c, "BDAT %d\r\n%s", half, raw[:half])
	expectCode(t, c.reply(), "250")
	fmt.Fprintf(c.c, "BDAT %d LAST\r\n%s", len(raw)-half, raw[half:])
	expectCode(t, c.reply(), "250")
	msgs := e.messages(t, e.inbox)
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	splitReceived(t, msgs[0], raw)
}

// Recipients of a migrating domain without an account are checked at the
// old server at RCPT time (for senders from outside); a permanent "no" is
// passed on at once, anything unclear is deferred (451).
func TestRecipientCallout(t *testing.T) {
	old := startOldSMTP(t, "")
	old.reject["nobody@example.test"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "User unknown"}
	old.reject["busy@example.test"] = &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "try later"}
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{})

	c := dialRaw(t, rr.smtpAddr)
	c.reply()
	c.cmd("EHLO x.test")
	expectCode(t, c.cmd("MAIL FROM:<a@elsewhere.test>"), "250")
	expectCode(t, c.cmd("RCPT TO:<nobody@example.test>"), "550 5.1.1")
	expectCode(t, c.cmd("RCPT TO:<NoBody@example.test>"), "550 5.1.1") // cached
	expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "250")
	expectCode(t, c.cmd("RCPT TO:<busy@example.test>"), "451 4.4.0")
	c.cmd("QUIT")
	if len(old.messages()) != 0 {
		t.Fatal("a callout delivered something")
	}

	// With the check off, the refusal comes at DATA, when the message is
	// forwarded: never as a DSN to a sender outside.
	rr2 := startRelay(t, e.st, relay.Options{NoRecipientCallout: true})
	if err := send(rr2.smtpAddr, "a@elsewhere.test", []string{"nobody@example.test"}, message("nocallout", "x")); smtpCode(err) != 550 {
		t.Fatalf("without callout: %v", err)
	}

	// An old server that is down: try again later.
	old.stop()
	if err := send(rr.smtpAddr, "a@elsewhere.test", []string{"carol@example.test"}, message("down", "x")); smtpCode(err) != 451 {
		t.Fatalf("old server down: %v", err)
	}
	if q, _ := e.st.Queue(context.Background()); len(q) != 0 || rr.r.Stats().Bounced+rr2.r.Stats().Bounced != 0 {
		t.Fatalf("queue %d, stats %+v %+v", len(q), rr.r.Stats(), rr2.r.Stats())
	}
}

// Two relays (say, the server and a CLI flushing the queue) on one store
// never deliver an item twice: a worker claims an item before it tries it.
func TestTwoRelaysOneStore(t *testing.T) {
	old := startOldSMTP(t, "")
	addr := old.addr
	old.stop()
	e := newEnv(t, addr)
	rr1 := startRelay(t, e.st, relay.Options{Workers: 4, TrustedNetworks: trustLoopback})
	const n = 40
	for i := 0; i < n; i++ {
		if err := send(rr1.smtpAddr, "sender@elsewhere.test", []string{bob}, message(fmt.Sprintf("two-%02d", i), "x")); err != nil {
			t.Fatal(err)
		}
	}
	startRelay(t, e.st, relay.Options{Workers: 4, TrustedNetworks: trustLoopback})
	old.start(t, addr)
	waitFor(t, "all delivered", 10*time.Second, func() bool { return len(mustList(t, rr1.r)) == 0 })
	time.Sleep(200 * time.Millisecond)
	if got := len(old.messages()); got != n {
		t.Fatalf("old server got %d messages, want %d", got, n)
	}
}

// trustLoopback makes the test clients a trusted network: their mail to
// the old server is queued (and bounced when refused), as it was before
// mail from outside was forwarded while it waits.
var trustLoopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

func mustList(t *testing.T, r *relay.Relay) []*store.QueueItem {
	t.Helper()
	l, err := r.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return l
}
