package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mailferry/core/oldserver"
	"mailferry/core/oldserver/oldtest"
	"mailferry/core/relay"
)

// These tests run against a real old server: Postfix and Dovecot from
// oldtest (skipped on a machine that cannot run them). Postfix delivers
// example.test users into Dovecot and rewrites other domains to
// catchall+user=domain@example.test; we read everything back over IMAP.

// proxy forwards TCP to target while up; while down it accepts and cuts
// connections at once (an old SMTP that is down).
type proxy struct {
	ln     net.Listener
	target string
	up     atomic.Bool
	wg     sync.WaitGroup
}

func startProxy(t testing.TB, target string) *proxy {
	p := &proxy{ln: listen(t), target: target}
	p.up.Store(true)
	go func() {
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			if !p.up.Load() {
				c.Close()
				continue
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer c.Close()
				u, err := net.Dial("tcp", p.target)
				if err != nil {
					return
				}
				defer u.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				go func() { io.Copy(c, u); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				<-done
				<-done
			}()
		}
	}()
	t.Cleanup(func() { p.ln.Close(); p.wg.Wait() })
	return p
}

type fixtureEnv struct {
	*env
	old *oldtest.Server
}

// newFixtureEnv starts Postfix+Dovecot and a store whose example.test
// migrates from it: SMTP with STARTTLS and the fixture's pinned
// certificate, through smtpAddr (the fixture's SMTP or a proxy to it).
func newFixtureEnv(t *testing.T, smtpAddr func(*oldtest.Server) string) *fixtureEnv {
	t.Helper()
	srv := oldtest.Start(t, &oldtest.Options{WithSMTP: true})
	imap := netip.MustParseAddrPort(srv.IMAPAddr)
	sm := netip.MustParseAddrPort(smtpAddr(srv))
	set := oldserver.Settings{Host: oldserver.HostFromIP(sm.Addr()), IMAPPort: int(imap.Port()), IMAPTLS: oldserver.TLSStartTLS,
		SMTPPort: int(sm.Port()), SMTPTLS: oldserver.TLSStartTLS, PinnedSHA256: srv.CertSHA256, LoginForm: oldserver.LoginFull}
	// alice has moved to Mailferry (the migration engine would have made
	// her account with her old password).
	addr, pw := srv.Address(t, "alice")
	return &fixtureEnv{env: newEnvWith(t, set, addr, pw), old: srv}
}

func TestOldServerFixture(t *testing.T) {
	fe := newFixtureEnv(t, func(s *oldtest.Server) string { return s.SMTPAddr })
	cfg, pool := testTLS(t)
	rr := startRelay(t, fe.st, relay.Options{TLSConfig: cfg})
	alicePass := fe.old.Users[alice]

	t.Run("migrated user gets it in Mailferry", func(t *testing.T) {
		raw := message("fx-local", "Hello Alice, you moved.")
		if err := send(rr.smtpAddr, "sender@elsewhere.test", []string{alice}, raw); err != nil {
			t.Fatal(err)
		}
		msgs := fe.messages(t, fe.inbox)
		if len(msgs) != 1 {
			t.Fatalf("%d messages", len(msgs))
		}
		splitReceived(t, msgs[0], raw)
	})

	t.Run("not-yet-migrated user gets it on the old server", func(t *testing.T) {
		raw := message("fx-bob", "Hello Bob, still on the old server.\r\n.dot line")
		if err := send(rr.smtpAddr, "sender@elsewhere.test", []string{bob}, raw); err != nil {
			t.Fatal(err)
		}
		fe.old.WaitMessages(t, "bob", "INBOX", 1, 30*time.Second)
		got := fe.old.Messages(t, "bob", "INBOX")
		if len(got) != 1 {
			t.Fatalf("bob has %d messages", len(got))
		}
		checkRelayed(t, got[0].Raw, raw)
	})

	t.Run("submission to the outside goes through the old SMTP", func(t *testing.T) {
		raw := []byte("From: alice@example.test\r\nTo: friend@outside.test\r\nSubject: fx-out\r\n\r\nHi friend.\r\n")
		if err := submit(rr.subAddr, pool, alice, alicePass, alice, []string{"friend@outside.test"}, raw); err != nil {
			t.Fatal(err)
		}
		fe.old.WaitMessages(t, "catchall", "INBOX", 1, 30*time.Second)
		got := fe.old.Messages(t, "catchall", "INBOX")
		if len(got) != 1 {
			t.Fatalf("catchall has %d messages", len(got))
		}
		checkRelayed(t, got[0].Raw, raw)
		if !bytes.Contains(got[0].Raw, []byte("catchall+friend=outside.test@example.test")) {
			t.Errorf("not the catchall rewrite:\n%s", got[0].Raw)
		}
	})

	t.Run("unknown old user bounces into the sender's Mailferry INBOX", func(t *testing.T) {
		before := len(fe.messages(t, fe.inbox))
		raw := []byte("From: alice@example.test\r\nSubject: fx-unknown\r\nMessage-ID: <fx-unknown@example.test>\r\n\r\nAnyone?\r\n")
		if err := submit(rr.subAddr, pool, alice, alicePass, alice, []string{"nosuchuser@example.test"}, raw); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "DSN", 30*time.Second, func() bool { return len(fe.messages(t, fe.inbox)) == before+1 })
		dsn := fe.messages(t, fe.inbox)[before]
		for _, want := range []string{"multipart/report; report-type=delivery-status", "Final-Recipient: rfc822; nosuchuser@example.test",
			"Status: 5.1.1", "Diagnostic-Code: smtp; 550 5.1.1", "Message-ID: <fx-unknown@example.test>"} {
			if !bytes.Contains(dsn, []byte(want)) {
				t.Errorf("DSN lacks %q:\n%s", want, dsn)
			}
		}
	})

	t.Run("implicit TLS to the old SMTP, and a wrong pin", func(t *testing.T) {
		ctx := context.Background()
		d, _ := fe.st.Domain(ctx, oldtest.Domain)
		var set oldserver.Settings
		if err := json.Unmarshal([]byte(d.OldServer), &set); err != nil {
			t.Fatal(err)
		}
		defer fe.st.SetDomainMigration(ctx, oldtest.Domain, true, d.OldServer)
		smtps := netip.MustParseAddrPort(fe.old.SMTPSAddr)
		set.SMTPPort, set.SMTPTLS = int(smtps.Port()), oldserver.TLSImplicit
		js, _ := json.Marshal(set)
		fe.st.SetDomainMigration(ctx, oldtest.Domain, true, string(js))
		rr := startRelay(t, fe.st, relay.Options{TrustedNetworks: trustLoopback})
		if err := send(rr.smtpAddr, "sender@elsewhere.test", []string{"carol@example.test"}, message("fx-smtps", "over implicit TLS")); err != nil {
			t.Fatal(err)
		}
		fe.old.WaitMessages(t, "carol", "INBOX", 1, 30*time.Second)

		// A certificate that does not match the pin: nothing is sent, the
		// message waits.
		set.PinnedSHA256 = strings.Repeat("ab", 32)
		js, _ = json.Marshal(set)
		fe.st.SetDomainMigration(ctx, oldtest.Domain, true, string(js))
		if err := send(rr.smtpAddr, "sender@elsewhere.test", []string{"carol@example.test"}, message("fx-badpin", "must wait")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a failed attempt", 10*time.Second, func() bool {
			q, _ := fe.st.Queue(ctx)
			return len(q) == 1 && q[0].Attempts > 0
		})
		q, _ := fe.st.Queue(ctx)
		if !strings.Contains(q[0].LastError, "certificate") && !strings.Contains(q[0].LastError, "fingerprint") {
			t.Errorf("last error %q does not name the certificate", q[0].LastError)
		}
		rr.close()
		if err := fe.st.QueueDelete(ctx, q[0].ID); err != nil {
			t.Fatal(err)
		}
		if got := fe.old.Messages(t, "carol", "INBOX"); len(got) != 1 {
			t.Fatalf("carol has %d messages", len(got))
		}
	})

	t.Run("outside to an unknown old user is refused at RCPT", func(t *testing.T) {
		err := send(rr.smtpAddr, "sender@elsewhere.test", []string{"nosuchuser@example.test"}, message("fx-nouser", "x"))
		if smtpCode(err) != 550 {
			t.Fatalf("unknown user accepted: %v", err)
		}
	})

	t.Run("outside to foreign domain is refused", func(t *testing.T) {
		err := send(rr.smtpAddr, "spammer@elsewhere.test", []string{"victim@outside.test"}, message("fx-spam", "x"))
		if smtpCode(err) != 550 {
			t.Fatalf("open relay? %v", err)
		}
	})
}

// checkRelayed checks that what the old server stored ends with exactly our
// bytes: Postfix and Dovecot prepend their own trace headers, and after
// them come our Received header and the message as it was sent.
func checkRelayed(t *testing.T, stored, raw []byte) {
	t.Helper()
	ours := bytes.Index(stored, []byte("by mx.mailferry.test (Mailferry)"))
	if ours < 0 {
		t.Fatalf("no Mailferry Received header:\n%s", stored)
	}
	// Find the start of our header: the last "Received: " before "by mx...".
	start := bytes.LastIndex(stored[:ours], []byte("Received: "))
	splitReceived(t, stored[start:], raw)
}

// TestOldServerDownAndRestart: the old SMTP is down, messages wait in the
// queue; Mailferry restarts (relay closed, store reopened, new relay); the
// old SMTP comes back; each message lands in the old mailbox exactly once.
func TestOldServerDownAndRestart(t *testing.T) {
	var px *proxy
	fe := newFixtureEnv(t, func(s *oldtest.Server) string {
		px = startProxy(t, s.SMTPAddr)
		return px.ln.Addr().String()
	})
	px.up.Store(false)
	rr := startRelay(t, fe.st, relay.Options{TrustedNetworks: trustLoopback})
	const n = 10
	for i := 0; i < n; i++ {
		if err := send(rr.smtpAddr, "sender@elsewhere.test", []string{bob, "carol@example.test"}, message(fmt.Sprintf("fx-wait-%02d", i), "queued")); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	waitFor(t, "failed attempts", 10*time.Second, func() bool {
		q, _ := fe.st.Queue(ctx)
		for _, it := range q {
			if it.Attempts == 0 {
				return false
			}
		}
		return len(q) == n
	})

	rr.close()
	if err := fe.st.Close(); err != nil {
		t.Fatal(err)
	}
	fe.st = openStore(t, fe.path)
	t.Cleanup(func() { fe.st.Close() })
	rr = startRelay(t, fe.st, relay.Options{TrustedNetworks: trustLoopback})
	px.up.Store(true)

	waitFor(t, "queue drained", 30*time.Second, func() bool {
		q, _ := fe.st.Queue(ctx)
		return len(q) == 0
	})
	for _, user := range []string{"bob", "carol"} {
		fe.old.WaitMessages(t, user, "INBOX", n, 30*time.Second)
		time.Sleep(300 * time.Millisecond)
		got := fe.old.Messages(t, user, "INBOX")
		seen := map[string]bool{}
		for _, m := range got {
			i := bytes.Index(m.Raw, []byte("Subject: fx-wait-"))
			if i < 0 {
				t.Fatalf("unexpected message:\n%s", m.Raw)
			}
			s := string(m.Raw[i : i+19])
			if seen[s] {
				t.Errorf("%s: %s delivered twice", user, s)
			}
			seen[s] = true
		}
		if len(got) != n || len(seen) != n {
			t.Fatalf("%s has %d messages (%d distinct), want %d", user, len(got), len(seen), n)
		}
	}
	if s := rr.r.Stats(); s.Relayed != 2*n || s.Bounced != 0 {
		t.Errorf("stats after restart: %+v", s)
	}
}
