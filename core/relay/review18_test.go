package relay_test

// Session 18's attacker's review of the mail paths in and out: what a
// stranger on the internet, or a user of one domain, could make the relay
// do that it must not.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mailferry/core/relay"
	"mailferry/core/testkit"
)

// A recipient the old server refused while a stranger's message was
// forwarded is remembered for that sender's retry only. The refusal may be
// about the sender, not the recipient: Exim's default configuration
// verifies the sender at RCPT before it accepts its relay_from_hosts,
// Postfix applies smtpd_sender_restrictions at RCPT, and the callout (with
// the null sender) said yes. Remembered for every sender, it let a stranger
// sending once a minute from an address the old server refuses have
// everyone else's mail to that user refused for good (550 at RCPT: the
// senders' servers bounce it, nothing is retried).
func TestForwardRefusalNotSharedWithOtherSenders(t *testing.T) {
	for _, noCallout := range []bool{false, true} {
		t.Run(fmt.Sprintf("callout=%v", !noCallout), func(t *testing.T) {
			old := startOldSMTP(t, "")
			old.rcptErr = func(from, _ string) *smtp.SMTPError {
				if strings.HasSuffix(from, "@unverifiable.test") {
					return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Sender verify failed"}
				}
				return nil
			}
			e := newEnv(t, old.addr)
			rr := startRelay(t, e.st, relay.Options{NoRecipientCallout: noCallout})

			c, _ := open(t, rr.smtpAddr)
			expectCode(t, c.cmd("MAIL FROM:<x@unverifiable.test>"), "250")
			expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "250") // the callout's null sender is fine
			expectCode(t, c.data(message("poison", "x")), "550 5.1.7")
			// That sender's retry is refused at RCPT.
			expectCode(t, c.cmd("MAIL FROM:<x@unverifiable.test>"), "250")
			expectCode(t, c.cmd("RCPT TO:<Bob@example.test>"), "550 5.1.7")
			c.cmd("QUIT")

			// Anyone else's mail to bob is taken.
			c2, _ := open(t, rr.smtpAddr)
			expectCode(t, c2.cmd("MAIL FROM:<friend@elsewhere.test>"), "250")
			expectCode(t, c2.cmd("RCPT TO:<bob@example.test>"), "250")
			expectCode(t, c2.data(message("legit", "x")), "250")
			c2.cmd("QUIT")
			if got := old.messages(); len(got) != 1 || got[0].From != "friend@elsewhere.test" {
				t.Fatalf("the old server got %+v", got)
			}
		})
	}
}

// An authenticated user (of any domain this server serves) or a trusted
// network cannot pass off results as ours either: their mail gets no
// Authentication-Results of ours, so a field claiming our authserv-id in
// it is forged (or a stale copy in a message resent), and it is renamed as
// in mail from outside. Before, a user of one domain could send a user of
// another "Authentication-Results: <our name>; dmarc=pass
// header.from=bank.example" with From: bank.example, and the reader's
// client took it for our verdict.
func TestForgedAuthResultsRenamedFromUsers(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	ctx := t.Context()
	carol, err := e.st.CreateAccount(ctx, "carol@example.test", "Carol-Secret-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := e.st.Mailbox(ctx, carol.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	cfg, pool := testTLS(t)
	rr := startRelay(t, e.st, relay.Options{TLSConfig: cfg, TrustedNetworks: trustLoopback,
		AuthResults: func(context.Context, netip.Addr, string, string, []byte) string {
			return "Authentication-Results: mx.mailferry.test;\r\n\tspf=none\r\n"
		}})
	forged := "Authentication-Results: mx.mailferry.test; dmarc=pass header.from=bank.example\r\n"
	other := "Authentication-Results: mx.other.example; dkim=pass\r\n"
	raw := []byte("From: Bank <security@bank.example>\r\n" + forged + other + "Subject: verify your account\r\n\r\nbody\r\n")
	want := "From: Bank <security@bank.example>\r\nX-Untrusted-" + forged + other + "Subject: verify your account\r\n\r\nbody\r\n"

	if err := submit(rr.subAddr, pool, alice, alicePW, alice, []string{"carol@example.test"}, raw); err != nil {
		t.Fatal(err)
	}
	if err := send(rr.smtpAddr, "app@example.test", []string{"carol@example.test"}, raw); err != nil { // trusted
		t.Fatal(err)
	}
	waitFor(t, "two deliveries", 5*time.Second, func() bool { return len(e.messages(t, inbox.ID)) == 2 })
	for i, got := range e.messages(t, inbox.ID) {
		if bytes.Contains(got, []byte("\nAuthentication-Results: mx.mailferry.test")) || bytes.HasPrefix(got, []byte("Authentication-Results: mx.mailferry.test")) {
			t.Errorf("message %d holds a field claiming our authserv-id:\n%s", i, got)
		}
		splitReceived(t, got, []byte(want))
	}
}

// One delivery attempt by MX tries at most 5 addresses of exchangers
// (Postfix's smtp_mx_address_limit), whatever the recipient's domain
// publishes: each may take the client timeout (2 minutes by default) to
// fail without a word, and the queue has few workers (4) for every
// domain's mail. Before, a user could address a domain of 10 MX hosts of
// 4 addresses each, all silent, and hold a worker for 40 timeouts (80
// minutes) an attempt; four such messages held every worker.
func TestDirectAttemptTriesFiveAddresses(t *testing.T) {
	e := newFinishedEnv(t)
	d := testkit.StartZone(t)
	silent := listen(t)
	var mu sync.Mutex
	conns := 0
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns++
			mu.Unlock()
			go func() { io.Copy(io.Discard, c); c.Close() }() // never a greeting
		}
	}()
	t.Cleanup(func() { silent.Close() })
	var recs []string
	for i := 0; i < 10; i++ {
		recs = append(recs, fmt.Sprintf("slow.test. 60 IN MX %d mx%d.slow.test.", 10+i, i), fmt.Sprintf("mx%d.slow.test. 60 IN A 127.0.0.1", i))
	}
	d.Add(t, recs...)
	port := silent.Addr().(*net.TCPAddr).Port
	tlsCfg, pool := testTLS(t)
	rr := startRelay(t, e.st, relay.Options{TLSConfig: tlsCfg, Resolver: mustResolver(t, d.Addr),
		MXPort: func(string) int { return port }, ClientTimeout: 200 * time.Millisecond,
		RetryBase: time.Hour, RetryMax: time.Hour})
	if err := submit(rr.subAddr, pool, alice, alicePW, alice, []string{"x@slow.test"}, message("slow", "x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first attempt deferred", 20*time.Second, func() bool {
		items, _ := rr.r.List(context.Background())
		return len(items) == 1 && items[0].Attempts == 1
	})
	mu.Lock()
	defer mu.Unlock()
	if conns != 5 {
		t.Fatalf("one attempt connected to %d addresses, want 5", conns)
	}
}

// One sender's queued mail cannot take every queue worker: a relay has at
// most half its workers (at least one) delivering one sender's mail (the
// reverse-path as queued; an authenticated user's is their canonical
// address, however MAIL FROM spelt it). Before, a user sent a few messages
// to a domain whose mail exchanger takes connections and never answers,
// and every other user's mail, of every domain, waited behind them for as
// long as the client timeout let each attempt last (MX hosts, answering
// one command a minute, hold a session for hours).
func TestOneSenderCannotTakeEveryWorker(t *testing.T) {
	e := newFinishedEnv(t)
	ctx := t.Context()
	if _, err := e.st.CreateAccount(ctx, "carol@example.test", "Carol-Secret-1", nil); err != nil {
		t.Fatal(err)
	}
	d := testkit.StartZone(t)
	silent := listen(t)
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }() // never a greeting
		}
	}()
	t.Cleanup(func() { silent.Close() })
	good := startMXSink(t, nil, nil)
	d.Add(t, "tarpit.test. 60 IN MX 10 mx.tarpit.test.", "mx.tarpit.test. 60 IN A 127.0.0.1",
		"good.test. 60 IN MX 10 mx.good.test.", "mx.good.test. 60 IN A 127.0.0.1")
	ports := map[string]int{"mx.tarpit.test": silent.Addr().(*net.TCPAddr).Port, "mx.good.test": good.port}
	tlsCfg, pool := testTLS(t)
	rr := startRelay(t, e.st, relay.Options{TLSConfig: tlsCfg, Resolver: mustResolver(t, d.Addr),
		MXPort: func(h string) int { return ports[h] }, Workers: 2, ClientTimeout: time.Minute,
		ShutdownGrace: 200 * time.Millisecond})
	// alice's mail to the tarpit, her MAIL FROM spelt two ways.
	for _, from := range []string{alice, "ALICE@Example.Test."} {
		if err := submit(rr.subAddr, pool, alice, alicePW, from, []string{"x@tarpit.test"}, message("tarpit", "x")); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // before, both were claimed by now, each holding a worker
	if err := submit(rr.subAddr, pool, "carol@example.test", "Carol-Secret-1", "carol@example.test", []string{"y@good.test"}, message("good", "y")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "carol's mail delivered while alice's hangs", 10*time.Second, func() bool { return len(good.messages()) == 1 })
}

// A queue the relay cannot read is said in the log ("read queue"), as it
// was before the claims kept to perSender: the store failing under a
// running relay (here closed) left the queue silent, every item waiting
// with no word of why.
func TestQueueReadFailureLogged(t *testing.T) {
	e := newFinishedEnv(t)
	var logs syncBuffer
	startRelay(t, e.st, relay.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	time.Sleep(150 * time.Millisecond) // a claim or two went well
	e.st.Close()
	waitFor(t, "the failed claim logged", 5*time.Second, func() bool {
		return strings.Contains(logs.String(), `msg="read queue"`)
	})
}
